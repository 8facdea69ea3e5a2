// What the Admin API says about itself: GET / (Kong's node info), /status (per control
// plane, with its config generation), /metrics (the whole process, root only),
// /plugins/enabled and the /schemas/... reads and validations.
#include <unistd.h>

#include <string>

#include "common/config/entities.h"
#include "common/flags.h"
#include "common/metrics/metrics.h"
#include "control_plane/admin_api/admin_util.h"
#include "control_plane/admin_api/endpoints.h"

namespace portico::cp::admin {
namespace info {
namespace {

constexpr char kKongVersion[] = "3.10.0";

std::string hostName() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof(buf) - 1) != 0) {
    return "localhost";
  }
  return buf;
}

ApiResponse root(const EndpointDeps& deps) {
  Json enabled = Json::array();
  Json available = Json::object();
  // Only what every data plane of this build enforces (the plugin registry's schemas).
  for (const auto& p : config::pluginSchemas()) {
    enabled.push_back(p.name);
    available[p.name] = Json{{"version", p.version}, {"priority", p.priority}};
  }
  // `version` is the Kong Gateway release whose Admin API this one follows: Kong's clients
  // (decK, Kong Manager, Terraform providers) gate features on it. Ours is beside it.
  return json(200, Json{{"tagline", "Welcome to portico"},
                        {"version", kKongVersion},
                        {"portico_version", kPorticoVersion},
                        {"hostname", hostName()},
                        {"node_id", deps.node_id},
                        {"plugins",
                         {{"available_on_server", available}, {"enabled_in_cluster", enabled}}},
                        {"configuration",
                         {{"database", "postgres"}, {"role", "control_plane"},
                          {"plugins", enabled}}}});
}

ApiResponse processMetrics(const EndpointDeps& deps, const std::string& group) {
  PgConfigStore& store = deps.store;
  const ServerCounters& counters = deps.counters;
  metrics::Writer w;
  w.gauge("kong_datastore_reachable", "1 if PostgreSQL answered this scrape's query.",
          store.currentGeneration(group).ok() ? 1 : 0);
  w.gauge("portico_cp_admin_connections_active", "Admin API connections open now.",
          static_cast<double>(counters.connections_active.load()));
  w.counter("portico_cp_admin_connections_accepted_total", "Admin API connections accepted.",
            static_cast<double>(counters.connections_accepted.load()));
  w.counter("portico_cp_admin_requests_total", "Admin API requests received.",
            static_cast<double>(counters.total_requests.load()));
  counters.latency.write(w);
  const PgPool::Stats pool = store.poolStats();
  w.gauge("portico_cp_pg_pool_size", "PostgreSQL connections the store's pool may open.",
          pool.size);
  w.beginGauge("portico_cp_pg_pool_connections", "The store's PostgreSQL connections by state.");
  w.sample(pool.in_use, {{"state", "in_use"}});
  w.sample(pool.idle, {{"state", "idle"}});
  w.gauge("portico_cp_pg_pool_waiting", "Callers waiting for a PostgreSQL connection now.",
          pool.waiting);
  w.counter("portico_cp_pg_pool_waits_total",
            "Acquisitions that waited for a PostgreSQL connection.",
            static_cast<double>(pool.waits));
  w.counter("portico_cp_pg_pool_wait_seconds_total",
            "Time callers spent waiting for a PostgreSQL connection.", pool.wait_seconds);
  w.counter("portico_cp_pg_pool_acquire_timeouts_total",
            "Acquisitions that gave up waiting (answered 503).",
            static_cast<double>(pool.wait_timeouts));
  const PgConfigStore::InDoubtStats doubt = store.inDoubtStats();
  w.beginCounter("portico_cp_commits_in_doubt_total",
                 "Writes whose COMMIT got no answer, by what the CP then found out.");
  w.sample(static_cast<double>(doubt.committed), {{"outcome", "committed"}});
  w.sample(static_cast<double>(doubt.not_committed), {{"outcome", "not_committed"}});
  w.sample(static_cast<double>(doubt.unknown), {{"outcome", "unknown"}});
  if (deps.options.metrics) {
    deps.options.metrics(w);
  }
  return {200, w.text(), metrics::Writer::kContentType};
}

