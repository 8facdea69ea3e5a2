#include "data_plane/snapshot.h"

#include <netdb.h>
#include <sys/socket.h>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "data_plane/balancer/runtime.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace portico::dp {
namespace {

// IP literals need no resolution; names go to the balancer's resolver (never blocking here).
using dns::ipLiteral;

uint32_t timeoutOr(int32_t ms, uint32_t dflt) { return ms > 0 ? static_cast<uint32_t>(ms) : dflt; }

// A destination a plugin instance announced, for one service it can apply to.
struct PendingDestination {
  int32_t service_index = 0;
  UpstreamDestination dest;
};

// Every (service, destination) pair the plugins may switch a request to: an instance scoped
// to a service or a route applies to that service only; a global or consumer-only one to
// every service.
std::vector<PendingDestination> announcedDestinations(const config::v1::Snapshot& config,
                                                      const PluginChains& chains) {
  std::vector<PendingDestination> out;
  absl::flat_hash_map<std::string_view, int32_t> service_index;
  absl::flat_hash_map<std::string_view, std::string_view> route_service;
  std::vector<UpstreamDestination> dests;
  for (size_t i = 0; i < chains.instanceCount(); ++i) {
    const PluginInstance& inst = chains.instance(i);
    dests.clear();
    inst.config->upstreamDestinations(&dests);
    if (dests.empty()) {
      continue;
    }
    if (service_index.empty()) {
      for (int32_t s = 0; s < config.services_size(); ++s) {
        service_index[config.services(s).id()] = s;
      }
      for (const config::v1::Route& r : config.routes()) {
        if (r.has_service_id()) route_service[r.id()] = r.service_id();
      }
    }
    std::vector<int32_t> services;
    std::string_view only;
    if (inst.entity->has_service()) {
      only = inst.entity->service().id();
    } else if (inst.entity->has_route()) {
      auto rs = route_service.find(inst.entity->route().id());
      if (rs == route_service.end()) continue;  // a serviceless route proxies nowhere
      only = rs->second;
    }
    if (!only.empty()) {
      auto si = service_index.find(only);
      if (si != service_index.end()) services.push_back(si->second);
    } else {
      for (int32_t s = 0; s < config.services_size(); ++s) services.push_back(s);
    }
    for (int32_t s : services) {
      for (const UpstreamDestination& d : dests) out.push_back(PendingDestination{s, d});
    }
  }
  return out;
}

// Builds what the proxy needs to send a service's requests to its host and port, or to a
// destination a plugin moves them to (which replaces the host, the port or both; the
// service's protocol, timeouts, retries, path and TLS settings stay).
struct TargetBuilder {
  const config::v1::Snapshot& config;
  const absl::flat_hash_map<std::string, size_t>& upstream_by_name;
  const std::vector<std::shared_ptr<const balancer::Balancer>>& balancers;
  balancer::Runtime& rt;

  absl::StatusOr<ServiceTarget> build(const config::v1::Service& s,
                                      const UpstreamDestination& dest) const {
    ServiceTarget t;
    t.service = &s;
    const std::string& host = dest.host.empty() ? s.host() : dest.host;
    const bool https = s.protocol() == "https" || s.protocol() == "grpcs";
    t.port = dest.port != 0 ? dest.port
             : s.port() > 0 && s.port() <= 65535 ? static_cast<uint16_t>(s.port())
                                                 : static_cast<uint16_t>(https ? 443 : 80);
    auto upstream = upstream_by_name.find(absl::AsciiStrToLower(host));
    if (upstream != upstream_by_name.end()) {
      t.balancer = balancers[upstream->second];
    } else {
      t.balancer = balancer::Balancer::forService(host, t.port, https, rt);
    }
    // Names resolve in the balancer: a host without addresses answers 503 at pick time.
    t.resolved = true;
    ipLiteral(host, &t.address);
    t.pool_key = absl::StrCat(t.address, "|", t.port);
    const uint16_t default_port = https ? 443 : 80;
    t.host_header = t.port == default_port ? host : absl::StrCat(host, ":", t.port);
    t.base_path = s.has_path() && !s.path().empty() ? s.path() : "/";
    t.connect_timeout_ms = timeoutOr(s.connect_timeout(), 60000);
    t.read_timeout_ms = timeoutOr(s.read_timeout(), 60000);
    t.write_timeout_ms = timeoutOr(s.write_timeout(), 60000);
    t.retries = s.retries() > 0 ? static_cast<uint32_t>(s.retries()) : 0;
    if (https) {
      if (dest.host.empty()) {
        ASSIGN_OR_RETURN(t.tls, tls::makeUpstreamTls(s, config));
      } else {
        // SNI and the verified name are the destination's.
        config::v1::Service moved = s;
        moved.set_host(dest.host);
        ASSIGN_OR_RETURN(t.tls, tls::makeUpstreamTls(moved, config));
      }
      // TLS connections differ per service (SNI, verification, client certificate) and,
      // with a destination of their own, per destination host.
      t.pool_key_suffix = absl::StrCat("|tls|", s.id());
      if (!dest.host.empty()) absl::StrAppend(&t.pool_key_suffix, "|", dest.host);
      absl::StrAppend(&t.pool_key, t.pool_key_suffix);
    }
    return t;
  }
};

}  // namespace

