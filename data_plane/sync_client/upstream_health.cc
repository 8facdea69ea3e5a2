#include "data_plane/sync_client/upstream_health.h"

#include <utility>

#include "data_plane/balancer/balancer.h"

namespace portico::dp {

std::vector<sync::v1::UpstreamHealth> upstreamHealth(const Snapshot* snapshot) {
  std::vector<sync::v1::UpstreamHealth> out;
  if (snapshot == nullptr) {
    return out;
  }
  out.reserve(snapshot->balancers().size());
  for (const auto& balancer : snapshot->balancers()) {
    if (balancer == nullptr) {
      continue;
    }
    balancer::UpstreamReport report = balancer->healthReport();
    sync::v1::UpstreamHealth& u = out.emplace_back();
    u.set_upstream_id(std::move(report.id));
    u.set_name(std::move(report.name));
    for (balancer::TargetReport& t : report.targets) {
      sync::v1::TargetHealth* th = u.add_targets();
      th->set_target(std::move(t.target));
      th->set_weight(t.weight);
      th->set_health(std::move(t.health));
      for (balancer::AddressReport& a : t.addresses) {
        sync::v1::AddressHealth* ah = th->add_addresses();
        ah->set_ip(std::move(a.ip));
        ah->set_port(a.port);
        ah->set_healthy(a.healthy);
      }
    }
  }
  return out;
}

}  // namespace portico::dp
