#include "data_plane/dns/resolver.h"

#include <ares.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <mutex>

#include "absl/strings/ascii.h"
#include "common/logging.h"
#include "common/clock.h"

namespace portico::dp::dns {

bool ipLiteral(const std::string& host, std::string* bare) {
  std::string h = host;
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') {
    h = h.substr(1, h.size() - 2);
  }
  unsigned char buf[16];
  if (inet_pton(AF_INET, h.c_str(), buf) == 1 || inet_pton(AF_INET6, h.c_str(), buf) == 1) {
    *bare = std::move(h);
    return true;
  }
  return false;
}

// One outstanding ares_getaddrinfo(); owns a reference so the record outlives the query.
struct Resolver::Query {
  Resolver* resolver;
  RecordSharedPtr record;
};

std::shared_ptr<const Record::Addresses> Record::addresses() const {
  absl::MutexLock lock(&mu_);
  return addresses_;
}

std::string Record::lastError() const {
  absl::MutexLock lock(&mu_);
  return error_;
}

void Record::subscribe(std::weak_ptr<Listener> listener) {
  absl::MutexLock lock(&mu_);
  listeners_.erase(std::remove_if(listeners_.begin(), listeners_.end(),
                                  [](const std::weak_ptr<Listener>& l) { return l.expired(); }),
                   listeners_.end());
  listeners_.push_back(std::move(listener));
}

void Record::publish(Addresses addresses) {
  std::sort(addresses.begin(), addresses.end());
  addresses.erase(std::unique(addresses.begin(), addresses.end()), addresses.end());
  std::vector<std::shared_ptr<Listener>> notify;
  {
    absl::MutexLock lock(&mu_);
    error_.clear();
    if (*addresses_ == addresses) {
      settled_.store(true, std::memory_order_release);
      return;  // a renewed answer: nothing changes for the balancers
    }
    addresses_ = std::make_shared<const Addresses>(std::move(addresses));
    version_.fetch_add(1, std::memory_order_acq_rel);
    for (const std::weak_ptr<Listener>& w : listeners_) {
      if (std::shared_ptr<Listener> l = w.lock()) {
        notify.push_back(std::move(l));
      }
    }
  }
  settled_.store(true, std::memory_order_release);
  // Outside the lock: listeners read addresses() again.
  for (const std::shared_ptr<Listener>& l : notify) {
    l->onAddressesChanged();
  }
}

void Record::fail(std::string error) {
  {
    absl::MutexLock lock(&mu_);
    error_ = std::move(error);
  }
  settled_.store(true, std::memory_order_release);
}

Resolver::Resolver(Options options) : options_(std::move(options)) {
  static std::once_flag init_once;
  std::call_once(init_once, [] { ares_library_init(ARES_LIB_INIT_ALL); });
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  thread_ = std::thread([this] { run(); });
}

Resolver::~Resolver() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  wake();
  thread_.join();
  ::close(wake_fd_);
}

void Resolver::wake() {
  uint64_t one = 1;
  ssize_t n = ::write(wake_fd_, &one, sizeof(one));
  (void)n;  // the counter saturating is fine: the thread is awake anyway
}

RecordSharedPtr Resolver::watch(const std::string& name) {
  std::string bare;
  if (ipLiteral(name, &bare)) {
    auto record = std::make_shared<Record>(bare);
    record->publish({bare});
    return record;
  }
  const std::string key = absl::AsciiStrToLower(name);
  RecordSharedPtr record;
  {
    absl::MutexLock lock(&mu_);
    std::weak_ptr<Record>& slot = records_[key];
    record = slot.lock();
    if (record) {
      return record;
    }
    record = std::make_shared<Record>(key);
    slot = record;
  }
  wake();
  return record;
}

