#include "control_plane/vitals/vitals_store.h"

#include <algorithm>
#include <compare>
#include <cstring>
#include <memory>
#include <limits>
#include <map>
#include <set>
#include <stdexcept>
#include <tuple>
#include <utility>

#include <libpq-fe.h>
#include <pqxx/pqxx>

#include "absl/container/flat_hash_map.h"
#include "absl/container/node_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "control_plane/store/pg_copy.h"

namespace portico::cp::vitals {
namespace {

using detail::BinaryCopy;
using detail::RawConnection;
using portico::vitals::kLatencyBins;

// "vitals_r" in ASCII: the retention job's transaction-scoped advisory lock.
constexpr int64_t kRetentionLockKey = 0x766974616c735f72LL;
// "vitals_u": the rollup job takes it exclusively, ingest shared: a write never runs while a
// rollup moves the watermarks, so each 10 s row reaches the coarser rows exactly once.
constexpr int64_t kRollupLockKey = 0x766974616c735f75LL;
// No watermark yet: nothing was rolled up.
constexpr int64_t kNoWatermark = std::numeric_limits<int64_t>::min() / 2;

struct Table {
  const char* name;
  const char* keys;  // the text key columns, in order
  int text_keys;
};
constexpr Table kTables[] = {{"vitals_requests", "service, route, consumer", 3},
                             {"vitals_routes", "service, route", 2},
                             {"vitals_nodes", "node, service", 2}};

// A write's session table for `t`: vitals_in_requests, ...
std::string stagingName(const Table& t) {
  return std::string("vitals_in_") + (t.name + 7);
}

int64_t watermark(pqxx::transaction_base& txn, const char* name) {
  const pqxx::result r = txn.exec_params("SELECT last_run FROM vitals_jobs WHERE name = $1", name);
  return r.empty() ? kNoWatermark : r[0][0].as<int64_t>();
}

struct Agg {
  int64_t requests = 0, bytes_in = 0, bytes_out = 0;
  LatencyCounts total{}, upstream{}, proxy{};
  int64_t max_total = 0, max_upstream = 0, max_proxy = 0;

