#include "control_plane/store/pg_catalog.h"

#include <pqxx/pqxx>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/config/typedefs.h"
#include "common/vitals/latency_bins.h"

namespace portico::cp {
namespace pg_catalog {
namespace {

using config::Json;

constexpr char kTimestamp[] = "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'";

const std::string& serviceColumns() {
  static const auto* const kColumns = new std::string(
      std::string("s.id::text, s.name, s.display_name, s.description, s.owner_team, "
                  "s.labels::text, s.repository_url, s.runbook_url, "
                  "to_char(s.created_at AT TIME ZONE 'UTC', ") +
      kTimestamp + "), to_char(s.updated_at AT TIME ZONE 'UTC', " + kTimestamp +
      "), coalesce((SELECT json_agg(json_build_array(c.control_plane_id, g.name, "
      "c.consumer_id) ORDER BY g.name, c.consumer_id) FROM catalog_service_callers c JOIN "
      "groups g ON g.id = c.control_plane_id WHERE c.service_id = s.id), '[]')::text");
  return *kColumns;
}
constexpr int kServiceColumnCount = 11;

const std::string& versionColumns() {
  static const auto* const kColumns = new std::string(
      std::string("v.id::text, v.service_id::text, v.version, v.state, v.spec_format, "
                  "coalesce(octet_length(v.spec), 0), "
                  "to_char(v.created_at AT TIME ZONE 'UTC', ") +
      kTimestamp + "), to_char(v.updated_at AT TIME ZONE 'UTC', " + kTimestamp + ")");
  return *kColumns;
}
constexpr int kVersionColumnCount = 8;

std::optional<std::string> optionalText(const pqxx::field& f) {
  if (f.is_null()) {
    return std::nullopt;
  }
  return f.as<std::string>();
}

const char* orNull(const std::optional<std::string>& s) { return s ? s->c_str() : nullptr; }

CatalogService serviceFromRow(const pqxx::row& row) {
  CatalogService s;
  s.id = row[0].as<std::string>();
  s.name = row[1].as<std::string>();
  s.display_name = optionalText(row[2]);
  s.description = optionalText(row[3]);
  s.owner_team = optionalText(row[4]);
  s.labels = Json::parse(row[5].c_str());
  s.repository_url = optionalText(row[6]);
  s.runbook_url = optionalText(row[7]);
  s.created_at = row[8].as<std::string>();
  s.updated_at = row[9].as<std::string>();
  for (const Json& c : Json::parse(row[10].c_str())) {
    s.calls_as.push_back(
        {c[0].get<std::string>(), c[1].get<std::string>(), c[2].get<std::string>()});
  }
  return s;
}

CatalogVersion versionFromRow(const pqxx::row& row, bool with_spec) {
  CatalogVersion v;
  v.id = row[0].as<std::string>();
  v.service_id = row[1].as<std::string>();
  v.version = row[2].as<std::string>();
  v.state = row[3].as<std::string>();
  v.spec_format = row[4].is_null() ? "" : row[4].as<std::string>();
  v.spec_bytes = row[5].as<uint64_t>();
  v.created_at = row[6].as<std::string>();
  v.updated_at = row[7].as<std::string>();
  if (with_spec) {
    v.spec = optionalText(row[kVersionColumnCount]);
  }
  return v;
}

// The service's full-text document, rebuilt from its row and its versions' terms in the
// transaction of every write that changes one of them. Weights: names A, description and
// owner B, labels C, spec operations D, so a name match outranks a word deep in a spec.
// 'english' stems ("payments" finds "payment"); the app splits what the parser would keep
// whole (camelCase operationIds, paths) when it extracts a spec's terms. The spec part is
// capped: a tsvector holds at most 1 MB, and 256 KiB of words stays well under it.
// `search_rank` is the same without the specs (~300 bytes against ~3 KB compressed, out of
// line): ranking reads it for every match, and ranking 5,000 matches by `search` itself took
// 79 ms of detoasting against 8 ms (tests/bench/RESULTS.md). A word found only in specs ranks
// 0 there: such matches come after the others, by name.
void refreshSearch(pqxx::work& txn, const std::string& service_id) {
  static const auto* const kHead = new std::string(
      "setweight(to_tsvector('english', s.name || ' ' || coalesce(s.display_name, '')), 'A') || "
      "setweight(to_tsvector('english', coalesce(s.description, '') || ' ' || "
      "coalesce(s.owner_team, '')), 'B') || "
      "setweight(to_tsvector('english', coalesce((SELECT string_agg(key || ' ' || value, ' ') "
      "FROM jsonb_each_text(s.labels)), '')), 'C')");
  txn.exec_params(
      "UPDATE catalog_services s SET search_rank = " + *kHead + ", search = " + *kHead +
          " || setweight(to_tsvector('english', left(coalesce((SELECT string_agg(v.spec_terms, "
          "' ' ORDER BY v.created_at) FROM catalog_versions v WHERE v.service_id = s.id), ''), "
          "262144)), 'D') WHERE s.id = $1::uuid",
      service_id);
}

std::string pageClause(int size, int number) {
  return absl::StrCat(" LIMIT ", size, " OFFSET ", static_cast<int64_t>(number - 1) * size);
}

// Fills each version's bindings, one statement for all of them.
void loadBindings(pqxx::transaction_base& txn, std::vector<CatalogVersion>* versions) {
  if (versions->empty()) {
    return;
  }
  std::string ids = "{";
  for (const CatalogVersion& v : *versions) {
    if (ids.size() > 1) {
      ids += ',';
    }
    ids += v.id;  // UUIDs: nothing to quote
  }
  ids += "}";
  for (const auto& row : txn.exec_params(
           "SELECT b.version_id::text, b.control_plane_id::text, g.name, "
           "b.gateway_service_id::text FROM catalog_version_bindings b JOIN groups g ON g.id = "
           "b.control_plane_id WHERE b.version_id = ANY($1::uuid[]) ORDER BY g.name, "
           "b.gateway_service_id",
           ids)) {
    const std::string version_id = row[0].as<std::string>();
    for (CatalogVersion& v : *versions) {
      if (v.id == version_id) {
        v.bindings.push_back(
            {row[1].as<std::string>(), row[2].as<std::string>(), row[3].as<std::string>()});
      }
    }
  }
}

void insertBindings(pqxx::work& txn, const std::string& version_id,
                    const std::vector<CatalogBinding>& bindings) {
  for (const CatalogBinding& b : bindings) {
    txn.exec_params(
        "INSERT INTO catalog_version_bindings (version_id, control_plane_id, "
        "gateway_service_id) VALUES ($1::uuid, $2::uuid, $3::uuid) ON CONFLICT DO NOTHING",
        version_id, b.control_plane_id, b.gateway_service_id);
  }
}

// Replaces the consumers `service_id` calls as. One that another catalog service already
// calls as is refused: kAlreadyExists naming "<control plane id>/<consumer id>".
absl::Status writeCallers(pqxx::work& txn, const std::string& service_id,
                          const std::vector<CatalogCaller>& callers) {
  std::string control_planes = "{", consumers = "{";
  for (const CatalogCaller& c : callers) {
    if (control_planes.size() > 1) {
      control_planes += ',';
      consumers += ',';
    }
    control_planes += c.control_plane_id;  // UUIDs, checked by the caller: nothing to quote
    consumers += c.consumer_id;
  }
  control_planes += '}';
  consumers += '}';
  const pqxx::result taken = txn.exec_params(
      "SELECT c.control_plane_id::text, c.consumer_id::text FROM catalog_service_callers c "
      "JOIN unnest($2::uuid[], $3::uuid[]) AS n (control_plane_id, consumer_id) USING "
      "(control_plane_id, consumer_id) WHERE c.service_id <> $1::uuid LIMIT 1",
      service_id, control_planes, consumers);
  if (!taken.empty()) {
    return absl::AlreadyExistsError(
        absl::StrCat(taken[0][0].c_str(), "/", taken[0][1].c_str()));
  }
  txn.exec_params("DELETE FROM catalog_service_callers WHERE service_id = $1::uuid", service_id);
  try {
    txn.exec_params(
        "INSERT INTO catalog_service_callers (service_id, control_plane_id, consumer_id) "
        "SELECT $1::uuid, n.control_plane_id, n.consumer_id FROM unnest($2::uuid[], "
        "$3::uuid[]) AS n (control_plane_id, consumer_id) ON CONFLICT DO NOTHING",
        service_id, control_planes, consumers);
  } catch (const pqxx::unique_violation&) {  // a racing writer took one since the check
    return absl::AlreadyExistsError("calls_as");
  } catch (const pqxx::foreign_key_violation&) {  // its control plane was deleted meanwhile
    return absl::NotFoundError("control plane not found");
  }
  return absl::OkStatus();
}

std::optional<CatalogVersion> readVersion(pqxx::transaction_base& txn,
                                          const std::string& service_id, const std::string& ref,
                                          bool with_spec) {
  const pqxx::result r =
      txn.exec_params("SELECT " + pg_catalog::versionColumns() + (with_spec ? ", v.spec" : "") +
                          " FROM catalog_versions v WHERE v.service_id = $1::uuid AND " +
                          (config::isUuid(ref) ? "v.id = $2::uuid" : "v.version = $2"),
                      service_id, ref);
  if (r.empty()) {
    return std::nullopt;
  }
  std::vector<CatalogVersion> one{versionFromRow(r[0], with_spec)};
  loadBindings(txn, &one);
  return std::move(one[0]);
}

std::optional<CatalogService> readService(pqxx::transaction_base& txn, const std::string& ref) {
  const pqxx::result r =
      txn.exec_params("SELECT " + pg_catalog::serviceColumns() + " FROM catalog_services s WHERE " +
                          (config::isUuid(ref) ? "s.id = $1::uuid" : "s.name = $1"),
                      ref);
  if (r.empty()) {
    return std::nullopt;
  }
  return serviceFromRow(r[0]);
}

}  // namespace
}  // namespace pg_catalog

absl::StatusOr<CatalogPage<CatalogService>> PgCatalogStore::listServices(
    const CatalogServiceQuery& q) {
  CatalogPage<CatalogService> out;
  const absl::Status st = pool_.run([&](pqxx::connection& conn) -> absl::Status {
    pqxx::read_transaction txn(conn);
    // Only the filters asked for are in the statement, so PostgreSQL plans each shape for what
    // it is (a generic "$1 = '' OR ..." plan would not use the GIN index).
    std::vector<std::string> params;
    const auto param = [&params](std::string value) {
      params.push_back(std::move(value));
      return absl::StrCat("$", params.size());
    };
    std::string from = " FROM catalog_services s";
    std::string where = " WHERE TRUE";
    std::string order = " ORDER BY s.name";
    if (!q.text.empty()) {
      absl::StrAppend(&from, ", websearch_to_tsquery('english', ", param(q.text), ") AS query");
      where += " AND s.search @@ query";
      order = " ORDER BY ts_rank(s.search_rank, query) DESC, s.name";
      // The GIN index answers @@ without reading `search` (no recheck for plain words), a
      // sequential scan detoasts every row's: a word in every one of 5,000 services took 20 ms
      // that way against 2 ms through the index, and the planner, which does not cost the
      // detoasting, picks the scan whenever most rows match.
      txn.exec("SET LOCAL enable_seqscan = off");
    }
    if (!q.labels_contain.empty()) {
      absl::StrAppend(&where, " AND s.labels @> ", param(q.labels_contain.dump()), "::jsonb");
    }
    for (const std::string& key : q.label_keys) {
      absl::StrAppend(&where, " AND s.labels ? ", param(key));
    }
    if (q.owner_team) {
      absl::StrAppend(&where, " AND s.owner_team = ", param(*q.owner_team));
    }
    const pqxx::result r =
        txn.exec_params("SELECT " + pg_catalog::serviceColumns() + ", count(*) OVER ()" + from +
                            where + order + pg_catalog::pageClause(q.size, q.number),
                        pqxx::prepare::make_dynamic_params(params));
    for (const auto& row : r) {
      out.items.push_back(pg_catalog::serviceFromRow(row));
      out.total = row[pg_catalog::kServiceColumnCount].as<uint64_t>();
    }
    if (r.empty() && q.number > 1) {  // past the last page: the window counted nothing
      out.total = txn.exec_params("SELECT count(*)" + from + where,
                                  pqxx::prepare::make_dynamic_params(params))[0][0]
                      .as<uint64_t>();
    }
    return absl::OkStatus();
  });
  if (!st.ok()) {
    return st;
  }
  return out;
}

absl::StatusOr<CatalogService> PgCatalogStore::getService(const std::string& ref) {
  std::optional<CatalogService> out;
  const absl::Status st = pool_.run([&](pqxx::connection& conn) -> absl::Status {
    pqxx::read_transaction txn(conn);
    out = pg_catalog::readService(txn, ref);
    return out ? absl::OkStatus() : absl::NotFoundError("catalog service not found");
  });
  if (!st.ok()) {
    return st;
  }
  return *std::move(out);
}

absl::StatusOr<CatalogService> PgCatalogStore::createService(const CatalogService& s) {
  std::optional<CatalogService> out;
  const absl::Status st = pool_.run([&](pqxx::connection& conn) -> absl::Status {
    pqxx::work txn(conn);
    // ON CONFLICT DO NOTHING: a taken name answers no row instead of aborting, so racing
    // creators get one success and clean conflicts.
    const pqxx::result r = txn.exec_params(
        "INSERT INTO catalog_services (id, name, display_name, description, owner_team, labels, "
        "repository_url, runbook_url) VALUES (COALESCE($1::uuid, gen_random_uuid()), $2, $3, "
        "$4, $5, $6::jsonb, $7, $8) ON CONFLICT DO NOTHING RETURNING id::text",
        s.id.empty() ? nullptr : s.id.c_str(), s.name, pg_catalog::orNull(s.display_name),
        pg_catalog::orNull(s.description), pg_catalog::orNull(s.owner_team), s.labels.dump(),
        pg_catalog::orNull(s.repository_url), pg_catalog::orNull(s.runbook_url));
    if (r.empty()) {
      const bool id_taken =
          !s.id.empty() &&
          !txn.exec_params("SELECT 1 FROM catalog_services WHERE id = $1::uuid", s.id).empty();
      return absl::AlreadyExistsError(id_taken ? "id" : "name");
    }
    const std::string id = r[0][0].as<std::string>();
    if (!s.calls_as.empty()) {
      if (absl::Status written = pg_catalog::writeCallers(txn, id, s.calls_as); !written.ok()) {
        return written;
      }
    }
    pg_catalog::refreshSearch(txn, id);
    out = pg_catalog::readService(txn, id);
    txn.commit();
    return absl::OkStatus();
  });
  if (!st.ok()) {
    return st;
  }
  return *std::move(out);
}

absl::StatusOr<CatalogService> PgCatalogStore::updateService(const CatalogService& s) {
  std::optional<CatalogService> out;
  const absl::Status st = pool_.run([&](pqxx::connection& conn) -> absl::Status {
    pqxx::work txn(conn);
    pqxx::result r;
    try {
      r = txn.exec_params(
          "UPDATE catalog_services SET name = $2, display_name = $3, description = $4, "
          "owner_team = $5, labels = $6::jsonb, repository_url = $7, runbook_url = $8, "
          "updated_at = now() WHERE id = $1::uuid RETURNING 1",
          s.id, s.name, pg_catalog::orNull(s.display_name), pg_catalog::orNull(s.description),
          pg_catalog::orNull(s.owner_team), s.labels.dump(), pg_catalog::orNull(s.repository_url),
          pg_catalog::orNull(s.runbook_url));
    } catch (const pqxx::unique_violation&) {
      return absl::AlreadyExistsError("name");
    }
    if (r.empty()) {
      return absl::NotFoundError("catalog service not found");
    }
    if (absl::Status written = pg_catalog::writeCallers(txn, s.id, s.calls_as); !written.ok()) {
      return written;
    }
    pg_catalog::refreshSearch(txn, s.id);
    out = pg_catalog::readService(txn, s.id);
    txn.commit();
    return absl::OkStatus();
  });
  if (!st.ok()) {
    return st;
  }
  return *std::move(out);
}

absl::Status PgCatalogStore::deleteService(const std::string& id) {
  return pool_.run([&](pqxx::connection& conn) -> absl::Status {
    pqxx::work txn(conn);
    if (txn.exec_params("DELETE FROM catalog_services WHERE id = $1::uuid RETURNING 1", id)
            .empty()) {
      return absl::NotFoundError("catalog service not found");
    }
    txn.commit();
    return absl::OkStatus();
  });
}

absl::StatusOr<CatalogPage<CatalogVersion>> PgCatalogStore::listVersions(
    const std::string& service_id, int size, int number) {
  CatalogPage<CatalogVersion> out;
  const absl::Status st = pool_.run([&](pqxx::connection& conn) -> absl::Status {
    pqxx::read_transaction txn(conn);
    const pqxx::result r = txn.exec_params(
        "SELECT " + pg_catalog::versionColumns() +
            ", count(*) OVER () FROM catalog_versions v WHERE v.service_id = $1::uuid "
            "ORDER BY v.created_at DESC, v.id" +
            pg_catalog::pageClause(size, number),
        service_id);
    for (const auto& row : r) {
      out.items.push_back(pg_catalog::versionFromRow(row, false));
      out.total = row[pg_catalog::kVersionColumnCount].as<uint64_t>();
    }
    if (r.empty() && number > 1) {
      out.total = txn.exec_params(
                         "SELECT count(*) FROM catalog_versions WHERE service_id = "
                         "$1::uuid",
                         service_id)[0][0]
                      .as<uint64_t>();
    }
    pg_catalog::loadBindings(txn, &out.items);
    return absl::OkStatus();
  });
  if (!st.ok()) {
    return st;
  }
  return out;
}

absl::StatusOr<CatalogVersion> PgCatalogStore::getVersion(const std::string& service_id,
                                                          const std::string& ref, bool with_spec) {
  std::optional<CatalogVersion> out;
  const absl::Status st = pool_.run([&](pqxx::connection& conn) -> absl::Status {
    pqxx::read_transaction txn(conn);
    out = pg_catalog::readVersion(txn, service_id, ref, with_spec);
    return out ? absl::OkStatus() : absl::NotFoundError("catalog version not found");
  });
  if (!st.ok()) {
    return st;
  }
  return *std::move(out);
}

absl::StatusOr<CatalogVersion> PgCatalogStore::createVersion(const CatalogVersion& v) {
  std::optional<CatalogVersion> out;
  const absl::Status st = pool_.run([&](pqxx::connection& conn) -> absl::Status {
    pqxx::work txn(conn);
    pqxx::result r;
    try {
      r = txn.exec_params(
          "INSERT INTO catalog_versions (id, service_id, version, state, spec, spec_format, "
          "spec_terms) VALUES (COALESCE($1::uuid, gen_random_uuid()), $2::uuid, $3, $4, $5, $6, "
          "$7) ON CONFLICT DO NOTHING RETURNING id::text",
          v.id.empty() ? nullptr : v.id.c_str(), v.service_id, v.version, v.state,
          pg_catalog::orNull(v.spec), v.spec ? v.spec_format.c_str() : nullptr, v.spec_terms);
    } catch (const pqxx::foreign_key_violation&) {
      return absl::NotFoundError("catalog service not found");
    }
    if (r.empty()) {
      const bool id_taken =
          !v.id.empty() &&
          !txn.exec_params("SELECT 1 FROM catalog_versions WHERE id = $1::uuid", v.id).empty();
      return absl::AlreadyExistsError(id_taken ? "id" : "version");
    }
    const std::string id = r[0][0].as<std::string>();
    try {
      pg_catalog::insertBindings(txn, id, v.bindings);
    } catch (const pqxx::foreign_key_violation&) {
      return absl::NotFoundError("control plane not found");  // deleted since it was checked
    }
    pg_catalog::refreshSearch(txn, v.service_id);
    out = pg_catalog::readVersion(txn, v.service_id, id, false);
    txn.commit();
    return absl::OkStatus();
  });
  if (!st.ok()) {
    return st;
  }
  return *std::move(out);
}

absl::StatusOr<CatalogVersion> PgCatalogStore::updateVersion(const std::string& service_id,
                                                             const std::string& version_id,
                                                             const CatalogVersionUpdate& u) {
  std::optional<CatalogVersion> out;
  const absl::Status st = pool_.run([&](pqxx::connection& conn) -> absl::Status {
    pqxx::work txn(conn);
    pqxx::result r;
    try {
      r = txn.exec_params(
          "UPDATE catalog_versions SET version = COALESCE($3, version), "
          "state = COALESCE($4, state), "
          "spec = CASE WHEN $5::boolean THEN $6 ELSE spec END, "
          "spec_format = CASE WHEN $5::boolean THEN $7 ELSE spec_format END, "
          "spec_terms = CASE WHEN $5::boolean THEN $8 ELSE spec_terms END, "
          "updated_at = now() WHERE service_id = $1::uuid AND id = $2::uuid RETURNING 1",
          service_id, version_id, pg_catalog::orNull(u.version), pg_catalog::orNull(u.state),
          u.set_spec, pg_catalog::orNull(u.spec), u.spec ? u.spec_format.c_str() : nullptr,
          u.spec ? u.spec_terms : std::string());
    } catch (const pqxx::unique_violation&) {
      return absl::AlreadyExistsError("version");
    }
    if (r.empty()) {
      return absl::NotFoundError("catalog version not found");
    }
    if (u.bindings) {
      txn.exec_params("DELETE FROM catalog_version_bindings WHERE version_id = $1::uuid",
                      version_id);
      try {
        pg_catalog::insertBindings(txn, version_id, *u.bindings);
      } catch (const pqxx::foreign_key_violation&) {
        return absl::NotFoundError("control plane not found");
      }
    }
    if (u.set_spec) {
      pg_catalog::refreshSearch(txn, service_id);
    }
    out = pg_catalog::readVersion(txn, service_id, version_id, false);
    txn.commit();
    return absl::OkStatus();
  });
  if (!st.ok()) {
    return st;
  }
  return *std::move(out);
}

absl::Status PgCatalogStore::deleteVersion(const std::string& service_id,
                                           const std::string& version_id) {
  return pool_.run([&](pqxx::connection& conn) -> absl::Status {
    pqxx::work txn(conn);
    if (txn.exec_params("DELETE FROM catalog_versions WHERE service_id = $1::uuid AND id = "
                        "$2::uuid RETURNING 1",
                        service_id, version_id)
            .empty()) {
      return absl::NotFoundError("catalog version not found");
    }
    pg_catalog::refreshSearch(txn, service_id);
    txn.commit();
    return absl::OkStatus();
  });
}

absl::StatusOr<CatalogPage<CatalogDependency>> PgCatalogStore::listDependencies(
    const CatalogDependencyQuery& q) {
  // Observed: the 10 s / 1 min / 1 h rows of vitals_requests in the window whose consumer is
  // a caller of one service and whose gateway service is bound to a version of another (a
  // gateway service bound to two versions of one service counts once: DISTINCT). Read from
  // the known side: the caller's consumers for dependencies, the bound gateway services for
  // dependents; each scans its control planes' rows of the window through the primary key
  // (granularity, group_name, ts, ...). CTEs used once are inlined, so the filters on $1
  // reach the scans.
  static const std::string kCallers =
      "callers AS (SELECT c.service_id, g.name AS group_name, c.consumer_id::text AS consumer "
      "FROM catalog_service_callers c JOIN groups g ON g.id = c.control_plane_id), "
      "bound AS (SELECT DISTINCT v.service_id, g.name AS group_name, "
      "b.gateway_service_id::text AS service FROM catalog_version_bindings b JOIN "
      "catalog_versions v ON v.id = b.version_id JOIN groups g ON g.id = b.control_plane_id), ";
  static const std::string kTraffic =
      " sum(r.requests) AS requests, coalesce(sum(r.requests) FILTER (WHERE r.status BETWEEN "
      "500 AND 599), 0) AS errors, max(r.ts) AS last_seen FROM ";
  static const std::string kDependencies =
      "WITH " + kCallers +
      "observed AS (SELECT bo.service_id AS other," + kTraffic +
      "callers ca JOIN vitals_requests r ON r.granularity = $2 AND r.group_name = "
      "ca.group_name AND r.ts >= $3 AND r.ts < $4 AND r.consumer = ca.consumer JOIN bound bo "
      "ON bo.group_name = r.group_name AND bo.service = r.service WHERE ca.service_id = "
      "$1::uuid AND bo.service_id <> ca.service_id GROUP BY bo.service_id), "
      "declared AS (SELECT depends_on_id AS other FROM catalog_dependencies WHERE service_id = "
      "$1::uuid), ";
  static const std::string kDependents =
      "WITH " + kCallers +
      "observed AS (SELECT ca.service_id AS other," + kTraffic +
      "bound bo JOIN vitals_requests r ON r.granularity = $2 AND r.group_name = bo.group_name "
      "AND r.ts >= $3 AND r.ts < $4 AND r.service = bo.service JOIN callers ca ON "
      "ca.group_name = r.group_name AND ca.consumer = r.consumer WHERE bo.service_id = "
      "$1::uuid AND ca.service_id <> bo.service_id GROUP BY ca.service_id), "
      "declared AS (SELECT service_id AS other FROM catalog_dependencies WHERE depends_on_id = "
      "$1::uuid), ";
  static const std::string kTail =
      "found AS (SELECT coalesce(d.other, o.other) AS other, d.other IS NOT NULL AS declared, "
      "o.other IS NOT NULL AS observed, coalesce(o.requests, 0) AS requests, "
      "coalesce(o.errors, 0) AS errors, coalesce(o.last_seen, 0) AS last_seen FROM declared d "
      "FULL JOIN observed o ON o.other = d.other) ";
  std::string where = " WHERE ($5::uuid IS NULL OR s.id = $5::uuid)";
  if (!q.declared) {
    where += " AND f.observed";
  }
  if (!q.observed) {
    where += " AND f.declared";
  }
  const std::string with = (q.dependents ? kDependents : kDependencies) + kTail;
  const std::string from = " FROM found f JOIN catalog_services s ON s.id = f.other";
  const char* other = q.other_id.empty() ? nullptr : q.other_id.c_str();
  CatalogPage<CatalogDependency> out;
  const absl::Status st = pool_.run([&](pqxx::connection& conn) -> absl::Status {
    pqxx::read_transaction txn(conn);
    // The vitals key orders ts before service and consumer, so a nested loop reads the whole
    // window once per bound gateway service (or caller consumer): 10 bound services over an
    // hour of 600,000 rows took 1.4-1.9 s that way, against ~0.2 s for one pass of the
    // window hashed against them (tests/bench/RESULTS.md, observed dependencies). The plan's
    // cost then invites JIT, which compiled for ~1 s to save nothing.
    txn.exec("SET LOCAL enable_nestloop = off");
    txn.exec("SET LOCAL jit = off");
    const pqxx::result r = txn.exec_params(
        with + "SELECT " + pg_catalog::serviceColumns() +
            ", f.declared, f.observed, f.requests, f.errors, f.last_seen, count(*) OVER ()" +
            from + where + " ORDER BY s.name" + pg_catalog::pageClause(q.size, q.number),
        q.service_id, q.granularity, q.start, q.end, other);
    constexpr int kFirst = pg_catalog::kServiceColumnCount;
    for (const auto& row : r) {
      CatalogDependency d;
      d.service = pg_catalog::serviceFromRow(row);
      d.declared = row[kFirst].as<bool>();
      d.observed = row[kFirst + 1].as<bool>();
      d.requests = row[kFirst + 2].as<int64_t>();
      d.errors_5xx = row[kFirst + 3].as<int64_t>();
      d.last_seen = row[kFirst + 4].as<int64_t>();
      out.total = row[kFirst + 5].as<uint64_t>();
      out.items.push_back(std::move(d));
    }
    if (r.empty() && q.number > 1) {  // past the last page: the window counted nothing
      out.total = txn.exec_params(with + "SELECT count(*)" + from + where, q.service_id,
                                  q.granularity, q.start, q.end, other)[0][0]
                      .as<uint64_t>();
    }
    return absl::OkStatus();
  });
  if (!st.ok()) {
    return st;
  }
  return out;
}

absl::Status PgCatalogStore::addDependency(const std::string& service_id,
                                           const std::string& depends_on_id) {
  return pool_.run([&](pqxx::connection& conn) -> absl::Status {
    pqxx::work txn(conn);
    pqxx::result r;
    try {
      r = txn.exec_params(
          "INSERT INTO catalog_dependencies (service_id, depends_on_id) VALUES ($1::uuid, "
          "$2::uuid) ON CONFLICT DO NOTHING RETURNING 1",
          service_id, depends_on_id);
    } catch (const pqxx::foreign_key_violation&) {
      return absl::NotFoundError("catalog service not found");
    } catch (const pqxx::check_violation&) {
      return absl::InvalidArgumentError("a service cannot depend on itself");
    }
    if (r.empty()) {
      return absl::AlreadyExistsError("dependency");
    }
    txn.commit();
    return absl::OkStatus();
  });
}

absl::Status PgCatalogStore::removeDependency(const std::string& service_id,
                                              const std::string& depends_on_id) {
  return pool_.run([&](pqxx::connection& conn) -> absl::Status {
    pqxx::work txn(conn);
    if (txn.exec_params("DELETE FROM catalog_dependencies WHERE service_id = $1::uuid AND "
                        "depends_on_id = $2::uuid RETURNING 1",
                        service_id, depends_on_id)
            .empty()) {
      return absl::NotFoundError("dependency not found");
    }
    txn.commit();
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<CatalogUsageRow>> PgCatalogStore::usage(const std::string& service_id,
                                                                   const std::string& version_id,
                                                                   int granularity, int64_t start,
                                                                   int64_t end) {
  static const auto* const kSql = [] {
    std::string bins, sums;
    for (size_t i = 0; i < portico::vitals::kLatencyBins; ++i) {
      const std::string t = absl::StrCat("t", i);
      sums += ", sum(r." + t + ") AS " + t;
      bins += ", coalesce(u." + t + ", 0)";
    }
    // vitals_routes (every route of a service, consumers added) per bound gateway service;
    // its key starts (granularity, group_name, ts), so each binding reads its window only.
    return new std::string(
        "SELECT b.version_id::text, g.name, b.gateway_service_id::text, "
        "coalesce(u.requests, 0), coalesce(u.errors, 0), coalesce(u.max_total, 0)" +
        bins +
        " FROM catalog_version_bindings b JOIN catalog_versions v ON v.id = b.version_id "
        "JOIN groups g ON g.id = b.control_plane_id CROSS JOIN LATERAL (SELECT "
        "sum(r.requests) AS requests, sum(r.requests) FILTER (WHERE r.status BETWEEN 500 AND "
        "599) AS errors, max(r.max_total) AS max_total" +
        sums +
        " FROM vitals_routes r WHERE r.granularity = $2 AND r.group_name = g.name AND "
        "r.service = b.gateway_service_id::text AND r.ts >= $3 AND r.ts < $4) u "
        "WHERE v.service_id = $1::uuid AND ($5::uuid IS NULL OR v.id = $5::uuid) "
        "ORDER BY g.name, b.gateway_service_id, b.version_id");
  }();
  std::vector<CatalogUsageRow> out;
  const absl::Status st = pool_.run([&](pqxx::connection& conn) -> absl::Status {
    pqxx::read_transaction txn(conn);
    for (const auto& row : txn.exec_params(*kSql, service_id, granularity, start, end,
                                           version_id.empty() ? nullptr : version_id.c_str())) {
      CatalogUsageRow u;
      u.version_id = row[0].as<std::string>();
      u.control_plane_name = row[1].as<std::string>();
      u.gateway_service_id = row[2].as<std::string>();
      u.requests = row[3].as<int64_t>();
      u.errors_5xx = row[4].as<int64_t>();
      u.max_latency_ms = row[5].as<int64_t>();
      for (size_t i = 0; i < portico::vitals::kLatencyBins; ++i) {
        u.latency_bins.push_back(row[static_cast<int>(6 + i)].as<int64_t>());
      }
      out.push_back(std::move(u));
    }
    return absl::OkStatus();
  });
  if (!st.ok()) {
    return st;
  }
  return out;
}

}  // namespace portico::cp
