// tcp-log and udp-log: the same plugin over two transports. The worker serializes the request
// and queues it (logging/sender.h); the log I/O thread sends it. Kong sends each entry from a
// timer of its own, without a bound; here at most kMaxQueued entries wait per destination and
// the oldest goes when more come (counted in portico_dp_<plugin>_dropped_total).
#pragma once

#include "absl/status/statusor.h"
#include "common/config/schema.h"
#include "data_plane/plugins/logging/sender.h"
#include "data_plane/plugins/plugin.h"

namespace portico::dp::plugins::logging {

inline constexpr size_t kMaxQueued = 10000;

enum class Transport : uint8_t { kTcp, kUdp };

// A timeout field in ms as nginx's cosocket takes it: 0 means `zero` (60 s for a timeout;
// for a keepalive, kept without an idle limit); a negative value is refused.
absl::StatusOr<uint32_t> millisField(const config::Json& conf, const char* field, double def,
                                     uint32_t zero);
inline constexpr uint32_t kNoIdleLimit = 4000000000u;

absl::StatusOr<PluginConfigConstSharedPtr> buildStreamLog(Transport transport,
                                                          std::string_view name,
                                                          int32_t priority,
                                                          const config::Json& conf,
                                                          const Counters& counters);

}  // namespace portico::dp::plugins::logging
