// Vitals in PostgreSQL (migrations/0008_vitals.up.sql): windows of batches written with
// exactly-once de-duplication, the retention job, and the reads behind GET /vitals/*. libpqxx stays in
// vitals_store.cc; everything here speaks absl::Status.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/vitals/latency_bins.h"
#include "control_plane/store/pg_pool.h"
#include "portico/sync/v1/sync.pb.h"

namespace portico::cp::vitals {

using portico::vitals::LatencyCounts;

// The granularities kept, and for how long (seconds).
struct Granularity {
  int seconds;
  const char* name;  // "10s", "1m", "1h"
  int64_t keep_seconds;
};
inline constexpr Granularity kGranularities[] = {
    {10, "10s", 3600}, {60, "1m", 48 * 3600}, {3600, "1h", 90 * 24 * 3600}};

// Many batches' buckets summed per key, with the senders and seqs they came from: what one
// write transaction stores. VitalsIngest adds each batch into the open window as it arrives
// (then drops the parsed batch), so a fleet's flush is upserted once per key and window, not
// once per batch. Each distinct id string is copied once per window.
class Window {
 public:
  struct SeqRange {
    uint64_t min = 0, max = 0;
  };
  using Sender = std::pair<std::string, std::string>;  // (node_id, instance)

  Window();
  ~Window();
  Window(Window&&) noexcept;
  Window& operator=(Window&&) noexcept;

  // Adds a batch already checked for shape, entities and sequence (VitalsIngest does).
  void add(std::string_view group, const std::string& node_id, const std::string& instance,
           const sync::v1::VitalsBatch& batch);
  bool empty() const;
  // Keys held: 10 s rows of vitals_requests and vitals_nodes (~600 bytes each).
  size_t rows() const;
  size_t batches() const;
  // The seqs added per sender.
  const std::map<Sender, SeqRange>& senders() const;

 private:
  struct Impl;
  friend struct WindowAccess;
  std::unique_ptr<Impl> impl_;
};

struct WriteResult {
  uint64_t rows = 0;  // rows inserted or updated, every table and granularity
  // Senders whose stored seq already reached one of the window's seqs: another replica stored
  // some of the same batches (a DP that moved to it before this one answered). Then nothing
  // was written, and the window's batches must be sent again.
  std::vector<Window::Sender> conflicts;
};

// Stores `window` in one transaction: added into the 10 s rows of vitals_requests,
// vitals_routes and vitals_nodes (and straight into the 1 min and 1 h rows for a minute the
// rollup job already did), into the packed 10 s buckets, and the senders' last seq moved on,
// all or nothing. The senders' rows are locked first, in order, so two replicas never store a
// seq twice. An empty window writes nothing.
absl::Status writeWindow(PgPool& pool, const Window& window, WriteResult* result);

// The last seq stored for a sender (0: none yet).
absl::StatusOr<uint64_t> storedSeq(PgPool& pool, const std::string& node_id,
                                   const std::string& instance);

// Which of `ids` (UUIDs) are entities of `table` ("services", "routes" or "consumers") in
// `group`, as lower-case text.
absl::StatusOr<std::vector<std::string>> existingIds(PgPool& pool, const std::string& table,
                                                     const std::string& group,
                                                     const std::vector<std::string>& ids);

// Adds the 10 s rows of every minute that ended more than `grace_s` ago into its 1 min rows,
// and the 1 min rows of every hour so completed into its 1 h rows, once: watermarks in
// vitals_jobs say what was rolled up, and writeWindow() writes a late bucket of a rolled-up
// minute into the coarse rows itself. Skipped (0) when another replica is at it. Returns the
// rows written.
absl::StatusOr<uint64_t> rollUp(PgPool& pool, int64_t now_s, int64_t grace_s = 60);

// Deletes what is past each granularity's retention, unless another control plane ran the
// job less than `interval_s` ago or is running it now (replicas take turns). Returns the rows
// deleted (0 when it was not this replica's turn).
absl::StatusOr<uint64_t> enforceRetention(PgPool& pool, int64_t now_s, int64_t interval_s);

// A read for GET /vitals/requests.
struct Query {
  std::string group;
  int granularity = 60;
  int64_t start = 0, end = 0;  // [start, end), epoch seconds
  bool by_service = false, by_route = false, by_consumer = false, by_status = false,
       by_node = false;
  std::optional<std::string> service, route, consumer, node;  // ids
};

struct Row {
  int64_t ts = 0;
  std::string service, route, consumer, node;
  int status = 0;
  int64_t requests = 0, bytes_in = 0, bytes_out = 0;
  LatencyCounts total{}, upstream{}, proxy{};
  int64_t max_total = 0, max_upstream = 0, max_proxy = 0;
};

// Rows of `q` summed over every dimension not grouped by, ordered by ts then the keys.
// vitals_nodes answers when grouping or filtering by node (which combines with service and
// status only: the caller checks).
absl::StatusOr<std::vector<Row>> query(PgPool& pool, const Query& q);

// True when `q` can be answered from the packed 10 s buckets (vitals_route_buckets, kept 1 h):
// 10 s granularity, grouped and filtered by service and route only. Retention deletes them
// with the 10 s rows of vitals_routes (same cutoff, same transaction).
bool answersFromPacked(const Query& q);

// The rows of such a query, read from PostgreSQL in one statement (one row per 10 s bucket
// instead of entities x status codes rows summed in SQL), then turned into answer rows a few
// buckets at a time, in query()'s order: an hour by route is ~100 MB of JSON, which the Admin
// API writes out while it is produced instead of building it whole.
class PackedScan {
 public:
  static absl::StatusOr<std::unique_ptr<PackedScan>> open(PgPool& pool, const Query& q);
  ~PackedScan();
  bool done() const;
  // Calls `each` for the rows of the next `max_buckets` buckets (the Row is reused: copy what
  // is kept). kDataLoss for a malformed bucket.
  absl::Status next(int max_buckets, const std::function<void(const Row&)>& each);

 private:
  struct Impl;
  explicit PackedScan(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Every row of a PackedScan.
absl::Status queryPacked(PgPool& pool, const Query& q,
                         const std::function<void(const Row&)>& each);

// Rebuilds the packed buckets from vitals_routes' 10 s rows (the last hour: retention keeps
// no more), for rows written outside ingest (by SQL, or before the packed table existed):
// `portico-cp vitals pack`. Holds the rollup lock exclusively, so writes wait meanwhile.
// Returns the buckets written.
absl::StatusOr<uint64_t> packRouteBuckets(PgPool& pool);

}  // namespace portico::cp::vitals
