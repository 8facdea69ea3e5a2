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

}  // namespace

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
  // Held until the balancers below hold them too (the resolver forgets unheld names).
  // IP literals need no watch: their services get fixed endpoints (Balancer::forService).
  std::vector<dns::RecordSharedPtr> names;
  std::string scratch;
  for (const config::v1::Service& s : snap->config_->services()) {
    if (!ipLiteral(s.host(), &scratch) &&
        !upstream_by_name.contains(absl::AsciiStrToLower(s.host()))) {
      names.push_back(rt.resolver().watch(s.host()));
    }
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
  snap->targets_.reserve(static_cast<size_t>(snap->config_->services_size()));
  for (const config::v1::Service& s : snap->config_->services()) {
    ServiceTarget t;
    t.service = &s;
    const bool https = s.protocol() == "https" || s.protocol() == "grpcs";
    t.port = s.port() > 0 && s.port() <= 65535 ? static_cast<uint16_t>(s.port())
                                               : static_cast<uint16_t>(https ? 443 : 80);
    auto upstream = upstream_by_name.find(absl::AsciiStrToLower(s.host()));
    if (upstream != upstream_by_name.end()) {
      t.balancer = snap->balancers_[upstream->second];
    } else {
      t.balancer = balancer::Balancer::forService(s.host(), t.port, https, rt);
    }
    // Names resolve in the balancer: a host without addresses answers 503 at pick time.
    t.resolved = true;
    ipLiteral(s.host(), &t.address);
    t.pool_key = absl::StrCat(t.address, "|", t.port);
    const uint16_t default_port = https ? 443 : 80;
    t.host_header = t.port == default_port ? s.host() : absl::StrCat(s.host(), ":", t.port);
    t.base_path = s.has_path() && !s.path().empty() ? s.path() : "/";
    t.connect_timeout_ms = timeoutOr(s.connect_timeout(), 60000);
    t.read_timeout_ms = timeoutOr(s.read_timeout(), 60000);
    t.write_timeout_ms = timeoutOr(s.write_timeout(), 60000);
    t.retries = s.retries() > 0 ? static_cast<uint32_t>(s.retries()) : 0;
    if (https) {
      ASSIGN_OR_RETURN(t.tls, tls::makeUpstreamTls(s, *snap->config_));
      // TLS connections differ per service (SNI, verification, client certificate).
      absl::StrAppend(&t.pool_key, "|tls|", s.id());
      t.pool_key_suffix = absl::StrCat("|tls|", s.id());
    }
    snap->targets_.push_back(std::move(t));
  }
  return std::shared_ptr<const Snapshot>(std::move(snap));
}

}  // namespace portico::dp
