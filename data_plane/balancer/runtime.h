// The balancer's long-lived machinery, shared by every snapshot: the DNS resolver thread and the
// health checker (health state and active probes). Snapshots come and go; this stays, so a
// target's health and a name's last good answer survive config changes.
#pragma once

#include <chrono>
#include <memory>

#include "data_plane/balancer/health.h"
#include "data_plane/dns/resolver.h"

namespace portico::dp::balancer {

class Runtime {
 public:
  struct Options {
    dns::Resolver::Options dns;
    // How long a snapshot build waits for names it has never resolved before (config thread).
    std::chrono::milliseconds dns_wait{2000};
  };

  explicit Runtime(Options options);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // The process-wide runtime (system resolver settings), started on first use and never
  // destroyed; Snapshot::build uses it when it is given none.
  static Runtime& processDefault();

  const Options& options() const { return options_; }
  dns::Resolver& resolver() { return resolver_; }
  HealthChecker& health() { return health_; }

 private:
  const Options options_;
  dns::Resolver resolver_;
  HealthChecker health_;
};

}  // namespace portico::dp::balancer