bool Resolver::waitSettled(const std::vector<RecordSharedPtr>& records,
                           std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    bool all = std::all_of(records.begin(), records.end(),
                           [](const RecordSharedPtr& r) { return r->settled(); });
    if (all) {
      return true;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

void Resolver::onAnswer(void* arg, int status, int /*timeouts*/, ares_addrinfo* result) {
  std::unique_ptr<Query> q(static_cast<Query*>(arg));
  Record& record = *q->record;
  record.in_flight_ = false;
  if (status == ARES_EDESTRUCTION) {
    if (result != nullptr) {
      ares_freeaddrinfo(result);
    }
    return;
  }
  const Options& opts = q->resolver->options_;
  q->resolver->resolutions_.fetch_add(1, std::memory_order_relaxed);
  const uint64_t now = steadyMs();
  Record::Addresses addresses;
  int min_ttl = INT_MAX;
  if (status == ARES_SUCCESS && result != nullptr) {
    char text[INET6_ADDRSTRLEN];
    for (ares_addrinfo_node* n = result->nodes; n != nullptr; n = n->ai_next) {
      const void* src = nullptr;
      if (n->ai_family == AF_INET) {
        src = &reinterpret_cast<const sockaddr_in*>(n->ai_addr)->sin_addr;
      } else if (n->ai_family == AF_INET6) {
        src = &reinterpret_cast<const sockaddr_in6*>(n->ai_addr)->sin6_addr;
      }
      if (src != nullptr && inet_ntop(n->ai_family, src, text, sizeof(text)) != nullptr) {
        addresses.emplace_back(text);
        min_ttl = std::min(min_ttl, n->ai_ttl);
      }
    }
  }
  if (result != nullptr) {
    ares_freeaddrinfo(result);
  }
  if (addresses.empty()) {
    const std::string error =
        status == ARES_SUCCESS ? std::string("no addresses") : std::string(ares_strerror(status));
    if (!record.settled() || record.lastError() != error) {
      LOG_WARN("dns", "%s: %s (keeping the last good answer)", record.name(), error);
    }
    record.fail(error);
    record.next_due_ms_ = now + opts.error_retry_ms;
    return;
  }
  uint64_t ttl_ms = min_ttl <= 0 ? 0 : static_cast<uint64_t>(min_ttl) * 1000;
  ttl_ms = std::clamp<uint64_t>(ttl_ms, opts.min_ttl_ms, opts.max_ttl_ms);
  record.next_due_ms_ = now + ttl_ms;
  record.publish(std::move(addresses));
}

void Resolver::run() {
  ares_channel channel = nullptr;
  ares_options ao{};
  int mask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_LOOKUPS;
  ao.timeout = static_cast<int>(options_.query_timeout_ms);
  ao.tries = 2;
  std::string lookups = options_.lookups;
  ao.lookups = lookups.data();
  int rc = ares_init_options(&channel, &ao, mask);
  if (rc != ARES_SUCCESS) {
    LOG_ERROR("dns", "c-ares init failed: %s; names will not resolve", ares_strerror(rc));
    channel = nullptr;
  } else if (!options_.servers.empty()) {
    rc = ares_set_servers_ports_csv(channel, options_.servers.c_str());
    if (rc != ARES_SUCCESS) {
      LOG_ERROR("dns", "invalid name servers '%s': %s", options_.servers, ares_strerror(rc));
    }
  }
  for (;;) {
    const uint64_t now = steadyMs();
    uint64_t next_due = now + 1000;
    std::vector<RecordSharedPtr> due;
    {
      absl::MutexLock lock(&mu_);
      if (stop_) {
        break;
      }
      for (auto it = records_.begin(); it != records_.end();) {
        RecordSharedPtr r = it->second.lock();
        if (!r) {
          records_.erase(it++);  // nobody names it any more: stop re-resolving it
          continue;
        }
        if (!r->in_flight_) {
          if (r->next_due_ms_ <= now) {
            due.push_back(std::move(r));
          } else {
            next_due = std::min(next_due, r->next_due_ms_);
          }
        }
        ++it;
      }
    }
    for (RecordSharedPtr& r : due) {
      if (channel == nullptr) {
        r->fail("resolver unavailable");
        r->next_due_ms_ = now + options_.error_retry_ms;
        continue;
      }
      r->in_flight_ = true;
      ares_addrinfo_hints hints{};
      hints.ai_family = AF_UNSPEC;
      hints.ai_socktype = SOCK_STREAM;
      hints.ai_flags = ARES_AI_NOSORT | ARES_AI_ENVHOSTS;  // CARES_HOSTS names the hosts file
      const std::string name = r->name();
      ares_getaddrinfo(channel, name.c_str(), nullptr, &hints, &Resolver::onAnswer,
                       new Query{this, std::move(r)});
    }
    // Wait for c-ares sockets, the wake-up fd, a c-ares timeout or the next due record.
    pollfd fds[ARES_GETSOCK_MAXNUM + 1];
    ares_socket_t socks[ARES_GETSOCK_MAXNUM];
    int nfds = 0;
    int bits = channel != nullptr ? ares_getsock(channel, socks, ARES_GETSOCK_MAXNUM) : 0;
    for (int i = 0; i < ARES_GETSOCK_MAXNUM; ++i) {
      short ev = 0;
      if (ARES_GETSOCK_READABLE(bits, i)) {
        ev |= POLLIN;
      }
      if (ARES_GETSOCK_WRITABLE(bits, i)) {
        ev |= POLLOUT;
      }
      if (ev != 0) {
        fds[nfds++] = pollfd{socks[i], ev, 0};
      }
    }
    const int n_ares = nfds;
    fds[nfds++] = pollfd{wake_fd_, POLLIN, 0};
    uint64_t wait_ms = next_due > now ? next_due - now : 0;
    if (channel != nullptr && n_ares > 0) {
      timeval max_tv{static_cast<time_t>(wait_ms / 1000),
                     static_cast<suseconds_t>((wait_ms % 1000) * 1000)};
      timeval tv{};
      timeval* t = ares_timeout(channel, &max_tv, &tv);
      wait_ms = static_cast<uint64_t>(t->tv_sec) * 1000 + static_cast<uint64_t>(t->tv_usec) / 1000;
    }
    if (!due.empty()) {
      wait_ms = 0;  // the queries just started may already have sockets to watch
    }
    int ready = ::poll(fds, static_cast<nfds_t>(nfds), static_cast<int>(wait_ms));
    if (ready > 0 && (fds[n_ares].revents & POLLIN) != 0) {
      uint64_t v;
      ssize_t r = ::read(wake_fd_, &v, sizeof(v));
      (void)r;
    }
    if (channel != nullptr) {
      bool any = false;
      for (int i = 0; i < n_ares; ++i) {
        if (fds[i].revents == 0) {
          continue;
        }
        any = true;
        const bool rd = (fds[i].revents & (POLLIN | POLLERR | POLLHUP)) != 0;
        const bool wr = (fds[i].revents & POLLOUT) != 0;
        ares_process_fd(channel, rd ? fds[i].fd : ARES_SOCKET_BAD, wr ? fds[i].fd : ARES_SOCKET_BAD);
      }
      if (!any) {
        ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // timeouts
      }
    }
  }
  if (channel != nullptr) {
    ares_destroy(channel);  // pending queries complete with ARES_EDESTRUCTION
  }
}

}  // namespace portico::dp::dns
