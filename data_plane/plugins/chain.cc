#include "data_plane/plugins/chain.h"

#include <algorithm>
#include <functional>
#include <optional>

#include "absl/strings/str_cat.h"
#include "common/config/entities.h"
#include "common/config/json_limits.h"
#include "data_plane/plugins/registry.h"

namespace portico::dp {
namespace {

absl::Status pluginError(const config::v1::Plugin& p, std::string_view field,
                         std::string_view reason, config::FieldErrors* errors) {
  if (errors != nullptr) {
    errors->push_back({"plugins", p.id(), std::string(field), std::string(reason)});
  }
  return absl::InvalidArgumentError("plugins " + p.id() + ": " + std::string(field) + ": " +
                                    std::string(reason));
}

// Kong builds the HTTP subsystem's iterator from plugins whose protocols include an HTTP one;
// stream-only instances never run on the proxy.
bool runsOnHttp(const config::v1::Plugin& p) {
  if (p.protocols_size() == 0) {
    return true;
  }
  for (const std::string& proto : p.protocols()) {
    if (proto == "http" || proto == "https" || proto == "grpc" || proto == "grpcs") {
      return true;
    }
  }
  return false;
}

std::string routeServiceKey(const std::string& route, const std::string& service) {
  return route + "|" + service;
}

// `ordering` -> run_before / run_after; "" or a reason.
std::string parseOrdering(const config::v1::Plugin& p, PluginInstance* inst) {
  if (!p.has_ordering()) {
    return "";
  }
  if (p.has_consumer()) {
    return "dynamic ordering is not supported on consumer-scoped plugins";
  }
  std::optional<config::Json> o = config::parseUntrustedJson(p.ordering());
  if (!o || !(o->is_object() || o->is_null())) {
    return "expected a record";
  }
  if (o->is_null()) {
    return "";
  }
  for (const char* side : {"before", "after"}) {
    auto it = o->find(side);
    if (it == o->end() || it->is_null()) {
      continue;
    }
    if (!it->is_object()) {
      return std::string(side) + ": expected a record";
    }
    auto access = it->find("access");
    if (access == it->end() || access->is_null()) {
      continue;
    }
    if (!access->is_array()) {
      return std::string(side) + ".access: expected an array";
    }
    for (const config::Json& name : *access) {
      if (!name.is_string()) {
        return std::string(side) + ".access: expected a string";
      }
      (std::string(side) == "before" ? inst->run_before : inst->run_after)
          .push_back(name.get<std::string>());
    }
  }
  return "";
}

// Kong's "legacy" dynamic ordering: walk the chain by priority; before placing a plugin, place
// (recursively) every plugin that must run before it. An `ordering` naming a plugin that is
// not on this chain adds no constraint. Fails on a cycle, naming it.
absl::StatusOr<Chain> accessOrder(const Chain& chain, const std::vector<std::string_view>& names) {
  const size_t n = chain.size();
  auto indexOf = [&](std::string_view name) -> size_t {
    for (size_t i = 0; i < n; ++i) {
      if (names[i] == name) return i;
    }
    return n;
  };
  std::vector<std::vector<size_t>> deps(n);  // deps[i]: must run before i
  for (size_t i = 0; i < n; ++i) {
    if (chain[i].base == nullptr) {
      continue;
    }
    for (const std::string& b : chain[i].base->run_before) {
      if (const size_t j = indexOf(b); j < n && j != i) deps[j].push_back(i);
    }
    for (const std::string& a : chain[i].base->run_after) {
      if (const size_t j = indexOf(a); j < n && j != i) deps[i].push_back(j);
    }
  }
  for (auto& d : deps) {
    std::sort(d.begin(), d.end());  // dependencies placed in priority order too
  }
  enum class Mark : uint8_t { kNone, kVisiting, kPlaced };
  std::vector<Mark> mark(n, Mark::kNone);
  Chain out;
  std::vector<size_t> path;
  std::string cycle;
  std::function<bool(size_t)> visit = [&](size_t i) {
    if (mark[i] == Mark::kPlaced) return true;
    if (mark[i] == Mark::kVisiting) {
      for (auto it = std::find(path.begin(), path.end(), i); it != path.end(); ++it) {
        cycle += std::string(names[*it]) + " -> ";
      }
      cycle += std::string(names[i]);
      return false;
    }
    mark[i] = Mark::kVisiting;
    path.push_back(i);
    for (size_t j : deps[i]) {
      if (!visit(j)) return false;
    }
    path.pop_back();
    mark[i] = Mark::kPlaced;
    out.push_back(chain[i]);
    return true;
  };
  for (size_t i = 0; i < n; ++i) {
    if (!visit(i)) {
      return absl::InvalidArgumentError("dynamic ordering has a cycle: " + cycle);
    }
  }
  return out;
}

}  // namespace

std::unique_ptr<const PluginChains> PluginChains::globalOnly(
    std::vector<PluginConfigConstSharedPtr> configs) {
  auto chains = std::unique_ptr<PluginChains>(new PluginChains());
  for (PluginConfigConstSharedPtr& c : configs) {
    chains->kinds_.emplace_back();
    chains->kinds_.back().name = c->name();
    chains->kinds_.back().priority = c->priority();
    chains->instances_.push_back(
        std::make_unique<PluginInstance>(PluginInstance{nullptr, std::move(c), {}, {}}));
    chains->kinds_.back().global = chains->instances_.back().get();
    chains->global_.push_back(
        {static_cast<int32_t>(chains->kinds_.size() - 1), chains->kinds_.back().global, 8, false});
    if (chains->kinds_.back().global->config->runsInRewrite()) {
      chains->rewrite_.push_back(chains->global_.back());
    }
  }
  return chains;
}

absl::StatusOr<std::unique_ptr<const PluginChains>> PluginChains::build(
    const config::v1::Snapshot& config, config::FieldErrors* errors) {
  auto chains = std::unique_ptr<PluginChains>(new PluginChains());
  absl::flat_hash_map<std::string_view, int32_t> kind_of;
  for (const config::v1::Plugin& p : config.plugins()) {
    const PluginFactory* factory = findPluginFactory(p.name());
    if (factory == nullptr) {
      // Checked before `enabled`: a disabled plugin this DP cannot run would fail open the
      // moment someone enables it, and the CP must learn of the gap now.
      return pluginError(p, "name",
                         "plugin '" + p.name() + "' is not implemented by this data plane",
                         errors);
    }
    if (!p.enabled() || !runsOnHttp(p)) {
      continue;
    }
    std::optional<config::Json> conf = config::parseUntrustedJson(p.config());
    if (!conf || !conf->is_object()) {
      return pluginError(p, "config", "expected a record", errors);
    }
    absl::StatusOr<PluginConfigConstSharedPtr> built;
    try {
      built = factory->build(p, *conf);
    } catch (const std::exception& e) {
      // A config the schema let through but the plugin cannot read (a hand-written
      // declarative file without defaults): refused, never a crash.
      built = absl::InvalidArgumentError(std::string("invalid config: ") + e.what());
    }
    if (!built.ok()) {
      const absl::string_view why = built.status().message();
      return pluginError(p, "config", std::string_view(why.data(), why.size()), errors);
    }
    auto inst = std::make_unique<PluginInstance>(PluginInstance{&p, *std::move(built), {}, {}});
    if (const std::string why = parseOrdering(p, inst.get()); !why.empty()) {
      return pluginError(p, "ordering", why, errors);
    }
    const PluginInstance* ip = inst.get();
    chains->instances_.push_back(std::move(inst));

    auto [it, added] = kind_of.emplace(factory->name, static_cast<int32_t>(chains->kinds_.size()));
    if (added) {
      chains->kinds_.emplace_back();
      chains->kinds_.back().name = factory->name;
      chains->kinds_.back().priority = factory->priority;
    }
    Kind& kind = chains->kinds_[static_cast<size_t>(it->second)];
    const bool r = p.has_route(), s = p.has_service(), c = p.has_consumer();
    bool unique = true;
    if (c) {
      kind.by_consumer[p.consumer().id()].push_back(ip);
    } else if (r && s) {
      unique = kind.by_route_service.emplace(routeServiceKey(p.route().id(), p.service().id()), ip)
                   .second;
    } else if (r) {
      unique = kind.by_route.emplace(p.route().id(), ip).second;
    } else if (s) {
      unique = kind.by_service.emplace(p.service().id(), ip).second;
    } else {
      unique = kind.global == nullptr;
      kind.global = ip;
    }
    if (!unique) {
      return pluginError(p, "@entity", "more than one instance with this name and scope",
                         errors);
    }
  }
  if (chains->kinds_.empty()) {
    return std::unique_ptr<const PluginChains>(std::move(chains));
  }
  // Kong's order: PRIORITY descending; equal priorities by name, descending.
  auto before = [&chains](const ChainEntry& a, const ChainEntry& b) {
    const Kind& ka = chains->kinds_[static_cast<size_t>(a.kind)];
    const Kind& kb = chains->kinds_[static_cast<size_t>(b.kind)];
    return ka.priority != kb.priority ? ka.priority > kb.priority : ka.name > kb.name;
  };
  for (size_t k = 0; k < chains->kinds_.size(); ++k) {
    const Kind& kind = chains->kinds_[k];
    if (kind.global != nullptr) {
      chains->global_.push_back({static_cast<int32_t>(k), kind.global, 8, false});
    }
  }
  std::sort(chains->global_.begin(), chains->global_.end(), before);
  for (const ChainEntry& e : chains->global_) {
    if (e.base->config->runsInRewrite()) {
      chains->rewrite_.push_back(e);
    }
  }
  chains->routes_.resize(static_cast<size_t>(config.routes_size()));
  std::string key;
  for (int i = 0; i < config.routes_size(); ++i) {
    const config::v1::Route& route = config.routes(i);
    Chain& chain = chains->routes_[static_cast<size_t>(i)];
    for (size_t k = 0; k < chains->kinds_.size(); ++k) {
      const Kind& kind = chains->kinds_[k];
      ChainEntry e;
      e.kind = static_cast<int32_t>(k);
      e.consumer_scoped = !kind.by_consumer.empty();
      if (route.has_service_id() && !kind.by_route_service.empty()) {
        key = routeServiceKey(route.id(), route.service_id());
        if (auto it = kind.by_route_service.find(key); it != kind.by_route_service.end()) {
          e.base = it->second;
          e.base_rank = 4;
        }
      }
      if (e.base == nullptr) {
        if (auto it = kind.by_route.find(route.id()); it != kind.by_route.end()) {
          e.base = it->second;
          e.base_rank = 6;
        }
      }
      if (e.base == nullptr && route.has_service_id()) {
        if (auto it = kind.by_service.find(route.service_id()); it != kind.by_service.end()) {
          e.base = it->second;
          e.base_rank = 7;
        }
      }
      if (e.base == nullptr && kind.global != nullptr) {
        e.base = kind.global;
        e.base_rank = 8;
      }
      if (e.base != nullptr || e.consumer_scoped) {
        chain.push_back(e);
      }
    }
    std::sort(chain.begin(), chain.end(), before);
    const config::v1::Plugin* ordered = nullptr;  // an instance on this chain with `ordering`
    std::vector<std::string_view> names;
    for (size_t k = 0; k < chain.size(); ++k) {
      chain[k].priority_pos = static_cast<uint16_t>(k);
      names.push_back(chains->kinds_[static_cast<size_t>(chain[k].kind)].name);
      const PluginInstance* b = chain[k].base;
      if (ordered == nullptr && b != nullptr && b->entity != nullptr &&
          (!b->run_before.empty() || !b->run_after.empty())) {
        ordered = b->entity;
      }
    }
    if (ordered != nullptr) {
      absl::StatusOr<Chain> access = accessOrder(chain, names);
      if (!access.ok()) {
        const absl::string_view why = access.status().message();
        return pluginError(*ordered, "ordering",
                           std::string(why.data(), why.size()) + " (route " + route.id() + ")",
                           errors);
      }
      chains->access_orders_.emplace(i, *std::move(access));
    }
  }
  return std::unique_ptr<const PluginChains>(std::move(chains));
}

const PluginInstance* PluginChains::resolve(const ChainEntry& entry,
                                            const config::v1::Route* route,
                                            const config::v1::Service* service,
                                            const Consumer* consumer) const {
  if (!entry.consumer_scoped || consumer == nullptr) {
    return entry.base;
  }
  const Kind& kind = kinds_[static_cast<size_t>(entry.kind)];
  auto it = kind.by_consumer.find(consumer->entity->id());
  if (it == kind.by_consumer.end()) {
    return entry.base;
  }
  const PluginInstance* best = entry.base;
  uint8_t best_rank = entry.base == nullptr ? 9 : entry.base_rank;
  for (const PluginInstance* inst : it->second) {
    const config::v1::Plugin& p = *inst->entity;
    const bool route_ok = !p.has_route() || (route != nullptr && p.route().id() == route->id());
    const bool service_ok =
        !p.has_service() || (service != nullptr && p.service().id() == service->id());
    if (!route_ok || !service_ok) {
      continue;
    }
    const uint8_t rank = p.has_route() ? (p.has_service() ? 1 : 2) : (p.has_service() ? 3 : 5);
    if (rank < best_rank) {
      best = inst;
      best_rank = rank;
    }
  }
  return best;
}

}  // namespace portico::dp
