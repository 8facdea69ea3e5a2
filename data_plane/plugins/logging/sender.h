// The asynchronous side of http-log, tcp-log and udp-log. A proxy worker's onLog only
// serializes the request and hands the text to a Sender (push(): a short lock, never any I/O);
// every connection, write, retry and wait happens on one log I/O thread of the process (an
// Asio event loop of its own, as the Redis client's). So a log server that is slow, refuses
// or resets never costs a request anything but the serialization.
//
// Each Sender holds a bounded queue (Kong's kong.tools.queue rules): at most max_entries
// entries (and max_bytes bytes when set) wait; when it is full the oldest entry is dropped to
// make room, and every dropped entry is counted (portico_dp_<plugin>_dropped_total on the DP's
// /metrics). Memory is bounded by the queue caps whatever the log server does.
//
// Configs with the same destination (and, for http-log, Kong's queue name parameters) share
// one Sender, so a new snapshot keeps the queue and its connection. When the last config
// holding a Sender goes, what is still queued is sent once more (no retries) and the Sender
// stops.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "data_plane/plugins/plugin_stats.h"

namespace portico::dp::plugins::logging {

// What a logger counts (static PluginCounters of the plugin's own file).
struct Counters {
  PluginCounter* dropped;  // queue full (oldest dropped) or an entry over max_bytes
  PluginCounter* failed;   // given up after delivery failed (and its retries)
  PluginCounter* sent;     // delivered
};

// Kong's `queue` record (kong/tools/queue_schema.lua), in its units.
struct QueueOptions {
  size_t max_batch_size = 1;
  double max_coalescing_delay_s = 1;
  size_t max_entries = 10000;
  size_t max_bytes = 0;  // 0: no byte cap
  double max_retry_time_s = 60;
  double initial_retry_delay_s = 0.01;
  double max_retry_delay_s = 60;
  // 1: one delivery at a time, entries batched. -1 (Kong: a timer per entry, unbounded): each
  // entry delivered on its own, up to kUnlimitedDeliveries at once.
  int concurrency_limit = 1;
};
inline constexpr int kUnlimitedDeliveries = 16;

struct HttpTarget {
  bool tls = false;  // https (certificate not verified, as Kong's http-log: ssl_verify=false)
  std::string host;
  uint16_t port = 80;
  std::string path = "/";  // Kong sends scheme://host:port/path, the endpoint's query dropped
  std::string method = "POST";
  std::string content_type = "application/json";
  std::string authorization;  // "Basic ..." from the endpoint's userinfo, "" for none
  std::map<std::string, std::string> headers;  // config.headers
  uint32_t timeout_ms = 10000;    // connect, send and each read
  uint32_t keepalive_ms = 60000;  // how long an idle connection is kept
};

struct StreamTarget {
  std::string host;
  uint16_t port = 0;
  uint32_t timeout_ms = 10000;
  uint32_t keepalive_ms = 60000;  // tcp-log
  bool tls = false;               // tcp-log: TLS, certificate not verified (Kong: verify=false)
  std::string tls_sni;            // "" for none
};

class SenderCore;

// A shared sender; holders keep it running.
class Sender {
 public:
  // http-log: entries batched per queue.max_batch_size; one entry is sent as the body itself
  // when max_batch_size is 1, else a batch is a JSON array (also of one entry), as Kong does.
  static std::shared_ptr<Sender> http(const std::string& key, const HttpTarget& target,
                                      const QueueOptions& queue, const Counters& counters);
  // tcp-log: each entry followed by "\n" on one kept connection (reconnected when needed).
  static std::shared_ptr<Sender> tcp(const std::string& key, const StreamTarget& target,
                                     size_t max_entries, const Counters& counters);
  // udp-log: one datagram per entry.
  static std::shared_ptr<Sender> udp(const std::string& key, const StreamTarget& target,
                                     size_t max_entries, const Counters& counters);
  ~Sender();
  Sender(const Sender&) = delete;
  Sender& operator=(const Sender&) = delete;

  // Proxy worker side: queues one entry. Thread-safe; no I/O, no wait beyond a short lock.
  // Returns the buffer of an entry dropped to make room (for the caller to reuse), else "".
  std::string push(std::string entry);

  // For onLog: serializes the request with `serialize` into a per-worker buffer sized after
  // the previous entry (queued entries keep little spare capacity) and queues it; a dropped
  // entry's buffer is reused for the next one, so a full queue costs no allocation.
  template <typename Serialize>
  void pushSerialized(Serialize serialize) {
    thread_local std::string buf;
    thread_local size_t last = 1024;
    buf.clear();
    if (buf.capacity() < last + 256) {
      buf.reserve(last + 256);
    }
    serialize(&buf);
    last = buf.size();
    buf = push(std::move(buf));
  }

  explicit Sender(std::shared_ptr<SenderCore> core) : core_(std::move(core)) {}

 private:
  std::shared_ptr<SenderCore> core_;
};

// Entries waiting in every sender of the process (tests, /metrics).
size_t queuedEntries();

}  // namespace portico::dp::plugins::logging
