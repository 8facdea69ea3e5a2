#include "control_plane/vitals/vitals_store.h"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>
#include <utility>

#include <pqxx/pqxx>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace portico::cp::vitals {
namespace {

using portico::vitals::kLatencyBins;

// "vitals_r" in ASCII: the retention job's transaction-scoped advisory lock.
constexpr int64_t kRetentionLockKey = 0x766974616c735f72LL;

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
  void add(const Row& r) {
    requests += r.requests;
    bytes_in += r.bytes_in;
    bytes_out += r.bytes_out;
    for (size_t i = 0; i < kLatencyBins; ++i) {
      total[i] += r.total[i];
      upstream[i] += r.upstream[i];
      proxy[i] += r.proxy[i];
    }
    max_total = std::max(max_total, r.max_total);
    max_upstream = std::max(max_upstream, r.max_upstream);
    max_proxy = std::max(max_proxy, r.max_proxy);
  }
  static void addHist(LatencyCounts& into, int64_t* max, const sync::v1::LatencyHistogram& h) {
    for (int i = 0; i < h.bins_size() && i < static_cast<int>(kLatencyBins); ++i) {
      into[static_cast<size_t>(i)] += h.bins(i);
    }
    *max = std::max(*max, h.max_ms());
  }
};

std::string arrayLiteral(const LatencyCounts& c) {
  return absl::StrCat("{", absl::StrJoin(c, ","), "}");
}

// Parses PostgreSQL's text form of a bigint[] ("{1,2,3}") into `out`.
void parseArray(std::string_view text, LatencyCounts* out) {
  out->fill(0);
  size_t i = 0;
  int64_t v = 0;
  bool any = false, neg = false;
  for (char c : text) {
    if (c >= '0' && c <= '9') {
      v = v * 10 + (c - '0');
      any = true;
    } else if (c == '-') {
      neg = true;
    } else if (c == ',' || c == '}') {
      if (any && i < kLatencyBins) (*out)[i++] = neg ? -v : v;
      v = 0;
      any = neg = false;
    }
  }
}


constexpr char kMetricSet[] =
    "requests = t.requests + EXCLUDED.requests, bytes_in = t.bytes_in + EXCLUDED.bytes_in, "
    "bytes_out = t.bytes_out + EXCLUDED.bytes_out, "
    "lat_total = vitals_hist_add(t.lat_total, EXCLUDED.lat_total), "
    "lat_upstream = vitals_hist_add(t.lat_upstream, EXCLUDED.lat_upstream), "
    "lat_proxy = vitals_hist_add(t.lat_proxy, EXCLUDED.lat_proxy), "
    "max_total = GREATEST(t.max_total, EXCLUDED.max_total), "
    "max_upstream = GREATEST(t.max_upstream, EXCLUDED.max_upstream), "
    "max_proxy = GREATEST(t.max_proxy, EXCLUDED.max_proxy)";

// Which of a group's ids exist, for one entity table.
absl::flat_hash_set<std::string> knownIds(pqxx::work& txn, const std::string& table,
                                          const std::string& group,
                                          const std::set<std::string>& ids) {
  absl::flat_hash_set<std::string> known;
  if (ids.empty()) return known;
  const std::string list = absl::StrCat("{", absl::StrJoin(ids, ","), "}");
  for (const auto& row : txn.exec_params(
           "SELECT id::text FROM " + table + " WHERE group_name = $1 AND id = ANY($2::uuid[])",
           group, list)) {
    known.insert(row[0].as<std::string>());
  }
  return known;
}

}  // namespace

