// PgCatalogStore: ServiceHub's service catalog in PostgreSQL (migrations/0013_service_catalog,
// 0015_catalog_callers): catalog services, the consumers they call as, their versions (state,
// OpenAPI document, gateway service bindings), declared dependencies and those the vitals
// show, full-text search over all of it, and the usage of the bound gateway services summed
// from the vitals rollups. The catalog is global (it spans control planes) and
// is not config: no generation, change log or data plane ever sees it. libpqxx stays in
// pg_catalog.cc; every method returns absl::Status and blocks, so call it from a DB worker
// thread. Thread-safe (each call takes its own pooled connection).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/config/schema.h"
#include "control_plane/store/pg_pool.h"

namespace portico::cp {

// A gateway consumer a catalog service calls other services as.
struct CatalogCaller {
  std::string control_plane_id;
  std::string control_plane_name;  // filled by reads
  std::string consumer_id;
};

// Timestamps are RFC 3339 UTC strings, as control planes'.
struct CatalogService {
  std::string id;  // empty on create: generated
  std::string name;
  std::optional<std::string> display_name, description, owner_team;
  config::Json labels = config::Json::object();  // string values
  std::optional<std::string> repository_url, runbook_url;
  // The consumers its calls through the gateway authenticate as: what ties the vitals'
  // consumer counts to this service as a caller (observed dependencies). Writes replace them.
  std::vector<CatalogCaller> calls_as;
  std::string created_at, updated_at;
};

// A gateway service a version runs as.
struct CatalogBinding {
  std::string control_plane_id;
  std::string control_plane_name;  // filled by reads
  std::string gateway_service_id;
};

struct CatalogVersion {
  std::string id;  // empty on create: generated
  std::string service_id;
  std::string version;
  std::string state = "unpublished";  // published | deprecated | unpublished
  // The OpenAPI document as given, and what was searched for in it. Reads fill `spec` only
  // when asked to (a list never carries documents of up to 10 MiB each).
  std::optional<std::string> spec;
  std::string spec_format;  // "json" or "yaml"; empty without a document
  uint64_t spec_bytes = 0;
  std::string spec_terms;  // writes only
  std::vector<CatalogBinding> bindings;
  std::string created_at, updated_at;
};

// What a version update changes; unset members stay as stored.
struct CatalogVersionUpdate {
  std::optional<std::string> version, state;
  bool set_spec = false;  // with spec unset: remove the document
  std::optional<std::string> spec;
  std::string spec_format, spec_terms;
  std::optional<std::vector<CatalogBinding>> bindings;  // replaces them all
};

struct CatalogServiceQuery {
  std::string text;                                      // full text (websearch syntax); "" = all
  config::Json labels_contain = config::Json::object();  // every key: value pair
  std::vector<std::string> label_keys;                   // every key present, any value
  std::optional<std::string> owner_team;
  int size = 100;
  int number = 1;  // 1-based page
};

template <class T>
struct CatalogPage {
  std::vector<T> items;
  uint64_t total = 0;  // every match, all pages
};

// A read of one service's dependencies (or, with `dependents`, of the services depending on
// it): declared ones, and observed ones, where vitals_requests shows one of the caller's
// consumers calling a gateway service bound to a version of the other, at `granularity`
// seconds in [start, end). Traffic of anonymous and folded ("other") consumers has no caller.
struct CatalogDependencyQuery {
  std::string service_id;
  bool dependents = false;
  bool declared = true, observed = true;  // which to list; every item carries both facts
  std::string other_id;                   // only this other service, when set
  int granularity = 60;
  int64_t start = 0, end = 0;
  int size = 100;
  int number = 1;
};

struct CatalogDependency {
  CatalogService service;  // the other service
  bool declared = false;
  bool observed = false;
  int64_t requests = 0, errors_5xx = 0;
  int64_t last_seen = 0;  // start of the last bucket with traffic, epoch seconds
};

// One bound gateway service's traffic over a usage window, from vitals_routes.
struct CatalogUsageRow {
  std::string version_id;
  std::string control_plane_name;
  std::string gateway_service_id;
  int64_t requests = 0, errors_5xx = 0, max_latency_ms = 0;
  std::vector<int64_t> latency_bins;  // common/vitals/latency_bins.h's bins (total latency)
};

class PgCatalogStore {
 public:
  // `pool` (the config store's) must outlive this object.
  explicit PgCatalogStore(PgPool& pool) : pool_(pool) {}

  // ---- services: `ref` is an id (UUID) or a name; kNotFound when none matches ------------
  // Ordered by relevance when the query has text (ts_rank over names, descriptions, owners
  // and labels; services matched by their specs alone follow), then by name.
  absl::StatusOr<CatalogPage<CatalogService>> listServices(const CatalogServiceQuery& query);
  absl::StatusOr<CatalogService> getService(const std::string& ref);
  // kAlreadyExists("name") when the name is taken (or "id" for a given id that is), or
  // kAlreadyExists("<control plane id>/<consumer id>") for a consumer another service calls as.
  absl::StatusOr<CatalogService> createService(const CatalogService& service);
  // Replaces every field of the service `service.id` (its callers too); kNotFound, and
  // kAlreadyExists as createService.
  absl::StatusOr<CatalogService> updateService(const CatalogService& service);
  // Its versions, bindings and dependencies (both ways) go with it. kNotFound.
  absl::Status deleteService(const std::string& id);

  // ---- versions of one service (by the service's id); `ref` is an id or a version string ---
  absl::StatusOr<CatalogPage<CatalogVersion>> listVersions(const std::string& service_id, int size,
                                                           int number);
  absl::StatusOr<CatalogVersion> getVersion(const std::string& service_id, const std::string& ref,
                                            bool with_spec);
  // kAlreadyExists("version") when the service has that version string already.
  absl::StatusOr<CatalogVersion> createVersion(const CatalogVersion& version);
  absl::StatusOr<CatalogVersion> updateVersion(const std::string& service_id,
                                               const std::string& version_id,
                                               const CatalogVersionUpdate& update);
  absl::Status deleteVersion(const std::string& service_id, const std::string& version_id);

  // ---- dependencies -------------------------------------------------------------------------
  // Declared and observed ones, ordered by the other service's name.
  absl::StatusOr<CatalogPage<CatalogDependency>> listDependencies(
      const CatalogDependencyQuery& query);
  // kAlreadyExists when declared already; kNotFound when either service is gone.
  absl::Status addDependency(const std::string& service_id, const std::string& depends_on_id);
  // kNotFound when not declared.
  absl::Status removeDependency(const std::string& service_id, const std::string& depends_on_id);

  // ---- usage --------------------------------------------------------------------------------
  // One row per binding of the service's versions (or of `version_id` alone), with the
  // traffic vitals_routes holds for it at `granularity` seconds in [start, end).
  absl::StatusOr<std::vector<CatalogUsageRow>> usage(const std::string& service_id,
                                                     const std::string& version_id, int granularity,
                                                     int64_t start, int64_t end);

 private:
  PgPool& pool_;
};

}  // namespace portico::cp
