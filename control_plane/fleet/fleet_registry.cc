// GCC 12 reports a bogus -Wrestrict inside std::string's inlined copies at -O3 (GCC bug
// 105329); it names no line of ours, so it is silenced for this file only.
#pragma GCC diagnostic ignored "-Wrestrict"

#include "control_plane/fleet/fleet_registry.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/logging.h"

namespace portico::cp::fleet {
namespace {

using Json = nlohmann::json;
constexpr char kFleetLog[] = "fleet";

std::string labelsJson(const NodeStatus& n) {
  Json j = Json::object();
  for (const auto& [k, v] : n.labels) {
    j[k] = v;
  }
  return j.dump();
}

std::string issuesJson(const NodeStatus& n) {
  Json j = Json::array();
  for (const auto& i : n.compatibility_issues) {
    Json issue = {{"id", i.id}, {"severity", i.severity}, {"description", i.description}};
    if (!i.entity_type.empty()) {
      issue["entity_type"] = i.entity_type;
      issue["entity_id"] = i.entity_id;
      issue["field"] = i.field;
    }
    j.push_back(std::move(issue));
  }
  return j.dump();
}

std::string lastErrorJson(const NodeStatus& n) {
  if (n.rejected_hash.empty()) {
    return "";
  }
  Json errors = Json::array();
  for (const auto& e : n.rejected_errors) {
    errors.push_back({{"entity_type", e.entity_type},
                      {"entity_id", e.entity_id},
                      {"field", e.field},
                      {"reason", e.reason}});
    if (errors.size() >= 100) {
      break;
    }
  }
  return Json{{"generation", n.rejected_generation},
              {"config_hash", n.rejected_hash},
              {"message", n.rejected_message},
              {"errors", errors}}
      .dump();
}

FleetResponse jsonResponse(int status, const Json& body) { return {status, body.dump()}; }

}  // namespace

FleetRegistry::FleetRegistry(NodeRegistry& registry, FleetOptions options)
    : registry_(registry), options_(std::move(options)), pool_(options_.dsn, 2) {}

FleetRegistry::~FleetRegistry() { stop(); }

void FleetRegistry::start() {
  if (thread_.joinable()) {
    return;
  }
  thread_ = std::thread([this] { loop(); });
}

void FleetRegistry::stop() {
  if (stopped_.exchange(true)) {
    return;
  }
  stop_.Notify();
  if (thread_.joinable()) {
    thread_.join();
  }
  (void)flush();  // what changed since the last flush (e.g. disconnects at shutdown)
}

FleetRegistry::Stats FleetRegistry::stats() const {
  return Stats{statements_.load(), rows_.load(), failures_.load(), purged_.load()};
}

void FleetRegistry::loop() {
  absl::Time next_purge = absl::Now();
  bool failing = false;
  while (!stop_.WaitForNotificationWithTimeout(options_.flush_interval)) {
    absl::StatusOr<int> st = flush();
    if (!st.ok() && !failing) {
      LOG_WARN(kFleetLog, "cannot write node status: %s; keeping it for the next flush",
               st.status().ToString());
    }
    failing = !st.ok();
    if (absl::Now() >= next_purge) {
      next_purge = absl::Now() + options_.purge_check_interval;
      if (auto n = purge(); n.ok() && *n > 0) {
        LOG_INFO(kFleetLog, "purged %d data planes not seen for %s", *n,
                 absl::FormatDuration(options_.purge_delay));
      }
    }
  }
}

absl::StatusOr<int> FleetRegistry::flush() {
  absl::MutexLock lock(&flush_mu_);
  for (NodeStatus& n : registry_.takeDirty()) {
    pending_[n.node_id] = std::move(n);
  }
  if (pending_.empty()) {
    return 0;
  }
  std::vector<const NodeStatus*> rows;
  rows.reserve(pending_.size());
  for (const auto& [id, n] : pending_) {
    rows.push_back(&n);
  }
  int statements = 0;
  const absl::Status st = pool_.run([&](pqxx::connection& conn) -> absl::Status {
    pqxx::work txn(conn);
    for (size_t begin = 0; begin < rows.size(); begin += options_.max_rows_per_statement) {
      const size_t end = std::min(rows.size(), begin + options_.max_rows_per_statement);
      std::string sql =
          "INSERT INTO clustering_data_planes (id, group_name, hostname, ip, version, "
          "sync_status, config_hash, generation, connected, labels, compatibility_issues, "
          "last_error, last_seen, updated_at) VALUES ";
      for (size_t i = begin; i < end; ++i) {
        const NodeStatus& n = *rows[i];
        const std::string last_error = lastErrorJson(n);
        absl::StrAppend(&sql, i == begin ? "" : ",", "(", txn.quote(n.node_id), ",",
                        txn.quote(n.group), ",", txn.quote(n.hostname), ",", txn.quote(n.ip),
                        ",", txn.quote(n.version), ",", txn.quote(n.sync_status), ",",
                        txn.quote(n.applied_hash), ",", n.applied_generation, ",",
                        n.connected ? "true" : "false", ",", txn.quote(labelsJson(n)),
                        "::jsonb,", txn.quote(issuesJson(n)), "::jsonb,",
                        last_error.empty() ? std::string("NULL")
                                           : absl::StrCat(txn.quote(last_error), "::jsonb"),
                        // Integer milliseconds: StrCat of a double keeps 6 digits
                        // (1.79623e+09), which put last_seen up to ~1.4 h off.
                        ",to_timestamp(", absl::ToUnixMillis(n.last_seen), " / 1000.0),now())");
      }
      sql +=
          " ON CONFLICT (id) DO UPDATE SET group_name = EXCLUDED.group_name, "
          "hostname = EXCLUDED.hostname, ip = EXCLUDED.ip, version = EXCLUDED.version, "
          "sync_status = EXCLUDED.sync_status, config_hash = EXCLUDED.config_hash, "
          "generation = EXCLUDED.generation, connected = EXCLUDED.connected, "
          "labels = EXCLUDED.labels, compatibility_issues = EXCLUDED.compatibility_issues, "
          "last_error = COALESCE(EXCLUDED.last_error, clustering_data_planes.last_error), "
          // Two replicas may both know a node (it moved): the freshest report wins.
          "last_seen = GREATEST(EXCLUDED.last_seen, clustering_data_planes.last_seen), "
          "updated_at = now() "
          "WHERE EXCLUDED.last_seen >= clustering_data_planes.last_seen";
      txn.exec(sql);
      ++statements;
    }
    txn.commit();
    return absl::OkStatus();
  });
  if (!st.ok()) {
    failures_++;
    return st;
  }
  statements_ += statements;
  rows_ += rows.size();
  pending_.clear();
  return statements;
}

absl::StatusOr<int64_t> FleetRegistry::purge() {
  int64_t n = 0;
  const absl::Status st = pool_.run([&](pqxx::connection& conn) -> absl::Status {
    pqxx::work txn(conn);
    const pqxx::result r = txn.exec_params(
        "DELETE FROM clustering_data_planes WHERE last_seen < now() - make_interval(secs => $1)",
        absl::ToDoubleSeconds(options_.purge_delay));
    n = r.affected_rows();
    txn.commit();
    return absl::OkStatus();
  });
  if (!st.ok()) {
    return st;
  }
  purged_ += static_cast<uint64_t>(n);
  return n;
}

absl::StatusOr<std::vector<FleetNode>> FleetRegistry::list(const std::string& group) {
  std::vector<FleetNode> out;
  const absl::Status st = pool_.run([&](pqxx::connection& conn) -> absl::Status {
    pqxx::read_transaction txn(conn);
    const pqxx::result r = txn.exec_params(
        "SELECT id, group_name, hostname, ip, version, sync_status, config_hash, generation, "
        "connected AND last_seen > now() - make_interval(secs => $2), labels::text, "
        "compatibility_issues::text, extract(epoch from last_seen)::bigint, "
        "extract(epoch from created_at)::bigint, extract(epoch from updated_at)::bigint "
        "FROM clustering_data_planes WHERE ($1 = '' OR group_name = $1) ORDER BY id",
        group, absl::ToDoubleSeconds(options_.offline_after));
    for (const auto& row : r) {
      FleetNode n;
      n.id = row[0].as<std::string>();
      n.group = row[1].as<std::string>();
      n.hostname = row[2].as<std::string>();
      n.ip = row[3].as<std::string>();
      n.version = row[4].as<std::string>();
      n.sync_status = row[5].as<std::string>();
      n.config_hash = row[6].as<std::string>();
      n.generation = row[7].as<uint64_t>();
      n.connected = row[8].as<bool>();
      n.labels_json = row[9].as<std::string>();
      n.issues_json = row[10].as<std::string>();
      n.last_seen = row[11].as<int64_t>();
      n.created_at = row[12].as<int64_t>();
      n.updated_at = row[13].as<int64_t>();
      out.push_back(std::move(n));
    }
    return absl::OkStatus();
  });
  if (!st.ok()) {
    return st;
  }
  return out;
}

namespace {

// Kong's target health values, strongest first: the merged health of a target is the
// strongest any connected node reports (HEALTHY if any node can use it).
int healthRank(const std::string& h) {
  if (h == "HEALTHY") return 4;
  if (h == "UNHEALTHY") return 3;
  if (h == "DNS_ERROR") return 2;
  if (h == "HEALTHCHECKS_OFF") return 1;
  return 0;
}

}  // namespace

std::optional<FleetResponse> FleetRegistry::upstreamHealth(const std::string& group_ref,
                                                           const std::string& upstream_ref) {
  std::string group = "default", upstream_id, upstream_name;
  struct StoredTarget {
    std::string id, target;
    Json entity;
    double created_at = 0;
  };
  std::vector<StoredTarget> targets;
  const absl::Status st = pool_.run([&](pqxx::connection& conn) -> absl::Status {
    pqxx::read_transaction txn(conn);
    if (!group_ref.empty()) {
      const pqxx::result g = txn.exec_params(
          "SELECT name FROM groups WHERE id::text = $1 OR name = $1 LIMIT 1", group_ref);
      if (g.empty()) {
        return absl::NotFoundError("group");
      }
      group = g[0][0].as<std::string>();
    }
    const pqxx::result u = txn.exec_params(
        "SELECT id::text, coalesce(name, '') FROM upstreams WHERE group_name = $1 AND "
        "(id::text = $2 OR name = $2) LIMIT 1",
        group, upstream_ref);
    if (u.empty()) {
      return absl::NotFoundError("upstream");
    }
    upstream_id = u[0][0].as<std::string>();
    upstream_name = u[0][1].as<std::string>();
    const pqxx::result t = txn.exec_params(
        "SELECT id::text, target, entity::text, created_at FROM targets WHERE group_name = $1 "
        "AND upstream_id = $2::uuid ORDER BY created_at, id",
        group, upstream_id);
    targets.clear();
    for (const auto& row : t) {
      targets.push_back(StoredTarget{row[0].as<std::string>(), row[1].as<std::string>(),
                                     Json::parse(row[2].as<std::string>(), nullptr, false),
                                     row[3].as<double>()});
    }
    return absl::OkStatus();
  });
  if (absl::IsNotFound(st)) {
    return jsonResponse(404, Json{{"message", "Not found"}});
  }
  if (!st.ok()) {
    return jsonResponse(503, Json{{"message", "database unavailable"}});
  }

  // Connected nodes' last reports of this upstream (matched by id, else by name).
  struct Seen {
    const NodeHealth* node;
    const sync::v1::TargetHealth* target;
  };
  const std::vector<NodeHealth> reports = registry_.health(group);
  std::map<std::string, std::vector<Seen>> by_target;
  Json nodes = Json::array();
  for (const NodeHealth& n : reports) {
    if (!n.connected) {
      continue;  // an offline node's view is stale; it is not merged
    }
    for (const sync::v1::UpstreamHealth& u : *n.upstreams) {
      const bool same = u.upstream_id() == upstream_id ||
                        (u.upstream_id().empty() && u.name() == upstream_name);
      if (!same) {
        continue;
      }
      Json per_target = Json::object();
      for (const sync::v1::TargetHealth& t : u.targets()) {
        by_target[t.target()].push_back(Seen{&n, &t});
        per_target[t.target()] = t.health();
      }
      nodes.push_back({{"node_id", n.node_id},
                       {"hostname", n.hostname},
                       {"reported_at", absl::ToUnixMillis(n.reported_at) / 1000.0},
                       {"targets", per_target}});
    }
  }

  Json data = Json::array();
  for (const StoredTarget& t : targets) {
    const uint32_t weight =
        t.entity.is_object() && t.entity.contains("weight") && t.entity["weight"].is_number()
            ? t.entity["weight"].get<uint32_t>()
            : 100;
    std::string health = "UNKNOWN";  // no connected node reports this target (yet)
    // Addresses: union over the nodes; an address is HEALTHY if any node sees it healthy.
    std::map<std::pair<std::string, uint32_t>, bool> addresses;
    Json per_node = Json::array();
    auto seen = by_target.find(t.target);
    if (seen != by_target.end()) {
      for (const Seen& s : seen->second) {
        if (healthRank(s.target->health()) > healthRank(health)) {
          health = s.target->health();
        }
        for (const sync::v1::AddressHealth& a : s.target->addresses()) {
          addresses[{a.ip(), a.port()}] |= a.healthy();
        }
        per_node.push_back({{"node_id", s.node->node_id}, {"health", s.target->health()}});
      }
    }
    Json addrs = Json::array();
    for (const auto& [key, healthy] : addresses) {
      addrs.push_back({{"ip", key.first},
                       {"port", key.second},
                       {"health", health == "HEALTHCHECKS_OFF" ? "HEALTHCHECKS_OFF"
                                  : healthy                    ? "HEALTHY"
                                                               : "UNHEALTHY"},
                       {"weight", weight}});
    }
    Json item = {{"id", t.id},
                 {"target", t.target},
                 {"weight", weight},
                 {"upstream", {{"id", upstream_id}}},
                 {"created_at", t.created_at},
                 {"health", health},
                 {"data", {{"addresses", addrs}}},
                 {"nodes", per_node}};
    if (t.entity.is_object() && t.entity.contains("tags")) {
      item["tags"] = t.entity["tags"];
    }
    data.push_back(std::move(item));
  }
  // Kong names the answering node; ours merges the group's connected nodes, listed in
  // `nodes` (node_id is set when exactly one node reports).
  Json node_id = nodes.size() == 1 ? nodes[0]["node_id"] : Json(nullptr);
  return jsonResponse(200, Json{{"data", data},
                                {"total", data.size()},
                                {"next", nullptr},
                                {"node_id", node_id},
                                {"nodes", nodes}});
}

std::optional<FleetResponse> FleetRegistry::handle(
    const std::string& method, const std::vector<std::string>& seg,
    const std::map<std::string, std::string>& /*query*/) {
  // GET /upstreams/{u}/health and /control-planes/{g}/upstreams/{u}/health: what the DPs'
  // balancers report (Heartbeat.upstreams), merged over the group's connected nodes.
  const bool root_health = seg.size() == 3 && seg[0] == "upstreams" && seg[2] == "health";
  const bool group_health = seg.size() == 5 && seg[0] == "control-planes" &&
                            seg[2] == "upstreams" && seg[4] == "health";
  if (root_health || group_health) {
    if (method != "GET") {
      return jsonResponse(405, Json{{"message", "Method not allowed"}});
    }
    return root_health ? upstreamHealth("", seg[1]) : upstreamHealth(seg[1], seg[3]);
  }
  const bool clustering = seg.size() == 2 && seg[0] == "clustering" &&
                          (seg[1] == "data-planes" || seg[1] == "status");
  const bool nodes = seg.size() == 3 && seg[0] == "control-planes" && seg[2] == "nodes";
  if (!clustering && !nodes) {
    return std::nullopt;
  }
  if (method != "GET") {
    return jsonResponse(405, Json{{"message", "Method not allowed"}});
  }
  std::string group;
  if (nodes) {
    // {id} is the group's id (UUID) or its name.
    const absl::Status st = pool_.run([&](pqxx::connection& conn) -> absl::Status {
      pqxx::read_transaction txn(conn);
      const pqxx::result r = txn.exec_params(
          "SELECT name FROM groups WHERE id::text = $1 OR name = $1 LIMIT 1", seg[1]);
      if (r.empty()) {
        return absl::NotFoundError("not found");
      }
      group = r[0][0].as<std::string>();
      return absl::OkStatus();
    });
    if (absl::IsNotFound(st)) {
      return jsonResponse(404, Json{{"message", "Not found"}});
    }
    if (!st.ok()) {
      return jsonResponse(503, Json{{"message", "database unavailable"}});
    }
  }
  auto rows = list(group);
  if (!rows.ok()) {
    return jsonResponse(503, Json{{"message", "database unavailable"}});
  }
  if (clustering && seg[1] == "status") {
    // Kong's deprecated shape: {<id>: {config_hash, hostname, ip, last_seen}}.
    Json out = Json::object();
    for (const auto& n : *rows) {
      out[n.id] = {{"config_hash", n.config_hash},
                   {"hostname", n.hostname},
                   {"ip", n.ip},
                   {"last_seen", n.last_seen}};
    }
    return jsonResponse(200, out);
  }
  if (clustering) {
    Json data = Json::array();
    for (const auto& n : *rows) {
      data.push_back({{"id", n.id},
                      {"ip", n.ip},
                      {"hostname", n.hostname},
                      {"version", n.version},
                      {"sync_status", n.sync_status},
                      {"config_hash", n.config_hash},
                      {"last_seen", n.last_seen},
                      {"updated_at", n.updated_at},
                      {"created_at", n.created_at},
                      {"labels", Json::parse(n.labels_json)},
                      {"compatibility_issues", Json::parse(n.issues_json)},
                      {"connected", n.connected},
                      {"generation", n.generation},
                      {"control_plane", n.group}});
    }
    return jsonResponse(200, Json{{"data", data}, {"next", nullptr}});
  }
  Json items = Json::array();
  for (const auto& n : *rows) {
    Json issues = Json::parse(n.issues_json);
    const char* state = n.sync_status == "version_incompatible"
                            ? "COMPATIBILITY_STATE_INCOMPATIBLE"
                        : issues.empty() ? "COMPATIBILITY_STATE_FULLY_COMPATIBLE"
                                         : "COMPATIBILITY_STATE_COMPATIBLE_WITH_LIMITATIONS";
    items.push_back({{"id", n.id},
                     {"version", n.version},
                     {"hostname", n.hostname},
                     {"last_ping", n.last_seen},
                     {"type", "portico-dp"},
                     {"created_at", n.created_at},
                     {"updated_at", n.updated_at},
                     {"config_hash", n.config_hash},
                     {"sync_status", n.sync_status},
                     {"connected", n.connected},
                     {"labels", Json::parse(n.labels_json)},
                     {"compatibility_status", {{"state", state}, {"issues", issues}}}});
  }
  return jsonResponse(200, Json{{"items", items}, {"page", {{"total", items.size()}}}});
}

}  // namespace portico::cp::fleet