  void add(const sync::v1::VitalsBucket& b) {
    requests += b.requests();
    bytes_in += b.bytes_in();
    bytes_out += b.bytes_out();
    addHist(total, &max_total, b.total());
    addHist(upstream, &max_upstream, b.upstream());
    addHist(proxy, &max_proxy, b.proxy());
  }
  void add(const Agg& o) {
    requests += o.requests;
    bytes_in += o.bytes_in;
    bytes_out += o.bytes_out;
    for (size_t i = 0; i < kLatencyBins; ++i) {
      total[i] += o.total[i];
      upstream[i] += o.upstream[i];
      proxy[i] += o.proxy[i];
    }
    max_total = std::max(max_total, o.max_total);
    max_upstream = std::max(max_upstream, o.max_upstream);
    max_proxy = std::max(max_proxy, o.max_proxy);
  }
  static void addHist(LatencyCounts& into, int64_t* max, const sync::v1::LatencyHistogram& h) {
    for (int i = 0; i < h.bins_size() && i < static_cast<int>(kLatencyBins); ++i) {
      into[static_cast<size_t>(i)] += h.bins(i);
    }
    *max = std::max(*max, h.max_ms());
  }
};

// Keys of the three tables. Strings are views into the window's own copies (Window::Impl),
// made once per distinct id: adding a fleet's buckets copies no string per bucket.
struct Key {
  int granularity = 0;
  int64_t ts = 0;
  std::string_view group, a, b, c;  // requests: service, route, consumer; routes: service,
                                    // route, ""; nodes: node, service, ""
  int status = 0;
  bool operator==(const Key&) const = default;
  template <typename H>
  friend H AbslHashValue(H h, const Key& k) {
    return H::combine(std::move(h), k.granularity, k.ts, k.group, k.a, k.b, k.c, k.status);
  }
};
using AggMap = absl::flat_hash_map<Key, Agg>;

// The histogram columns: t0..t15, u0..u15, p0..p15.
std::vector<std::string> histColumns() {
  std::vector<std::string> cols;
  for (const char* p : {"t", "u", "p"}) {
    for (size_t i = 0; i < kLatencyBins; ++i) cols.push_back(absl::StrCat(p, i));
  }
  return cols;
}

const std::string& metricColumns() {
  static const std::string* cols = [] {
    return new std::string(absl::StrCat("requests, bytes_in, bytes_out, max_total, max_upstream, "
                                        "max_proxy, ",
                                        absl::StrJoin(histColumns(), ", ")));
  }();
  return *cols;
}

// ON CONFLICT's SET list that adds a new row into an existing one (`t`).
const std::string& addMetrics() {
  static const std::string* set = [] {
    auto* out = new std::string(
        "requests = t.requests + EXCLUDED.requests, bytes_in = t.bytes_in + EXCLUDED.bytes_in, "
        "bytes_out = t.bytes_out + EXCLUDED.bytes_out, "
        "max_total = GREATEST(t.max_total, EXCLUDED.max_total), "
        "max_upstream = GREATEST(t.max_upstream, EXCLUDED.max_upstream), "
        "max_proxy = GREATEST(t.max_proxy, EXCLUDED.max_proxy)");
    for (const std::string& c : histColumns()) {
      absl::StrAppend(out, ", ", c, " = t.", c, " + EXCLUDED.", c);
    }
    return out;
  }();
  return *set;
}

// The sums of the metric columns over grouped rows, in metricColumns() order.
const std::string& sumMetrics() {
  static const std::string* sums = [] {
    auto* out = new std::string(
        "sum(requests)::bigint, sum(bytes_in)::bigint, sum(bytes_out)::bigint, max(max_total), "
        "max(max_upstream), max(max_proxy)");
    // sum(bigint) is numeric: back to bigint, whose text PostgreSQL writes and we read faster.
    for (const std::string& c : histColumns()) absl::StrAppend(out, ", sum(", c, ")::bigint");
    return out;
  }();
  return *sums;
}

// INSERT ... SELECT from a staging table (the same columns) into `table`, adding into existing
// rows. Rows go in key order: replicas writing the same keys lock them in the same order.
std::string upsertSql(const std::string& table, const std::string& staging,
                      const std::string& keys) {
  return absl::StrCat("INSERT INTO ", table, " AS t (", keys, ", ", metricColumns(), ") SELECT ",
                      keys, ", ", metricColumns(), " FROM ", staging, " ORDER BY ", keys,
                      " ON CONFLICT (", keys, ") DO UPDATE SET ", addMetrics());
}

// COPY `rows` into a staging table whose columns are (granularity, group_name, ts, <3 or 2
// text keys>, status, then metricColumns()).
void copyRows(pqxx::work& txn, const std::string& staging, const AggMap& rows, int text_keys) {
  BinaryCopy copy(txn, staging);
  const int16_t fields = static_cast<int16_t>(4 + text_keys + 6 + 3 * kLatencyBins);
  for (const auto& [k, a] : rows) {
    copy.row(fields);
    copy.i32(k.granularity);
    copy.text(k.group);
    copy.i64(k.ts);
    copy.text(k.a);
    copy.text(k.b);
    if (text_keys == 3) copy.text(k.c);
    copy.i16(k.status);
    for (int64_t v : {a.requests, a.bytes_in, a.bytes_out, a.max_total, a.max_upstream,
                      a.max_proxy}) {
      copy.i64(v);
    }
    for (const LatencyCounts* h : {&a.total, &a.upstream, &a.proxy}) {
      for (int64_t v : *h) copy.i64(v);
    }
  }
  copy.complete();
}

// --- Packed 10 s buckets (vitals_route_buckets) ---------------------------------------------
// One row per (group, 10 s bucket) holding every (service, route) of it, status codes added:
//   entry := id(service) id(route) varint x 54 (requests, bytes_in, bytes_out, max_total,
//            max_upstream, max_proxy, total[16], upstream[16], proxy[16])
//   id    := 0 (empty) | 1 + 16 bytes (a lower-case canonical UUID) | 2 + varint length + bytes
// Entries in (service, route) byte order, which is the order PostgreSQL returns the same
// grouping in (ids are UUIDs or empty).
constexpr int64_t kPackedKeepSeconds = 3600;
constexpr size_t kPackedValues = 6 + 3 * kLatencyBins;

struct PackedKey {
  std::string service, route;
  auto operator<=>(const PackedKey&) const = default;
};
using PackedBucket = std::map<PackedKey, Agg>;

void putVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

void putId(std::string& out, std::string_view id) {
  if (id.empty()) {
    out.push_back(0);
    return;
  }
  if (id.size() == 36) {
    char raw[16];
    size_t n = 0;
    bool ok = true;
    for (size_t i = 0; i < 36 && ok; ++i) {
      if (i == 8 || i == 13 || i == 18 || i == 23) {
        ok = id[i] == '-';
        continue;
      }
      const int hi = hexValue(id[i]), lo = i + 1 < 36 ? hexValue(id[i + 1]) : -1;
      ok = hi >= 0 && lo >= 0;
      raw[n++] = static_cast<char>(hi << 4 | lo);
      ++i;
    }
    if (ok && n == 16) {
      out.push_back(1);
      out.append(raw, 16);
      return;
    }
  }
  out.push_back(2);
  putVarint(out, id.size());
  out.append(id);
}

// Reads a packed bucket; false when it is malformed (then nothing is trusted).
class PackedReader {
 public:
  explicit PackedReader(std::string_view data) : p_(data.data()), end_(data.data() + data.size()) {}
  bool done() const { return p_ == end_; }
  // The next entry: its ids (valid until the next call) and values.
  bool next(std::string_view* service, std::string_view* route, int64_t values[kPackedValues]) {
    if (!id(&service_, service) || !id(&route_, route)) return false;
    for (size_t i = 0; i < kPackedValues; ++i) {
      uint64_t v = 0;
      if (!varint(&v)) return false;
      values[i] = static_cast<int64_t>(v);
    }
    return true;
  }

 private:
  bool varint(uint64_t* v) {
    uint64_t r = 0;
    for (int shift = 0; shift < 64 && p_ < end_; shift += 7) {
      const uint8_t b = static_cast<uint8_t>(*p_++);
      r |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (b < 0x80) {
        *v = r;
        return true;
      }
    }
    return false;
  }
  bool id(std::string* buf, std::string_view* out) {
    if (p_ >= end_) return false;
    const uint8_t tag = static_cast<uint8_t>(*p_++);
    if (tag == 0) {
      *out = {};
      return true;
    }
    if (tag == 1) {
      if (end_ - p_ < 16) return false;
      static constexpr char kHex[] = "0123456789abcdef";
      buf->resize(36);
      char* o = buf->data();
      for (int i = 0; i < 16; ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10) *o++ = '-';
        const uint8_t b = static_cast<uint8_t>(p_[i]);
        *o++ = kHex[b >> 4];
        *o++ = kHex[b & 15];
      }
      p_ += 16;
      *out = *buf;
      return true;
    }
    uint64_t n = 0;
    if (tag != 2 || !varint(&n) || static_cast<uint64_t>(end_ - p_) < n) return false;
    *out = std::string_view(p_, n);
    p_ += n;
    return true;
  }