absl::Status ingest(PgPool& pool, const std::vector<IncomingBatch>& batches,
                    std::vector<BatchResult>* results, IngestStats* stats) {
  return pool.run([&](pqxx::connection& conn) -> absl::Status {
    results->assign(batches.size(), BatchResult{});
    const int64_t now_s = static_cast<int64_t>(std::time(nullptr));
    pqxx::work txn(conn);
    txn.exec("SET LOCAL statement_timeout = '60s'");
    txn.exec("SET LOCAL client_min_messages = warning");
    txn.exec("CREATE TEMP TABLE IF NOT EXISTS vitals_in (LIKE vitals_requests) "
             "ON COMMIT DELETE ROWS");
    txn.exec("CREATE TEMP TABLE IF NOT EXISTS vitals_nin (LIKE vitals_nodes) "
             "ON COMMIT DELETE ROWS");

    // 1. De-duplicate: per sender, in seq order, against the last seq stored (row-locked, so
    // two replicas given the same batch store it once).
    std::map<std::pair<std::string, std::string>, std::vector<size_t>> by_sender;
    for (size_t i = 0; i < batches.size(); ++i) {
      by_sender[{batches[i].node_id, batches[i].instance}].push_back(i);
    }
    std::map<std::pair<std::string, std::string>, int64_t> new_last;
    for (auto& [sender, idx] : by_sender) {
      txn.exec_params("INSERT INTO vitals_senders (node_id, instance, last_seq, updated_at) "
                      "VALUES ($1, $2, 0, $3) ON CONFLICT DO NOTHING",
                      sender.first, sender.second, now_s);
      int64_t last = txn.exec_params("SELECT last_seq FROM vitals_senders WHERE node_id = $1 "
                                     "AND instance = $2 FOR UPDATE",
                                     sender.first, sender.second)[0][0]
                         .as<int64_t>();
      std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) {
        return batches[a].batch->seq() < batches[b].batch->seq();
      });
      for (size_t i : idx) {
        const int64_t seq = static_cast<int64_t>(batches[i].batch->seq());
        if (seq <= last) {
          (*results)[i].outcome = Outcome::kDuplicate;
        } else {
          last = seq;
        }
      }
      new_last[sender] = last;
    }

    // 2. Entities: every id a batch names must be one of its group's.
    struct Ids {
      std::set<std::string> services, routes, consumers;
    };
    std::map<std::string, Ids> wanted;
    for (size_t i = 0; i < batches.size(); ++i) {
      if ((*results)[i].outcome != Outcome::kStored) continue;
      Ids& ids = wanted[batches[i].group];
      for (const auto& b : batches[i].batch->buckets()) {
        if (!b.service_id().empty()) ids.services.insert(b.service_id());
        if (!b.route_id().empty()) ids.routes.insert(b.route_id());
        if (!b.consumer_id().empty() && b.consumer_id() != "*") ids.consumers.insert(b.consumer_id());
      }
    }
    struct Known {
      absl::flat_hash_set<std::string> services, routes, consumers;
    };
    std::map<std::string, Known> known;
    for (const auto& [group, ids] : wanted) {
      Known& k = known[group];
      k.services = knownIds(txn, "services", group, ids.services);
      k.routes = knownIds(txn, "routes", group, ids.routes);
      k.consumers = knownIds(txn, "consumers", group, ids.consumers);
    }

    // 3. Rows, summed over the batches, for every granularity.
    using ReqKey = std::tuple<int, std::string, int64_t, std::string, std::string, std::string, int>;
    using NodeKey = std::tuple<int, std::string, int64_t, std::string, std::string, int>;
    std::map<ReqKey, Agg> req_rows;
    std::map<NodeKey, Agg> node_rows;
    for (size_t i = 0; i < batches.size(); ++i) {
      BatchResult& r = (*results)[i];
      if (r.outcome != Outcome::kStored) continue;
      const IncomingBatch& in = batches[i];
      const Known& k = known[in.group];
      const auto& buckets = in.batch->buckets();
      for (int j = 0; j < buckets.size() && r.outcome == Outcome::kStored; ++j) {
        const auto& b = buckets[j];
        const auto unknown = [&](const char* field, const std::string& id, const char* what) {
          r.outcome = Outcome::kRefused;
          r.reason = absl::StrCat("unknown_entity: buckets.", j, ".", field, " ", id,
                                  " is not a ", what, " of control plane ", in.group);
        };
        if (!b.service_id().empty() && !k.services.contains(b.service_id())) {
          unknown("service_id", b.service_id(), "service");
        } else if (!b.route_id().empty() && !k.routes.contains(b.route_id())) {
          unknown("route_id", b.route_id(), "route");
        } else if (!b.consumer_id().empty() && b.consumer_id() != "*" &&
                   !k.consumers.contains(b.consumer_id())) {
          unknown("consumer_id", b.consumer_id(), "consumer");
        }
      }
      if (r.outcome != Outcome::kStored) continue;
      for (const auto& b : buckets) {
        for (const Granularity& g : kGranularities) {
          const int64_t ts = b.start() - b.start() % g.seconds;
          req_rows[ReqKey{g.seconds, in.group, ts, b.service_id(), b.route_id(), b.consumer_id(),
                          b.status_code()}]
              .add(b);
          node_rows[NodeKey{g.seconds, in.group, ts, in.node_id, b.service_id(), b.status_code()}]
              .add(b);
        }
      }
    }

    // 4. Write: COPY into session temp tables, then one upsert each in key order (replicas
    // writing the same keys lock them in the same order).
    if (!req_rows.empty()) {
      {
        pqxx::stream_to copy(txn, "vitals_in");
        for (const auto& [key, a] : req_rows) {
          copy << std::make_tuple(std::get<0>(key), std::get<1>(key), std::get<2>(key),
                                  std::get<3>(key), std::get<4>(key), std::get<5>(key),
                                  std::get<6>(key), a.requests, a.bytes_in, a.bytes_out,
                                  arrayLiteral(a.total), arrayLiteral(a.upstream),
                                  arrayLiteral(a.proxy), a.max_total, a.max_upstream,
                                  a.max_proxy);
        }
        copy.complete();
      }
      {
        pqxx::stream_to copy(txn, "vitals_nin");
        for (const auto& [key, a] : node_rows) {
          copy << std::make_tuple(std::get<0>(key), std::get<1>(key), std::get<2>(key),
                                  std::get<3>(key), std::get<4>(key), std::get<5>(key),
                                  a.requests, a.bytes_in, a.bytes_out, arrayLiteral(a.total),
                                  arrayLiteral(a.upstream), arrayLiteral(a.proxy), a.max_total,
                                  a.max_upstream, a.max_proxy);
        }
        copy.complete();
      }
      stats->rows += txn.exec(absl::StrCat(
                                  "INSERT INTO vitals_requests AS t SELECT * FROM vitals_in "
                                  "ORDER BY granularity, group_name, ts, service, route, consumer, "
                                  "status ON CONFLICT (granularity, group_name, ts, service, "
                                  "route, consumer, status) DO UPDATE SET ",
                                  kMetricSet))
                          .affected_rows();
      stats->rows += txn.exec(absl::StrCat(
                                  "INSERT INTO vitals_nodes AS t SELECT * FROM vitals_nin "
                                  "ORDER BY granularity, group_name, ts, node, service, status "
                                  "ON CONFLICT (granularity, group_name, ts, node, service, "
                                  "status) DO UPDATE SET ",
                                  kMetricSet))
                          .affected_rows();
    }
    for (const auto& [sender, last] : new_last) {
      txn.exec_params("UPDATE vitals_senders SET last_seq = $3, updated_at = $4 "
                      "WHERE node_id = $1 AND instance = $2",
                      sender.first, sender.second, last, now_s);
    }
    txn.commit();
    return absl::OkStatus();
  });
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
      deleted += txn.exec_params("DELETE FROM vitals_nodes WHERE granularity = $1 AND ts < $2",
                                 g.seconds, cutoff)
                     .affected_rows();
    }
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
  const bool nodes = q.by_node || q.node.has_value();
  std::string sql = absl::StrCat(
      "SELECT ts, service, ", nodes ? "'' AS route, '' AS consumer, node" :
                                      "route, consumer, '' AS node",
      ", status, requests, bytes_in, bytes_out, lat_total::text, lat_upstream::text, "
      "lat_proxy::text, max_total, max_upstream, max_proxy FROM ",
      nodes ? "vitals_nodes" : "vitals_requests",
      " WHERE granularity = $1 AND group_name = $2 AND ts >= $3 AND ts < $4");
  // Optional filters as "$5 IS NULL OR col = $5": one statement shape for every request.
  absl::StrAppend(&sql, " AND ($5::text IS NULL OR service = $5)");
  if (nodes) {
    absl::StrAppend(&sql, " AND ($6::text IS NULL OR node = $6)");
  } else {
    absl::StrAppend(&sql, " AND ($6::text IS NULL OR route = $6)",
                    " AND ($7::text IS NULL OR consumer = $7)");
  }
  std::vector<Row> out;
  absl::Status st = pool.run([&](pqxx::connection& conn) -> absl::Status {
    pqxx::read_transaction txn(conn);
    txn.exec("SET LOCAL statement_timeout = '30s'");
    const auto opt = [](const std::optional<std::string>& v) -> const char* {
      return v.has_value() ? v->c_str() : nullptr;
    };
    const pqxx::result rows =
        nodes ? txn.exec_params(sql, q.granularity, q.group, q.start, q.end, opt(q.service),
                                opt(q.node))
              : txn.exec_params(sql, q.granularity, q.group, q.start, q.end, opt(q.service),
                                opt(q.route), opt(q.consumer));
    // Sum over what is not grouped by; the map keeps the answer in (ts, keys) order.
    std::map<std::tuple<int64_t, std::string, std::string, std::string, std::string, int>,
             Agg>
        groups;
    Row r;
    for (const auto& row : rows) {
      const int64_t ts = row[0].as<int64_t>();
      auto key = std::make_tuple(ts, q.by_service ? row[1].as<std::string>() : std::string(),
                                 q.by_route ? row[2].as<std::string>() : std::string(),
                                 q.by_consumer ? row[3].as<std::string>() : std::string(),
                                 q.by_node ? row[4].as<std::string>() : std::string(),
                                 q.by_status ? row[5].as<int>() : 0);
      r.requests = row[6].as<int64_t>();
      r.bytes_in = row[7].as<int64_t>();
      r.bytes_out = row[8].as<int64_t>();
      parseArray(std::string_view(row[9].c_str(), row[9].size()), &r.total);
      parseArray(std::string_view(row[10].c_str(), row[10].size()), &r.upstream);
      parseArray(std::string_view(row[11].c_str(), row[11].size()), &r.proxy);
      r.max_total = row[12].as<int64_t>();
      r.max_upstream = row[13].as<int64_t>();
      r.max_proxy = row[14].as<int64_t>();
      groups[std::move(key)].add(r);
    }
    out.reserve(groups.size());
    for (auto& [key, agg] : groups) {
      Row o;
      std::tie(o.ts, o.service, o.route, o.consumer, o.node, o.status) = key;
      o.requests = agg.requests;
      o.bytes_in = agg.bytes_in;
      o.bytes_out = agg.bytes_out;
      o.total = agg.total;
      o.upstream = agg.upstream;
      o.proxy = agg.proxy;
      o.max_total = agg.max_total;
      o.max_upstream = agg.max_upstream;
      o.max_proxy = agg.max_proxy;
      out.push_back(std::move(o));
    }
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  return out;
}

}  // namespace portico::cp::vitals