const ServiceTarget* Snapshot::destination(int32_t service_index,
                                           const UpstreamDestination& dest) const {
  auto by_host = destinations_.find(absl::string_view(dest.host.data(), dest.host.size()));
  if (by_host == destinations_.end()) {
    return nullptr;
  }
  auto t = by_host->second.find(static_cast<uint64_t>(service_index) << 16 | dest.port);
  return t != by_host->second.end() ? t->second.get() : nullptr;
}

absl::StatusOr<std::shared_ptr<const Snapshot>> Snapshot::build(
    config::v1::Snapshot config, std::string hash, balancer::Runtime* runtime,
    std::unique_ptr<const PluginChains> chains, config::FieldErrors* errors) {
  std::shared_ptr<const config::KeyAuthTable> key_auth = config::KeyAuthTable::extract(&config);
  return build(std::make_shared<const config::v1::Snapshot>(std::move(config)),
               std::move(key_auth), std::move(hash), runtime, std::move(chains), errors);
}

absl::StatusOr<std::shared_ptr<const Snapshot>> Snapshot::build(
    std::shared_ptr<const config::v1::Snapshot> rest,
    std::shared_ptr<const config::KeyAuthTable> key_auth, std::string hash,
    balancer::Runtime* runtime, std::unique_ptr<const PluginChains> chains,
    config::FieldErrors* errors) {
  std::shared_ptr<Snapshot> snap(new Snapshot());
  snap->config_ = std::move(rest);
  snap->key_auth_ = key_auth != nullptr ? std::move(key_auth) : config::KeyAuthTable::empty();
  snap->hash_ = std::move(hash);
  ASSIGN_OR_RETURN(snap->router_, router::Router::build(*snap->config_));
  ASSIGN_OR_RETURN(snap->consumers_, ConsumerIndex::build(*snap->config_, snap->key_auth_));
  if (chains != nullptr) {
    snap->plugins_ = std::move(chains);
  } else {
    ASSIGN_OR_RETURN(snap->plugins_, PluginChains::build(*snap->config_, errors));
  }
  ASSIGN_OR_RETURN(snap->certificates_, tls::CertificateTable::build(*snap->config_));
  // Balancers: every name resolved at once (a bounded wait, on this config thread), then one
  // balancer per upstream; health state carries over inside the runtime.
  balancer::Runtime& rt = runtime != nullptr ? *runtime : balancer::Runtime::processDefault();
  absl::flat_hash_map<std::string, size_t> upstream_by_name;
  for (const config::v1::Upstream& u : snap->config_->upstreams()) {
    upstream_by_name[absl::AsciiStrToLower(u.name())] = upstream_by_name.size();
  }
  const std::vector<PendingDestination> pending = announcedDestinations(*snap->config_,
                                                                        *snap->plugins_);
  // Held until the balancers below hold them too (the resolver forgets unheld names).
  // IP literals need no watch: their services get fixed endpoints (Balancer::forService).
  std::vector<dns::RecordSharedPtr> names;
  std::string scratch;
  auto watch = [&](const std::string& host) {
    if (!ipLiteral(host, &scratch) && !upstream_by_name.contains(absl::AsciiStrToLower(host))) {
      names.push_back(rt.resolver().watch(host));
    }
  };
  for (const config::v1::Service& s : snap->config_->services()) {
    watch(s.host());
  }
  for (const PendingDestination& d : pending) {
    watch(d.dest.host.empty() ? snap->config_->services(d.service_index).host() : d.dest.host);
  }
  for (const config::v1::Target& t : snap->config_->targets()) {
    size_t colon = t.target().rfind(':');
    names.push_back(rt.resolver().watch(t.target().substr(0, colon)));
  }
  dns::Resolver::waitSettled(names, rt.options().dns_wait);
  for (const config::v1::Upstream& u : snap->config_->upstreams()) {
    std::vector<const config::v1::Target*> targets;
    for (const config::v1::Target& t : snap->config_->targets()) {
      if (t.upstream().id() == u.id()) {
        targets.push_back(&t);
      }
    }
    ASSIGN_OR_RETURN(balancer::BalancerConfig bc,
                     balancer::BalancerConfig::fromUpstream(u, targets));
    snap->balancers_.push_back(
        balancer::Balancer::create(std::move(bc), rt, std::chrono::milliseconds(0)));
  }
  const TargetBuilder builder{*snap->config_, upstream_by_name, snap->balancers_, rt};
  snap->targets_.reserve(static_cast<size_t>(snap->config_->services_size()));
  for (const config::v1::Service& s : snap->config_->services()) {
    ASSIGN_OR_RETURN(ServiceTarget t, builder.build(s, UpstreamDestination{}));
    snap->targets_.push_back(std::move(t));
  }
  for (const PendingDestination& d : pending) {
    auto& by_service = snap->destinations_[d.dest.host];
    const uint64_t key = static_cast<uint64_t>(d.service_index) << 16 | d.dest.port;
    if (by_service.contains(key)) {
      continue;
    }
    ASSIGN_OR_RETURN(ServiceTarget t,
                     builder.build(snap->config_->services(d.service_index), d.dest));
    by_service[key] = std::make_unique<ServiceTarget>(std::move(t));
  }
  return std::shared_ptr<const Snapshot>(std::move(snap));
}

}  // namespace portico::dp