  const char* p_;
  const char* end_;
  std::string service_, route_;
};

void valuesToAgg(const int64_t v[kPackedValues], Agg* a) {
  a->requests = v[0];
  a->bytes_in = v[1];
  a->bytes_out = v[2];
  a->max_total = v[3];
  a->max_upstream = v[4];
  a->max_proxy = v[5];
  for (size_t i = 0; i < kLatencyBins; ++i) {
    a->total[i] = v[6 + i];
    a->upstream[i] = v[6 + kLatencyBins + i];
    a->proxy[i] = v[6 + 2 * kLatencyBins + i];
  }
}

absl::Status decodePacked(std::string_view data, PackedBucket* out) {
  PackedReader r(data);
  int64_t v[kPackedValues];
  std::string_view service, route;
  while (!r.done()) {
    if (!r.next(&service, &route, v)) return absl::DataLossError("malformed packed vitals bucket");
    Agg a;
    valuesToAgg(v, &a);
    (*out)[PackedKey{std::string(service), std::string(route)}].add(a);
  }
  return absl::OkStatus();
}

std::string encodePacked(const PackedBucket& bucket) {
  std::string out;
  out.reserve(bucket.size() * 100);
  for (const auto& [k, a] : bucket) {
    putId(out, k.service);
    putId(out, k.route);
    for (int64_t v : {a.requests, a.bytes_in, a.bytes_out, a.max_total, a.max_upstream,
                      a.max_proxy}) {
      putVarint(out, static_cast<uint64_t>(v));
    }
    for (const LatencyCounts* h : {&a.total, &a.upstream, &a.proxy}) {
      for (int64_t v : *h) putVarint(out, static_cast<uint64_t>(v));
    }
  }
  return out;
}

// Runs `sql` with text parameters and returns binary results (bytea as raw bytes, bigint as 8
// bytes big-endian), on the transaction's connection. Throws on failure, as pqxx does.
struct PgResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgResult = std::unique_ptr<PGresult, PgResultDeleter>;
PgResult execBinary(pqxx::dbtransaction& txn, const std::string& sql,
                    const std::vector<std::string_view>& params,
                    const std::vector<int>& binary_params = {}) {
  PGconn* conn = RawConnection::of(txn);
  std::vector<const char*> values;
  std::vector<int> lengths, formats;
  std::vector<std::string> copies;  // text parameters need a NUL
  copies.reserve(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    const bool binary = i < binary_params.size() && binary_params[i] != 0;
    if (binary) {
      values.push_back(params[i].data());
    } else {
      copies.emplace_back(params[i]);
      values.push_back(copies.back().c_str());
    }
    lengths.push_back(static_cast<int>(params[i].size()));
    formats.push_back(binary ? 1 : 0);
  }
  PgResult r(PQexecParams(conn, sql.c_str(), static_cast<int>(params.size()), nullptr,
                          values.data(), lengths.data(), formats.data(), 1));
  const ExecStatusType st = PQresultStatus(r.get());
  if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
    throw std::runtime_error(absl::StrCat("vitals_route_buckets: ", PQerrorMessage(conn)));
  }
  return r;
}

int64_t binaryInt64(const PGresult* r, int row, int col) {
  uint64_t be = 0;
  std::memcpy(&be, PQgetvalue(r, row, col), 8);
  return static_cast<int64_t>(__builtin_bswap64(be));
}

std::string bigintArray(const std::vector<int64_t>& v) {
  return absl::StrCat("{", absl::StrJoin(v, ","), "}");
}

// Adds `add` (per bucket start) into the group's packed rows, in one statement per step:
// rows made if missing, locked in ts order (replicas writing the same buckets take turns), read,
// summed in C++, written back.
void addPacked(pqxx::work& txn, std::string_view group,
               const std::map<int64_t, PackedBucket>& add) {
  if (add.empty()) return;
  std::vector<int64_t> ts;
  for (const auto& [t, b] : add) ts.push_back(t);
  const std::string list = bigintArray(ts);
  execBinary(txn,
             "INSERT INTO vitals_route_buckets (group_name, ts, data) SELECT $1, t, ''::bytea "
             "FROM unnest($2::bigint[]) t ON CONFLICT DO NOTHING",
             {group, list});
  PgResult rows = execBinary(txn,
                             "SELECT ts, data FROM vitals_route_buckets WHERE group_name = $1 "
                             "AND ts = ANY($2::bigint[]) ORDER BY ts FOR UPDATE",
                             {group, list});
  for (int i = 0; i < PQntuples(rows.get()); ++i) {
    const int64_t t = binaryInt64(rows.get(), i, 0);
    auto it = add.find(t);
    if (it == add.end()) continue;
    PackedBucket merged;
    const absl::Status st = decodePacked(
        std::string_view(PQgetvalue(rows.get(), i, 1),
                         static_cast<size_t>(PQgetlength(rows.get(), i, 1))),
        &merged);
    if (!st.ok()) throw std::runtime_error(std::string(st.message()));
    for (const auto& [k, a] : it->second) merged[k].add(a);
    const std::string data = encodePacked(merged);
    const std::string ts_text = std::to_string(t);
    execBinary(txn, "UPDATE vitals_route_buckets SET data = $3 WHERE group_name = $1 AND ts = $2",
               {group, ts_text, data}, {0, 0, 1});
  }
}

}  // namespace