ApiResponse status(const EndpointDeps& deps, const std::string& group) {
  const ServerCounters& counters = deps.counters;
  // The group's config generation lets a client wait until a DP runs its last write (a DP
  // reports the generation it applied on its own /status).
  const absl::StatusOr<uint64_t> generation = deps.store.currentGeneration(group);
  return json(200, Json{{"database", {{"reachable", generation.ok()}}},
                        {"configuration",
                         {{"group", group},
                          {"generation", generation.ok() ? Json(*generation) : Json(nullptr)}}},
                        {"server",
                         {{"connections_accepted", counters.connections_accepted.load()},
                          {"connections_active", counters.connections_active.load()},
                          {"connections_handled", counters.connections_accepted.load()},
                          {"total_requests", counters.total_requests.load()}}}});
}

// POST /schemas/{entity}/validate and /schemas/plugins/validate (which takes a form's
// values as they are: `coerce_form` false).
ApiResponse validateEntity(const std::string& entity, const EndpointCall& call,
                           bool coerce_form) {
  const Body body = readBody(call.request);
  if (auto err = bodyError(body)) {
    return *err;
  }
  const bool form = coerce_form && body.kind == BodyKind::kForm;
  const Json input = form ? config::coerceFormValues(entity, body.value) : body.value;
  Json out;
  if (auto err = processEntity(entity, input, &out)) {
    return *err;
  }
  return json(200, Json{{"message", "schema validation successful"}});
}

ApiResponse noEntity(const std::string& name) {
  return message(404, "No entity named '" + name + "'");
}

ApiResponse validateNamedEntity(const std::string& name, const EndpointCall& call) {
  if (config::findEntitySchema(name) == nullptr) {
    return noEntity(name);
  }
  return validateEntity(name, call, true);
}

ApiResponse entitySchema(const std::string& name) {
  const config::EntitySchema* s = config::findEntitySchema(name);
  if (s == nullptr) {
    return noEntity(name);
  }
  return json(200, config::schemaToJson(*s));
}

void addSchemaEndpoints(EndpointTable& table) {
  // The literal "plugins" paths go first: "schemas/{name}" would take them.
  table.add(kPost, "schemas/plugins/validate", [](const EndpointCall& call) {
    return validateEntity("plugins", call, false);
  });
  // Validates {name} as an entity, as it always has (a plugin's name names no entity).
  table.add(kPost, "schemas/plugins/{name}/validate", [](const EndpointCall& call) {
    return validateNamedEntity(call.params[0], call);
  });
  table.add(kGet, "schemas/plugins/{name}", [](const EndpointCall& call) {
    const config::PluginSchema* p = config::findPluginSchema(call.params[0]);
    if (p == nullptr) {
      return message(404, "No plugin named '" + call.params[0] + "'");
    }
    return json(200, config::pluginSchemaToJson(*p));
  });
  table.add(kPost, "schemas/{name}/validate", [](const EndpointCall& call) {
    return validateNamedEntity(call.params[0], call);
  });
  table.add(kGet, "schemas/{name}", [](const EndpointCall& call) {
    return entitySchema(call.params[0]);
  });
}

}  // namespace
}  // namespace info

void addInfoEndpoints(EndpointTable& table, const EndpointDeps& deps) {
  table.add(kGet, "", [&deps](const EndpointCall&) { return info::root(deps); });
  table.add(
      kGet, "metrics",
      [&deps](const EndpointCall& call) { return info::processMetrics(deps, call.group); },
      Scope::kRootOnly);
  table.add(kGet, "status",
            [&deps](const EndpointCall& call) { return info::status(deps, call.group); });
  table.add(kGet, "plugins/enabled", [](const EndpointCall&) {
    Json enabled = Json::array();
    for (const auto& p : config::pluginSchemas()) {
      enabled.push_back(p.name);
    }
    return json(200, Json{{"enabled_plugins", enabled}});
  });
  info::addSchemaEndpoints(table);
}

}  // namespace portico::cp::admin
