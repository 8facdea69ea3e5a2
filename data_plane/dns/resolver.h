// DNS for the data plane: hostnames of services and upstream targets are resolved with c-ares on
// one resolver thread, never on a worker. Each watched name is a Record whose last good answer
// is published atomically; it is re-resolved when its TTL expires, and a failed resolution keeps
// the previous answer (Kong's stale-on-error) and is retried after a short delay.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"

struct ares_addrinfo;  // c-ares, kept out of this header

namespace portico::dp::dns {

// True if `host` is an IPv4 or IPv6 literal (IPv6 optionally in brackets); `*bare` then gets
// the address without brackets. Such hosts need no resolution.
bool ipLiteral(const std::string& host, std::string* bare);

// Told when a Record's answer changes. Called on the resolver thread; must not block long.
class Listener {
 public:
  virtual ~Listener() = default;
  virtual void onAddressesChanged() = 0;
};

// One hostname. Shared (shared_ptr) by every balancer of every live snapshot that names it; the
// resolver keeps re-resolving it while anyone holds it.
class Record {
 public:
  using Addresses = std::vector<std::string>;  // IP literals, sorted, no duplicates

  explicit Record(std::string name) : name_(std::move(name)) {}

  const std::string& name() const { return name_; }
  // Any thread. The last good answer (empty before the first success), never nullptr.
  std::shared_ptr<const Addresses> addresses() const;
  // Any thread. Bumped each time the answer changes (a renewed identical answer keeps it).
  uint64_t version() const { return version_.load(std::memory_order_acquire); }
  // Any thread. True once the first resolution attempt finished (answer or error).
  bool settled() const { return settled_.load(std::memory_order_acquire); }
  // Any thread. Last error text ("" after a success).
  std::string lastError() const;
  // Any thread. `listener` is told of later changes for as long as it is alive.
  void subscribe(std::weak_ptr<Listener> listener);

 private:
  friend class Resolver;
  // Resolver thread only.
  void publish(Addresses addresses);
  void fail(std::string error);

  const std::string name_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const Addresses> addresses_ ABSL_GUARDED_BY(mu_) =
      std::make_shared<const Addresses>();
  std::string error_ ABSL_GUARDED_BY(mu_);
  std::vector<std::weak_ptr<Listener>> listeners_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> version_{0};
  std::atomic<bool> settled_{false};
  // Resolver thread only.
  uint64_t next_due_ms_ = 0;
  bool in_flight_ = false;
};
using RecordSharedPtr = std::shared_ptr<Record>;

class Resolver {
 public:
  struct Options {
    // "host[:port],..." of name servers; empty = the system's resolv.conf. Tests point this at
    // a local server.
    std::string servers;
    // c-ares lookup order: "fb" = hosts file then DNS (the hosts file is /etc/hosts, or the file
    // named by the CARES_HOSTS environment variable).
    std::string lookups = "fb";
    // Answers with a smaller TTL (hosts-file answers carry 0) are kept this long.
    uint32_t min_ttl_ms = 1000;
    // Answers are never kept longer than this, whatever their TTL.
    uint32_t max_ttl_ms = 3600 * 1000;
    // After a failure (the last good answer is kept meanwhile), retry after this long.
    uint32_t error_retry_ms = 1000;
    uint32_t query_timeout_ms = 2000;
  };

  // Starts the resolver thread.
  explicit Resolver(Options options);
  ~Resolver();  // stops and joins the thread
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  // Any thread. The record for `name` (lower-cased), created and queued for resolution if no one
  // holds it yet. IP literals get a settled record with that one address and are never queried.
  RecordSharedPtr watch(const std::string& name);

  // Config thread (blocks): waits until every record is settled or `timeout` passes. Returns
  // true if all settled.
  static bool waitSettled(const std::vector<RecordSharedPtr>& records,
                          std::chrono::milliseconds timeout);

  uint64_t resolutions() const { return resolutions_.load(std::memory_order_relaxed); }

 private:
  struct Query;
  void run();
  void wake();
  static void onAnswer(void* arg, int status, int timeouts, ::ares_addrinfo* result);

  const Options options_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::weak_ptr<Record>> records_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  int wake_fd_ = -1;  // eventfd
  std::atomic<uint64_t> resolutions_{0};
  std::thread thread_;
};

}  // namespace portico::dp::dns