struct Window::Impl {
  // Every id, group and node name the window's keys point into (stable addresses).
  absl::node_hash_set<std::string> strings;
  AggMap requests, nodes;  // 10 s rows
  std::map<Sender, SeqRange> senders;
  size_t batches = 0;

  std::string_view intern(std::string_view s) {
    const absl::string_view key(s.data(), s.size());  // absl's own view type here
    auto it = strings.find(key);
    if (it == strings.end()) it = strings.emplace(s).first;
    return *it;
  }
};

// writeWindow's view of a Window.
struct WindowAccess {
  static const Window::Impl& of(const Window& w) { return *w.impl_; }
};

Window::Window() : impl_(std::make_unique<Impl>()) {}
Window::~Window() = default;
Window::Window(Window&&) noexcept = default;
Window& Window::operator=(Window&&) noexcept = default;

void Window::add(std::string_view group, const std::string& node_id, const std::string& instance,
                 const sync::v1::VitalsBatch& batch) {
  Impl& w = *impl_;
  const std::string_view g = w.intern(group), node = w.intern(node_id);
  // A batch's buckets come route by route: most ids repeat the previous bucket's.
  std::string_view service, route;
  const std::string* last_service = nullptr;
  const std::string* last_route = nullptr;
  for (const sync::v1::VitalsBucket& b : batch.buckets()) {
    if (last_service == nullptr || *last_service != b.service_id()) {
      service = w.intern(b.service_id());
      last_service = &b.service_id();
    }
    if (last_route == nullptr || *last_route != b.route_id()) {
      route = w.intern(b.route_id());
      last_route = &b.route_id();
    }
    const std::string_view consumer = w.intern(b.consumer_id());
    w.requests[Key{10, b.start(), g, service, route, consumer, b.status_code()}].add(b);
    w.nodes[Key{10, b.start(), g, node, service, {}, b.status_code()}].add(b);
  }
  SeqRange& range = w.senders[{node_id, instance}];
  range.min = range.max == 0 ? batch.seq() : std::min(range.min, batch.seq());
  range.max = std::max(range.max, batch.seq());
  w.batches++;
}

bool Window::empty() const { return impl_->batches == 0; }
size_t Window::rows() const { return impl_->requests.size() + impl_->nodes.size(); }
size_t Window::batches() const { return impl_->batches; }
const std::map<Window::Sender, Window::SeqRange>& Window::senders() const {
  return impl_->senders;
}

absl::Status writeWindow(PgPool& pool, const Window& window, WriteResult* result) {
  const auto& w = WindowAccess::of(window);
  if (w.batches == 0) return absl::OkStatus();
  return pool.run([&](pqxx::connection& conn) -> absl::Status {
    *result = WriteResult{};
    const int64_t now_s = static_cast<int64_t>(std::time(nullptr));
    pqxx::work txn(conn);
    txn.exec("SET LOCAL statement_timeout = '60s'");
    txn.exec("SET LOCAL client_min_messages = warning");
    txn.exec_params("SELECT pg_advisory_xact_lock_shared($1)", kRollupLockKey);

    // 1. Exactly once across replicas: the senders' rows locked in key order, and none may
    // have stored a seq of this window already.
    for (const auto& [sender, range] : w.senders) {
      txn.exec_params("INSERT INTO vitals_senders (node_id, instance, last_seq, updated_at) "
                      "VALUES ($1, $2, 0, $3) ON CONFLICT DO NOTHING",
                      sender.first, sender.second, now_s);
      const int64_t last = txn.exec_params("SELECT last_seq FROM vitals_senders WHERE node_id = "
                                           "$1 AND instance = $2 FOR UPDATE",
                                           sender.first, sender.second)[0][0]
                               .as<int64_t>();
      if (last >= static_cast<int64_t>(range.min)) result->conflicts.push_back(sender);
    }
    if (!result->conflicts.empty()) return absl::OkStatus();  // rolled back: nothing written

    const int64_t rolled_1m = watermark(txn, "rollup_1m");
    const int64_t rolled_1h = watermark(txn, "rollup_1h");
    for (const Table& t : kTables) {
      // Session tables shaped like the target (LIKE: the same columns and types).
      txn.exec(absl::StrCat("CREATE TEMP TABLE IF NOT EXISTS ", stagingName(t),
                            " (LIKE ", t.name, ") ON COMMIT DELETE ROWS"));
    }

    // 2. The route rows are the request rows with consumers added.
    AggMap routes;
    for (const auto& [k, agg] : w.requests) {
      Key r = k;
      r.c = {};
      routes[r].add(agg);
    }
    // Only 10 s rows, normally: the rollup job adds them into the 1 min and 1 h rows once their
    // minute is over (one write per row per minute, not one per flush). A late bucket whose
    // minute (hour) was already rolled up goes into those rows here, directly.
    const auto lateRows = [&](const AggMap& m) {
      AggMap late;
      for (const auto& [k, agg] : m) {
        if (k.ts >= rolled_1m) continue;
        Key minute = k;
        minute.granularity = 60;
        minute.ts = k.ts - k.ts % 60;
        late[minute].add(agg);
        if (k.ts < rolled_1h) {
          Key hour = k;
          hour.granularity = 3600;
          hour.ts = k.ts - k.ts % 3600;
          late[hour].add(agg);
        }
      }
      return late;
    };

    // 3. Write: COPY into session staging tables, then one upsert each.
    const AggMap* maps[] = {&w.requests, &routes, &w.nodes};
    for (size_t i = 0; i < std::size(kTables); ++i) {
      const Table& t = kTables[i];
      copyRows(txn, stagingName(t), *maps[i], t.text_keys);
      const AggMap late = lateRows(*maps[i]);
      if (!late.empty()) copyRows(txn, stagingName(t), late, t.text_keys);
      result->rows += txn.exec(upsertSql(t.name, stagingName(t),
                                         absl::StrCat("granularity, group_name, ts, ", t.keys,
                                                      ", status")))
                          .affected_rows();
    }
    // 4. The packed 10 s buckets (what a 10 s read by route answers from), statuses added.
    std::map<std::string_view, std::map<int64_t, PackedBucket>> packed;
    for (const auto& [k, agg] : routes) {
      packed[k.group][k.ts][PackedKey{std::string(k.a), std::string(k.b)}].add(agg);
    }
    for (const auto& [group, buckets] : packed) addPacked(txn, group, buckets);
    for (const auto& [sender, range] : w.senders) {
      txn.exec_params("UPDATE vitals_senders SET last_seq = $3, updated_at = $4 "
                      "WHERE node_id = $1 AND instance = $2",
                      sender.first, sender.second, static_cast<int64_t>(range.max), now_s);
    }
    txn.commit();
    return absl::OkStatus();
  });
}

