// The immutable config a data plane serves from: the router and the services it points at,
// built once from a validated config::v1::Snapshot on the config thread and published through
// Versioned<Snapshot>. A request reads the pointer once and keeps it until it finishes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "common/config/key_auth_table.h"
#include "common/versioned.h"
#include "data_plane/balancer/balancer.h"
#include "data_plane/plugins/chain.h"
#include "data_plane/plugins/consumers.h"
#include "data_plane/tls/tls.h"
#include "data_plane/router/router.h"
#include "portico/config/v1/config.pb.h"

namespace portico::dp {

// What the proxy needs per service, precomputed at build time so the hot path only reads.
struct ServiceTarget {
  const config::v1::Service* service = nullptr;
  bool resolved = false;         // false: answer 503 "name resolution failed"
  std::string address;           // IP literal the host resolved to (at build time)
  uint16_t port = 80;
  std::string pool_key;          // "address|port": the worker keep-alive pools' key
  std::string host_header;       // "host" or "host:port" when the port is not the default
  std::string base_path;         // service.path, or "/" when null
  uint32_t connect_timeout_ms = 60000;
  uint32_t read_timeout_ms = 60000;
  uint32_t write_timeout_ms = 60000;
  uint32_t retries = 5;          // Kong's service.retries: further tries after a failed one
  std::shared_ptr<const tls::UpstreamTls> tls;  // set when service.protocol is https/grpcs
  // Picks the address of each attempt: the upstream named by service.host (as Kong), else a
  // balancer over the host itself (resolved off the hot path, DNS TTLs honoured). Never null.
  std::shared_ptr<const balancer::Balancer> balancer;
  std::string pool_key_suffix;  // appended to the balancer's "address|port" pool key
};

class Snapshot {
 public:
  // Builds router and service tables. The caller has already run config::validateSnapshot();
  // build() still fails cleanly (never crashes) on anything it cannot compile.
  // Upstreams get their balancers; service hosts naming no upstream get one over the host
  // (an IP-literal host: a fixed endpoint, see balancer::Balancer::forService).
  // Names are resolved by `runtime`'s resolver thread (null: Runtime::processDefault()); build()
  // waits briefly for names never seen before. Health state carries over from the previous
  // snapshot for unchanged upstreams.
  // Consumers are indexed and plugin chains compiled through the registry; a plugin this DP
  // does not implement, or cannot run as configured, fails the build (never fail open).
  // `chains`: replaces the compiled chains (tests of the proxy's plugin phases). `errors`
  // (optional) receives a plugin failure as a field error (the NACK's field path).
  static absl::StatusOr<std::shared_ptr<const Snapshot>> build(
      config::v1::Snapshot config, std::string hash, balancer::Runtime* runtime = nullptr,
      std::unique_ptr<const PluginChains> chains = nullptr,
      config::FieldErrors* errors = nullptr);
  // The same over a shared config held split, as the sync client holds it (a big config is in
  // memory once, not once per holder): `rest` without key-auth credentials, `key_auth` with
  // them (validated with config::validateSnapshot(*rest, key_auth.get())). The by-value
  // build() above moves the proto's credentials into a table itself.
  static absl::StatusOr<std::shared_ptr<const Snapshot>> build(
      std::shared_ptr<const config::v1::Snapshot> rest,
      std::shared_ptr<const config::KeyAuthTable> key_auth, std::string hash,
      balancer::Runtime* runtime = nullptr, std::unique_ptr<const PluginChains> chains = nullptr,
      config::FieldErrors* errors = nullptr);

  uint64_t generation() const { return config_->generation(); }
  const std::string& hash() const { return hash_; }
  // The config without its key-auth credentials (see keyAuth()).
  const config::v1::Snapshot& config() const { return *config_; }
  const config::KeyAuthTable& keyAuth() const { return *key_auth_; }

  const router::Router& router() const { return *router_; }
  // Indexed like config().services(); valid for a Match's service_index.
  const ServiceTarget& target(int32_t service_index) const {
    return targets_[static_cast<size_t>(service_index)];
  }
  // Where a request for the service at `service_index` goes when a plugin moved it to `dest`
  // (RequestContext::setUpstreamDestination): built at build() time for every destination a
  // plugin instance announced and every service it can apply to. Null for one never announced.
  const ServiceTarget* destination(int32_t service_index, const UpstreamDestination& dest) const;
  // One balancer per upstream, in config().upstreams() order (health reports).
  const std::vector<std::shared_ptr<const balancer::Balancer>>& balancers() const {
    return balancers_;
  }
  // Server certificates by SNI (certificates + snis); never null after build().
  const tls::CertificateTable& certificates() const { return *certificates_; }
  // The plugin chains per route; the proxy skips every phase (no cost) when they are empty.
  const PluginChains& plugins() const { return *plugins_; }
  // Consumers and credentials by key, username and id.
  const ConsumerIndex& consumers() const { return *consumers_; }

 private:
  Snapshot() = default;

  std::shared_ptr<const config::v1::Snapshot> config_;
  std::shared_ptr<const config::KeyAuthTable> key_auth_;
  std::string hash_;
  std::unique_ptr<const router::Router> router_;  // points into config_
  std::vector<ServiceTarget> targets_;
  std::vector<std::shared_ptr<const balancer::Balancer>> balancers_;
  // destination host -> (service index << 16 | destination port) -> target.
  absl::flat_hash_map<std::string, absl::flat_hash_map<uint64_t, std::unique_ptr<ServiceTarget>>>
      destinations_;
  std::unique_ptr<const tls::CertificateTable> certificates_;
  std::unique_ptr<const ConsumerIndex> consumers_;  // points into config_
  std::unique_ptr<const PluginChains> plugins_;     // points into config_
};

using SnapshotConstSharedPtr = std::shared_ptr<const Snapshot>;
using SnapshotStore = Versioned<Snapshot>;

}  // namespace portico::dp
