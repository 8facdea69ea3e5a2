#include "control_plane/vitals/vitals_api.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <memory>
#include <optional>
#include <utility>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "common/vitals/latency_bins.h"
#include "control_plane/vitals/vitals_store.h"

namespace portico::cp::vitals {
namespace {

using Json = nlohmann::json;

// Buckets one answer may span: 1 h at 10 s is 360, 90 days at 1 h is 2,160.
constexpr int64_t kMaxBuckets = 10000;

ApiAnswer fieldError(const std::string& field, const std::string& why) {
  Json body{{"code", 2},
            {"name", "schema violation"},
            {"message", absl::StrCat("schema violation (", field, ": ", why, ")")},
            {"fields", Json{{field, why}}}};
  return {400, body.dump()};
}

ApiAnswer message(int status, const std::string& text) {
  return {status, Json{{"message", text}}.dump()};
}

// Epoch seconds or RFC 3339.
std::optional<int64_t> parseTime(const std::string& text) {
  int64_t v = 0;
  if (absl::SimpleAtoi(text, &v) && v >= 0) return v;
  absl::Time t;
  std::string err;
  if (absl::ParseTime(absl::RFC3339_full, text, &t, &err)) return absl::ToUnixSeconds(t);
  return std::nullopt;
}

// A filter's id: the value when it is an id of the group, else the entity of that name.
// nullopt (and *answer set) when neither exists.
std::optional<std::string> resolve(PgPool& pool, const std::string& group,
                                   const std::string& field, const std::string& value,
                                   ApiAnswer* answer) {
  std::string sql;
  if (field == "service") {
    sql = "SELECT id::text FROM services WHERE group_name = $1 AND (id::text = $2 OR name = $2)";
  } else if (field == "route") {
    sql = "SELECT id::text FROM routes WHERE group_name = $1 AND (id::text = $2 OR name = $2)";
  } else if (field == "consumer") {
    sql = "SELECT id::text FROM consumers WHERE group_name = $1 AND "
          "(id::text = $2 OR username = $2 OR custom_id = $2) ORDER BY (id::text = $2) DESC";
  } else {
    sql = "SELECT id FROM clustering_data_planes WHERE group_name = $1 AND "
          "(id = $2 OR hostname = $2) ORDER BY (id = $2) DESC";
  }
  std::optional<std::string> id;
  const absl::Status st = pool.run([&](pqxx::connection& conn) -> absl::Status {
    pqxx::read_transaction txn(conn);
    const pqxx::result r = txn.exec_params(sql, group, value);
    if (!r.empty()) id = r[0][0].as<std::string>();
    return absl::OkStatus();
  });
  if (!st.ok()) {
    *answer = message(503, std::string(st.message()));
    return std::nullopt;
  }
  if (!id.has_value()) {
    // A node that reported vitals may have left the registry since: its id still filters.
    if (field == "node") return value;
    *answer = fieldError(field, absl::StrCat("no ", field, " with id or name '", value, "'"));
  }
  return id;
}

// The answer's items, written by hand: a 1 h, 10 s answer by route is 360,000 items (~99 MB),
// where building JSON objects (or even absl::StrAppend per field) was a large part of the time.
class ItemWriter {
 public:
  // Appends to `out`; `first`: no item precedes this writer's (no comma before the first).
  // `out` holds garbage past the items until finish().
  ItemWriter(std::string& out, const Query& q, bool first)
      : out_(out), len_(out.size()), q_(q), first_(first) {}
  bool wrote() const { return wrote_; }
  size_t size() const { return len_; }
  void finish() { out_.resize(len_); }

