// Extra integer gRPC channel arguments from the environment, for tuning and benchmarking the
// sync client without a rebuild: PORTICO_SYNC_CLIENT_GRPC_ARGS (data planes, fleet_sim),
// "name=int[,name=int...]", e.g.
// "grpc.http2.bdp_probe=0,grpc.http2.lookahead_bytes=16384". They are applied after our own
// defaults, so they override them. Malformed entries are ignored.
#pragma once

#include <cstdlib>
#include <functional>
#include <string>

namespace portico::sync {

// Client transport defaults of the sync stream (measured with tests/bench/sync_bench.sh;
// RESULTS.md, "Config sync"). HTTP/2 BDP probing is off (the CP's own server never probes):
// its PINGs and their timers cost every stream a write, a read and a timer wake-up per probe
// after each push, ~15 % of the CP's CPU per change at 200 DPs, for no gain (a push is a few hundred bytes; a full
// snapshot is chunked under 1 MiB). Without BDP the receive window stays at the lookahead,
// so the DP (which receives the big chunks) asks for kClientLookaheadBytes: one chunk per
// round trip on a long link. Nothing is allocated for it until bytes are in flight.
inline constexpr int kClientLookaheadBytes = 1 << 20;

inline void forEachGrpcArgFromEnv(const char* env,
                                  const std::function<void(const std::string&, int)>& set) {
  const char* value = std::getenv(env);
  if (value == nullptr) {
    return;
  }
  const std::string s(value);
  size_t pos = 0;
  while (pos < s.size()) {
    size_t end = s.find(',', pos);
    if (end == std::string::npos) {
      end = s.size();
    }
    const std::string entry = s.substr(pos, end - pos);
    const size_t eq = entry.find('=');
    if (eq != std::string::npos && eq > 0) {
      char* rest = nullptr;
      const long v = std::strtol(entry.c_str() + eq + 1, &rest, 10);
      if (rest != nullptr && *rest == '\0' && rest != entry.c_str() + eq + 1) {
        set(entry.substr(0, eq), static_cast<int>(v));
      }
    }
    pos = end + 1;
  }
}

}  // namespace portico::sync
