#include "data_plane/plugins/chain.h"

#include <algorithm>

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

}  // namespace

std::unique_ptr<const PluginChains> PluginChains::globalOnly(
    std::vector<PluginConfigConstSharedPtr> configs) {
  auto chains = std::unique_ptr<PluginChains>(new PluginChains());
  for (PluginConfigConstSharedPtr& c : configs) {
    chains->kinds_.emplace_back();
    chains->kinds_.back().name = c->name();
    chains->kinds_.back().priority = c->priority();
    chains->instances_.push_back(
        std::make_unique<PluginInstance>(PluginInstance{nullptr, std::move(c)}));
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
    absl::StatusOr<PluginConfigConstSharedPtr> built = factory->build(p, *conf);
    if (!built.ok()) {
      const absl::string_view why = built.status().message();
      return pluginError(p, "config", std::string_view(why.data(), why.size()), errors);
    }
    auto inst = std::make_unique<PluginInstance>(PluginInstance{&p, *std::move(built)});
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