  void item(const Row& r) {
    if (r.requests == 0) return;
    // The fixed text and numbers of an item are under 600 bytes; ids are escaped to at most
    // six bytes each (\u00XX).
    ensure(640 + 6 * (r.service.size() + r.route.size() + r.consumer.size() + r.node.size()));
    p_ = out_.data() + len_;
    if (!first_) *p_++ = ',';
    first_ = false;
    wrote_ = true;
    lit("{\"timestamp\":");
    num(r.ts);
    if (q_.by_service) id(",\"service\":", r.service);
    if (q_.by_route) id(",\"route\":", r.route);
    if (q_.by_consumer) id(",\"consumer\":", r.consumer);
    if (q_.by_status) {
      lit(",\"status_code\":");
      num(r.status);
    }
    if (q_.by_node) id(",\"node\":", r.node);
    lit(",\"requests\":");
    num(r.requests);
    lit(",\"bytes_in\":");
    num(r.bytes_in);
    lit(",\"bytes_out\":");
    num(r.bytes_out);
    lit(",\"latency_ms\":{");
    latency("\"total\":{\"p50\":", r.total, r.max_total);
    latency(",\"upstream\":{\"p50\":", r.upstream, r.max_upstream);
    latency(",\"proxy\":{\"p50\":", r.proxy, r.max_proxy);
    lit("}}");
    len_ = static_cast<size_t>(p_ - out_.data());
  }

 private:
  // Room for `n` more bytes at len_; grows the string itself (not just its capacity), since
  // items are written through a pointer: one bounds check per item, and fixed-size copies
  // the compiler inlines instead of a string append per field.
  void ensure(size_t n) {
    if (out_.size() - len_ < n) out_.resize(std::max({out_.size() * 2, len_ + n, size_t{64} << 10}));
  }
  template <size_t N>
  void lit(const char (&s)[N]) {
    std::memcpy(p_, s, N - 1);
    p_ += N - 1;
  }
  void num(int64_t v) { p_ = std::to_chars(p_, p_ + 24, v).ptr; }
  template <size_t N>
  void latency(const char (&head)[N], const LatencyCounts& c, int64_t max) {
    const portico::vitals::LatencyPercentiles p = portico::vitals::latencyPercentiles(c.data(), max);
    lit(head);
    num(p.p50);
    lit(",\"p95\":");
    num(p.p95);
    lit(",\"p99\":");
    num(p.p99);
    lit(",\"max\":");
    num(max);
    *p_++ = '}';
  }
  // An id: a UUID, "" (none: null) or "*" (consumers past the top N). Anything else goes
  // through the JSON library's escaping.
  template <size_t N>
  void id(const char (&key)[N], const std::string& v) {
    lit(key);
    if (v.empty()) {
      lit("null");
      return;
    }
    const bool plain = std::all_of(v.begin(), v.end(), [](char c) {
      return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
             c == '-' || c == '*';
    });
    if (plain) {
      *p_++ = '"';
      std::memcpy(p_, v.data(), v.size());
      p_ += v.size();
      *p_++ = '"';
    } else {
      const std::string quoted = Json(v).dump(-1, ' ', false, Json::error_handler_t::replace);
      std::memcpy(p_, quoted.data(), quoted.size());
      p_ += quoted.size();
    }
  }