absl::StatusOr<uint64_t> storedSeq(PgPool& pool, const std::string& node_id,
                                   const std::string& instance) {
  uint64_t seq = 0;
  absl::Status st = pool.run([&](pqxx::connection& conn) -> absl::Status {
    pqxx::nontransaction txn(conn);
    const pqxx::result r = txn.exec_params(
        "SELECT last_seq FROM vitals_senders WHERE node_id = $1 AND instance = $2", node_id,
        instance);
    seq = r.empty() ? 0 : r[0][0].as<uint64_t>();
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  return seq;
}

absl::StatusOr<std::vector<std::string>> existingIds(PgPool& pool, const std::string& table,
                                                     const std::string& group,
                                                     const std::vector<std::string>& ids) {
  std::vector<std::string> found;
  if (ids.empty()) return found;
  if (table != "services" && table != "routes" && table != "consumers") {
    return absl::InvalidArgumentError(absl::StrCat("no entity table ", table));
  }
  absl::Status st = pool.run([&](pqxx::connection& conn) -> absl::Status {
    found.clear();
    std::string list = "{";
    for (const std::string& id : ids) {
      if (list.size() > 1) list.push_back(',');
      list.append(id);  // checked UUIDs: nothing to quote
    }
    list.push_back('}');
    pqxx::nontransaction txn(conn);
    for (const auto& row : txn.exec_params("SELECT id::text FROM " + table +
                                               " WHERE group_name = $1 AND id = ANY($2::uuid[])",
                                           group, list)) {
      found.push_back(row[0].as<std::string>());
    }
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  return found;
}

absl::StatusOr<uint64_t> rollUp(PgPool& pool, int64_t now_s, int64_t grace_s) {
  uint64_t rows = 0;
  absl::Status st = pool.run([&](pqxx::connection& conn) -> absl::Status {
    pqxx::work txn(conn);
    txn.exec("SET LOCAL statement_timeout = '300s'");
    if (!txn.exec_params("SELECT pg_try_advisory_xact_lock($1)", kRollupLockKey)[0][0]
             .as<bool>()) {
      return absl::OkStatus();  // another replica is rolling up, or a write holds it
    }
    // Minutes whose buckets all came in (grace_s after their end), then the hours of them.
    const int64_t until_1m = (now_s - grace_s) - (now_s - grace_s) % 60;
    struct Step {
      const char* job;
      int from, to;
      int64_t until;
    };
    for (const Step& step : {Step{"rollup_1m", 10, 60, until_1m},
                             Step{"rollup_1h", 60, 3600, until_1m - until_1m % 3600}}) {
      int64_t from = watermark(txn, step.job);
      if (from == kNoWatermark) {
        // First run: from the oldest row of the finer granularity (or nothing to do).
        const pqxx::result r = txn.exec_params(
            "SELECT min(ts) FROM vitals_routes WHERE granularity = $1", step.from);
        from = r[0][0].is_null() ? step.until : r[0][0].as<int64_t>();
        from -= from % step.to;
      }
      if (step.until <= from) continue;
      for (const Table& t : kTables) {
        const std::string keys = absl::StrCat("granularity, group_name, ts, ", t.keys, ", status");
        rows += txn.exec_params(
                       absl::StrCat("INSERT INTO ", t.name, " AS t (", keys, ", ",
                                    metricColumns(), ") SELECT $1::integer, group_name, ts - ts % $1, ",
                                    t.keys, ", status, ", sumMetrics(), " FROM ", t.name,
                                    " WHERE granularity = $2 AND ts >= $3 AND ts < $4 GROUP BY "
                                    "group_name, ts - ts % $1, ",
                                    t.keys, ", status ORDER BY 2, 3, 4, 5",
                                    t.text_keys == 3 ? ", 6, 7" : ", 6",
                                    " ON CONFLICT (", keys, ") DO UPDATE SET ", addMetrics()),
                       step.to, step.from, from, step.until)
                    .affected_rows();
      }
      txn.exec_params("INSERT INTO vitals_jobs (name, last_run) VALUES ($1, $2) "
                      "ON CONFLICT (name) DO UPDATE SET last_run = EXCLUDED.last_run",
                      step.job, step.until);
    }
    txn.commit();
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  return rows;
}

absl::StatusOr<uint64_t> enforceRetention(PgPool& pool, int64_t now_s, int64_t interval_s) {
  uint64_t deleted = 0;
  absl::Status st = pool.run([&](pqxx::connection& conn) -> absl::Status {
    pqxx::work txn(conn);
    txn.exec("SET LOCAL statement_timeout = '300s'");
    if (!txn.exec_params("SELECT pg_try_advisory_xact_lock($1)", kRetentionLockKey)[0][0]
             .as<bool>()) {
      return absl::OkStatus();  // another replica is on it
    }
    const pqxx::result last =
        txn.exec("SELECT last_run FROM vitals_jobs WHERE name = 'retention'");
    if (!last.empty() && now_s - last[0][0].as<int64_t>() < interval_s) {
      return absl::OkStatus();  // another replica ran it recently: its turn was taken
    }
    txn.exec_params("INSERT INTO vitals_jobs (name, last_run) VALUES ('retention', $1) "
                    "ON CONFLICT (name) DO UPDATE SET last_run = EXCLUDED.last_run",
                    now_s);
    for (const Granularity& g : kGranularities) {
      const int64_t cutoff = now_s - g.keep_seconds;
      deleted += txn.exec_params("DELETE FROM vitals_requests WHERE granularity = $1 AND ts < $2",
                                 g.seconds, cutoff)
                     .affected_rows();
      for (const char* table : {"vitals_nodes", "vitals_routes"}) {
        deleted += txn.exec_params(absl::StrCat("DELETE FROM ", table,
                                                " WHERE granularity = $1 AND ts < $2"),
                                   g.seconds, cutoff)
                       .affected_rows();
      }
    }
    deleted += txn.exec_params("DELETE FROM vitals_route_buckets WHERE ts < $1",
                               now_s - kPackedKeepSeconds)
                   .affected_rows();
    // A sender silent for a week is a DP process long gone.
    deleted += txn.exec_params("DELETE FROM vitals_senders WHERE updated_at < $1",
                               now_s - 7 * 24 * 3600)
                   .affected_rows();
    txn.commit();
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  return deleted;
}

absl::StatusOr<std::vector<Row>> query(PgPool& pool, const Query& q) {
  // The smallest table that has every dimension asked for.
  const bool nodes = q.by_node || q.node.has_value();
  const bool consumers = !nodes && (q.by_consumer || q.consumer.has_value());
  const Table& t = nodes ? kTables[2] : consumers ? kTables[0] : kTables[1];
  const auto dim = [](bool grouped, bool present, const char* column) {
    return grouped && present ? std::string(column) : std::string("''::text");
  };
  const std::string service = dim(q.by_service, true, "service");
  const std::string route = dim(q.by_route, !nodes, "route");
  const std::string consumer = dim(q.by_consumer, consumers, "consumer");
  const std::string node = dim(q.by_node, nodes, "node");
  const std::string status = q.by_status ? "status" : "0";
  // Grouped in the primary key's order where it can be: a route has one service, so grouping
  // by route groups by (service, route) too, and PostgreSQL then aggregates straight off the
  // index (GroupAggregate) instead of sorting every row (4.5 s instead of 9.9 s for 1.44M
  // rows of 1,000 routes x 360 buckets).
  std::vector<std::string> group_by = {"ts"};
  if (nodes && q.by_node) group_by.push_back("node");
  if (q.by_service || (q.by_route && !nodes)) group_by.push_back("service");
  if (q.by_route && !nodes) group_by.push_back("route");
  if (q.by_consumer && consumers) group_by.push_back("consumer");
  if (q.by_status) group_by.push_back("status");
  const std::string keys = absl::StrJoin(group_by, ", ");
  std::string filters = " AND group_name = $2 AND ts >= $3 AND ts < $4 AND ($5::text IS NULL OR "
                        "service = $5)";
  if (nodes) {
    absl::StrAppend(&filters, " AND ($6::text IS NULL OR node = $6)");
  } else {
    absl::StrAppend(&filters, " AND ($6::text IS NULL OR route = $6)");
    if (consumers) absl::StrAppend(&filters, " AND ($7::text IS NULL OR consumer = $7)");
  }
  // Coarse rows exist up to the rollup watermarks; past them the finer rows answer, added up
  // into the coarse buckets here (so 1 min and 1 h answers are as fresh as 10 s ones).
  const std::string cols = absl::StrCat(t.keys, ", status, ", metricColumns());
  const std::string w1m = "(SELECT coalesce(max(last_run), -4611686018427387904) FROM vitals_jobs "
                          "WHERE name = 'rollup_1m')";
  const std::string w1h = "(SELECT coalesce(max(last_run), -4611686018427387904) FROM vitals_jobs "
                          "WHERE name = 'rollup_1h')";
  const auto part = [&](int granularity, const std::string& range) {
    return absl::StrCat("SELECT ts - ts % $1 AS ts, ", cols, " FROM ", t.name,
                        " WHERE granularity = ", granularity, filters, range);
  };
  std::string from;
  if (q.granularity == 10) {
    from = absl::StrCat(t.name, " WHERE granularity = $1", filters);  // the index, directly
  } else if (q.granularity == 60) {
    from = absl::StrCat("(", part(60, " AND ts < " + w1m), " UNION ALL ",
                        part(10, " AND ts >= " + w1m), ") u");
  } else {
    from = absl::StrCat("(", part(3600, " AND ts < " + w1h), " UNION ALL ",
                        part(60, absl::StrCat(" AND ts >= ", w1h, " AND ts < ", w1m)),
                        " UNION ALL ", part(10, " AND ts >= " + w1m), ") u");
  }
  const std::string sql = absl::StrCat("SELECT ts, ", service, ", ", route, ", ", consumer, ", ",
                                       node, ", ", status, ", ", sumMetrics(), " FROM ", from,
                                       " GROUP BY ", keys, " ORDER BY ", keys);
  std::vector<Row> out;
  absl::Status st = pool.run([&](pqxx::connection& conn) -> absl::Status {
    pqxx::read_transaction txn(conn);
    txn.exec("SET LOCAL statement_timeout = '30s'");
    // A wide grouping (1,000 routes x 360 buckets, 54 sums each) spills to disk at the default
    // 4 MB and takes several times longer.
    txn.exec("SET LOCAL work_mem = '256MB'");
    txn.exec("SET LOCAL jit = off");  // compiling 54 aggregates costs ~2 s and saves nothing
    const auto opt = [](const std::optional<std::string>& v) -> const char* {
      return v.has_value() ? v->c_str() : nullptr;
    };
    // Through a cursor, FETCHed in slices: libpq never holds the whole answer (360,000 rows
    // x 54 fields took ~1 GB and most of the request's time in malloc and page faults).
    const std::string declare = "DECLARE vitals_rows NO SCROLL CURSOR FOR " + sql;
    if (nodes) {
      txn.exec_params(declare, q.granularity, q.group, q.start, q.end, opt(q.service),
                      opt(q.node));
    } else if (consumers) {
      txn.exec_params(declare, q.granularity, q.group, q.start, q.end, opt(q.service),
                      opt(q.route), opt(q.consumer));
    } else {
      txn.exec_params(declare, q.granularity, q.group, q.start, q.end, opt(q.service),
                      opt(q.route));
    }
    // Sums come back as text; strtoll reads them without pqxx's conversions.
    const auto num = [](const pqxx::field& f) { return std::strtoll(f.c_str(), nullptr, 10); };
    for (;;) {
      const pqxx::result rows = txn.exec("FETCH 20000 FROM vitals_rows");
      if (rows.empty()) break;
      for (const auto& row : rows) {
        Row r;
        r.ts = num(row[0]);
        r.service = row[1].c_str();
        r.route = row[2].c_str();
        r.consumer = row[3].c_str();
        r.node = row[4].c_str();
        r.status = static_cast<int>(num(row[5]));
        r.requests = num(row[6]);
        r.bytes_in = num(row[7]);
        r.bytes_out = num(row[8]);
        r.max_total = num(row[9]);
        r.max_upstream = num(row[10]);
        r.max_proxy = num(row[11]);
        for (size_t i = 0; i < kLatencyBins; ++i) {
          r.total[i] = num(row[static_cast<int>(12 + i)]);
          r.upstream[i] = num(row[static_cast<int>(12 + kLatencyBins + i)]);
          r.proxy[i] = num(row[static_cast<int>(12 + 2 * kLatencyBins + i)]);
        }
        out.push_back(std::move(r));
      }
    }
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  return out;
}

bool answersFromPacked(const Query& q) {
  return q.granularity == 10 && !q.by_consumer && !q.by_status && !q.by_node &&
         !q.consumer.has_value() && !q.node.has_value();
}

struct PackedScan::Impl {
  Query q;
  PgResult rows;
  int next_row = 0;
  // One Row reused for every answer row; `acc` adds entries up when a grouping leaves out
  // the route (entries are in (service, route) order, so a service's are consecutive).
  Row acc;
  std::string group_service;
};

PackedScan::PackedScan(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PackedScan::~PackedScan() = default;

absl::StatusOr<std::unique_ptr<PackedScan>> PackedScan::open(PgPool& pool, const Query& q) {
  auto impl = std::make_unique<Impl>();
  impl->q = q;
  const absl::Status st = pool.run([&](pqxx::connection& conn) -> absl::Status {
    pqxx::read_transaction txn(conn);
    txn.exec("SET LOCAL statement_timeout = '30s'");
    const std::string start = std::to_string(q.start), end = std::to_string(q.end);
    impl->rows = execBinary(txn,
                            "SELECT ts, data FROM vitals_route_buckets WHERE group_name = $1 "
                            "AND ts >= $2 AND ts < $3 ORDER BY ts",
                            {q.group, start, end});
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  return std::unique_ptr<PackedScan>(new PackedScan(std::move(impl)));
}

bool PackedScan::done() const { return impl_->next_row >= PQntuples(impl_->rows.get()); }

absl::Status PackedScan::next(int max_buckets, const std::function<void(const Row&)>& each) {
  const Query& q = impl_->q;
  const PGresult* rows = impl_->rows.get();
  Row& acc = impl_->acc;
  std::string& group_service = impl_->group_service;
  bool open = false;
  const auto emit = [&] {
    if (open) each(acc);
    open = false;
  };
  int64_t v[kPackedValues];
  std::string_view service, route;
  const int end = std::min(PQntuples(rows), impl_->next_row + std::max(max_buckets, 1));
  for (int i = impl_->next_row; i < end; ++i) {
    impl_->next_row = i + 1;
    const int64_t ts = binaryInt64(rows, i, 0);
    PackedReader r(std::string_view(PQgetvalue(rows, i, 1),
                                    static_cast<size_t>(PQgetlength(rows, i, 1))));
    while (!r.done()) {
      if (!r.next(&service, &route, v)) {
        return absl::DataLossError("malformed packed vitals bucket");
      }
      if ((q.service.has_value() && service != *q.service) ||
          (q.route.has_value() && route != *q.route)) {
        continue;
      }
      const std::string_view key_service = q.by_service || q.by_route ? service : "";
      const std::string_view key_route = q.by_route ? route : "";
      if (open && (acc.ts != ts || group_service != key_service || acc.route != key_route)) {
        emit();
      }
      if (!open) {
        acc.ts = ts;
        group_service.assign(key_service);
        // As query() answers: a key not grouped by is "" (a route implies its service).
        acc.service.assign(q.by_service ? key_service : "");
        acc.route.assign(key_route);
        acc.requests = acc.bytes_in = acc.bytes_out = 0;
        acc.max_total = acc.max_upstream = acc.max_proxy = 0;
        acc.total.fill(0);
        acc.upstream.fill(0);
        acc.proxy.fill(0);
        open = true;
      }
      acc.requests += v[0];
      acc.bytes_in += v[1];
      acc.bytes_out += v[2];
      acc.max_total = std::max(acc.max_total, v[3]);
      acc.max_upstream = std::max(acc.max_upstream, v[4]);
      acc.max_proxy = std::max(acc.max_proxy, v[5]);
      for (size_t b = 0; b < kLatencyBins; ++b) {
        acc.total[b] += v[6 + b];
        acc.upstream[b] += v[6 + kLatencyBins + b];
        acc.proxy[b] += v[6 + 2 * kLatencyBins + b];
      }
    }
    emit();  // a bucket's rows end with it
  }
  return absl::OkStatus();
}

absl::Status queryPacked(PgPool& pool, const Query& q,
                         const std::function<void(const Row&)>& each) {
  absl::StatusOr<std::unique_ptr<PackedScan>> scan = PackedScan::open(pool, q);
  if (!scan.ok()) return scan.status();
  while (!(*scan)->done()) {
    if (absl::Status st = (*scan)->next(64, each); !st.ok()) return st;
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> packRouteBuckets(PgPool& pool) {
  uint64_t written = 0;
  absl::Status st = pool.run([&](pqxx::connection& conn) -> absl::Status {
    written = 0;
    pqxx::work txn(conn);
    txn.exec("SET LOCAL statement_timeout = '600s'");
    txn.exec("SET LOCAL work_mem = '256MB'");
    txn.exec("SET LOCAL jit = off");
    // Exclusive: no write runs meanwhile (writes take it shared), so nothing is added twice.
    txn.exec_params("SELECT pg_advisory_xact_lock($1)", kRollupLockKey);
    // Every 10 s row there is (retention keeps them to the same hour as the packed ones).
    txn.exec("DELETE FROM vitals_route_buckets");
    txn.exec_params(absl::StrCat("DECLARE vitals_pack NO SCROLL CURSOR FOR SELECT group_name, ts, "
                                 "service, route, ",
                                 sumMetrics(),
                                 " FROM vitals_routes WHERE granularity = 10 "
                                 "GROUP BY group_name, ts, service, route ORDER BY group_name, "
                                 "ts, service, route"));
    std::string group;
    int64_t ts = 0;
    PackedBucket bucket;
    const auto flush = [&] {
      if (bucket.empty()) return;
      const std::string data = encodePacked(bucket), ts_text = std::to_string(ts);
      execBinary(txn, "INSERT INTO vitals_route_buckets (group_name, ts, data) VALUES ($1, $2, $3)",
                 {group, ts_text, data}, {0, 0, 1});
      ++written;
      bucket.clear();
    };
    const auto num = [](const pqxx::field& f) { return std::strtoll(f.c_str(), nullptr, 10); };
    for (;;) {
      const pqxx::result rows = txn.exec("FETCH 20000 FROM vitals_pack");
      if (rows.empty()) break;
      for (const auto& row : rows) {
        const std::string g = row[0].c_str();
        const int64_t t = num(row[1]);
        if (g != group || t != ts) {
          flush();
          group = g;
          ts = t;
        }
        int64_t v[kPackedValues];
        for (size_t i = 0; i < kPackedValues; ++i) v[i] = num(row[static_cast<int>(4 + i)]);
        Agg a;
        valuesToAgg(v, &a);
        bucket[PackedKey{row[2].c_str(), row[3].c_str()}].add(a);
      }
    }
    flush();
    txn.commit();
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  return written;
}

}  // namespace portico::cp::vitals