  std::string& out_;
  size_t len_;          // bytes of out_ in use
  char* p_ = nullptr;   // write position within the item being written
  const Query& q_;
  bool first_;
  bool wrote_ = false;
};

ApiAnswer requests(PgPool& pool, const std::string& group,
                   const std::map<std::string, std::string>& params, int64_t now_s) {
  static const std::set<std::string> kKnown = {"start", "end",   "granularity", "group_by",
                                               "service", "route", "consumer",  "node"};
  for (const auto& [k, v] : params) {
    if (!kKnown.contains(k)) return fieldError(k, "unknown field");
  }
  Query q;
  q.group = group;
  std::string granularity = "1m";
  if (auto it = params.find("granularity"); it != params.end()) granularity = it->second;
  bool known = false;
  for (const Granularity& g : kGranularities) {
    if (granularity == g.name) {
      q.granularity = g.seconds;
      known = true;
    }
  }
  if (!known) return fieldError("granularity", "expected one of: 10s, 1m, 1h");
  q.end = now_s;
  if (auto it = params.find("end"); it != params.end()) {
    auto t = parseTime(it->second);
    if (!t) return fieldError("end", "expected epoch seconds or an RFC 3339 time");
    q.end = *t;
  }
  q.start = q.end - 3600;
  if (auto it = params.find("start"); it != params.end()) {
    auto t = parseTime(it->second);
    if (!t) return fieldError("start", "expected epoch seconds or an RFC 3339 time");
    q.start = *t;
  }
  if (q.start >= q.end) return fieldError("start", "must be before end");
  // Whole buckets: start rounds down, end up.
  q.start -= q.start % q.granularity;
  if (q.end % q.granularity != 0) q.end += q.granularity - q.end % q.granularity;
  if ((q.end - q.start) / q.granularity > kMaxBuckets) {
    return fieldError("start", absl::StrCat("the range spans more than ", kMaxBuckets,
                                            " buckets of ", granularity,
                                            "; use a coarser granularity"));
  }
  std::vector<std::string> group_by;
  if (auto it = params.find("group_by"); it != params.end()) {
    for (absl::string_view part : absl::StrSplit(it->second, ',', absl::SkipEmpty())) {
      const std::string p(part);
      if (p == "service") q.by_service = true;
      else if (p == "route") q.by_route = true;
      else if (p == "consumer") q.by_consumer = true;
      else if (p == "status_code") q.by_status = true;
      else if (p == "node") q.by_node = true;
      else return fieldError("group_by", absl::StrCat("unknown dimension '", p,
                                                      "' (service, route, consumer, "
                                                      "status_code, node)"));
      if (std::find(group_by.begin(), group_by.end(), p) == group_by.end()) group_by.push_back(p);
    }
  }
  for (const char* f : {"service", "route", "consumer", "node"}) {
    auto it = params.find(f);
    if (it == params.end()) continue;
    ApiAnswer error;
    std::optional<std::string> id = resolve(pool, group, f, it->second, &error);
    if (!id) return error;
    std::string field(f);
    (field == "service" ? q.service : field == "route" ? q.route
                                    : field == "consumer" ? q.consumer : q.node) = *id;
  }
  if ((q.by_node || q.node) && (q.by_route || q.by_consumer || q.route || q.consumer)) {
    // Per-node rows are kept at (node, service, status) only: bounded by the fleet's size.
    return fieldError(q.by_node ? "group_by" : "node",
                      "node combines with service and status_code only");
  }
  std::string head;
  absl::StrAppend(&head, "{\"meta\":{\"start\":", q.start, ",\"end\":", q.end,
                  ",\"granularity\":\"", granularity, "\",\"group_by\":", Json(group_by).dump(),
                  "},\"data\":[");
  if (answersFromPacked(q)) {
    // One packed row per 10 s bucket (vitals_store.h), read at once; the answer is written
    // out a few buckets at a time while the rest is produced: an hour by route is ~100 MB,
    // which built whole cost more in fresh pages than in writing JSON.
    absl::StatusOr<std::unique_ptr<PackedScan>> opened = PackedScan::open(pool, q);
    if (!opened.ok()) return message(503, std::string(opened.status().message()));
    struct State {
      std::unique_ptr<PackedScan> scan;
      Query q;
      std::string head;
      bool started = false, any = false;
    };
    auto state = std::make_shared<State>(State{std::move(*opened), q, std::move(head)});
    ApiAnswer answer;
    answer.stream = [state](std::string* chunk, bool* last) -> absl::Status {
      if (!state->started) {
        chunk->append(state->head);
        state->started = true;
      }
      ItemWriter items(*chunk, state->q, !state->any);
      // ~256 KB pieces: one bucket of 1,000 routes is ~275 KB.
      while (!state->scan->done() && items.size() < (256u << 10)) {
        if (absl::Status st = state->scan->next(1, [&](const Row& r) { items.item(r); });
            !st.ok()) {
          return st;
        }
      }
      items.finish();
      state->any = state->any || items.wrote();
      *last = state->scan->done();
      if (*last) chunk->append("]}");
      return absl::OkStatus();
    };
    return answer;
  }
  auto rows = query(pool, q);
  if (!rows.ok()) return message(503, std::string(rows.status().message()));
  std::string out = std::move(head);
  out.reserve(out.size() + rows->size() * 320);
  ItemWriter items(out, q, true);
  for (const Row& r : *rows) items.item(r);
  items.finish();
  out.append("]}");
  return {200, std::move(out)};
}

ApiAnswer summary(PgPool& pool, const std::string& group,
                  const std::map<std::string, std::string>& params, int64_t now_s) {
  if (!params.empty()) return fieldError(params.begin()->first, "unknown field");
  Query q;
  q.group = group;
  q.granularity = 60;
  q.end = now_s - now_s % 60 + 60;
  q.start = q.end - 3600 - 60;  // the last hour, whole minutes, the current one included
  q.by_service = true;
  q.by_status = true;
  auto rows = query(pool, q);
  if (!rows.ok()) return message(503, std::string(rows.status().message()));
  std::map<std::string, std::string> names;
  const absl::Status st = pool.run([&](pqxx::connection& conn) -> absl::Status {
    pqxx::read_transaction txn(conn);
    for (const auto& r : txn.exec_params(
             "SELECT id::text, coalesce(name, '') FROM services WHERE group_name = $1", group)) {
      names[r[0].as<std::string>()] = r[1].as<std::string>();
    }
    return absl::OkStatus();
  });
  if (!st.ok()) return message(503, std::string(st.message()));
  struct Total {
    int64_t requests = 0, errors_4xx = 0, errors_5xx = 0, bytes_in = 0, bytes_out = 0;
    LatencyCounts total{};
    int64_t max_total = 0;
  };
  std::map<std::string, Total> totals;
  for (const Row& r : *rows) {
    Total& t = totals[r.service];
    t.requests += r.requests;
    if (r.status >= 400 && r.status < 500) t.errors_4xx += r.requests;
    if (r.status >= 500 && r.status < 600) t.errors_5xx += r.requests;
    t.bytes_in += r.bytes_in;
    t.bytes_out += r.bytes_out;
    for (size_t i = 0; i < t.total.size(); ++i) t.total[i] += r.total[i];
    t.max_total = std::max(t.max_total, r.max_total);
  }
  Json data = Json::array();
  for (const auto& [service, t] : totals) {
    Json item{{"service", service.empty() ? Json(nullptr) : Json(service)},
              {"requests", t.requests},
              {"errors_4xx", t.errors_4xx},
              {"errors_5xx", t.errors_5xx},
              {"error_rate", t.requests > 0 ? static_cast<double>(t.errors_5xx) /
                                                  static_cast<double>(t.requests)
                                            : 0.0},
              {"bytes_in", t.bytes_in},
              {"bytes_out", t.bytes_out},
              {"latency_ms",
               {{"p50", portico::vitals::latencyQuantile(t.total.data(), t.max_total, 0.50)},
                {"p95", portico::vitals::latencyQuantile(t.total.data(), t.max_total, 0.95)},
                {"p99", portico::vitals::latencyQuantile(t.total.data(), t.max_total, 0.99)},
                {"max", t.max_total}}}};
    if (auto it = names.find(service); it != names.end() && !it->second.empty()) {
      item["service_name"] = it->second;
    }
    data.push_back(std::move(item));
  }
  return {200, Json{{"meta", {{"start", q.start}, {"end", q.end}}}, {"data", data}}.dump()};
}

}  // namespace

ApiAnswer handleApi(PgPool& pool, const std::string& method, const std::string& group,
                    const std::vector<std::string>& segments,
                    const std::map<std::string, std::string>& query, int64_t now_s) {
  if (segments.size() != 2 || (segments[1] != "requests" && segments[1] != "summary")) {
    return message(404, "Not found");
  }
  if (method != "GET") return message(405, "Method not allowed");
  return segments[1] == "requests" ? requests(pool, group, query, now_s)
                                   : summary(pool, group, query, now_s);
}

}  // namespace portico::cp::vitals
