#include "data_plane/plugins/prometheus/series.h"

#include <algorithm>

#include "absl/container/flat_hash_map.h"

namespace portico::dp::plugins::prometheus {
namespace {

// A node's life: the worker creates it live; the scraper retires it (no longer exported);
// the worker drops it from its lookup map and marks it unlinked; the scraper frees it.
enum : uint8_t { kLive = 0, kRetired = 1, kUnlinked = 2 };
enum class Kind : uint8_t { kRequests, kBandwidth, kLatency };

// Single-writer increment: the shard's thread is the only one that writes the value, so a
// relaxed load and store suffice (the scraper reads it with a relaxed load).
inline void bump(std::atomic<uint64_t>& c, uint64_t by) {
  c.store(c.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
}
inline uint64_t get(const std::atomic<uint64_t>& c) { return c.load(std::memory_order_relaxed); }

// Debian's Abseil has its own string_view (not std's): hashing and heterogeneous lookups take it.
inline absl::string_view av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

template <size_t N>
struct AtomicHistogram {
  std::array<std::atomic<uint64_t>, N + 1> buckets{};
  std::atomic<uint64_t> sum{0};
  void observe(int64_t v, const std::array<uint32_t, N>& bounds) {
    const uint64_t u = static_cast<uint64_t>(v);
    size_t i = 0;
    while (i < N && u > bounds[i]) {
      ++i;
    }
    bump(buckets[i], 1);
    bump(sum, u);
  }
  void addTo(HistogramValues<N>* out) const {
    for (size_t i = 0; i <= N; ++i) {
      out->buckets[i] += get(buckets[i]);
    }
    out->sum += get(sum);
  }
};

template <size_t N>
void addHistogram(const HistogramValues<N>& from, HistogramValues<N>* to) {
  for (size_t i = 0; i <= N; ++i) {
    to->buckets[i] += from.buckets[i];
  }
  to->sum += from.sum;
}

void addLatency(const LatencyValues& from, LatencyValues* to) {
  addHistogram(from.kong, &to->kong);
  addHistogram(from.upstream, &to->upstream);
  addHistogram(from.request, &to->request);
}

std::string label(std::string_view s) { return std::string(validUtf8Prefix(s)); }

// Tracks how long a series has been dead; true once it has been for `after_ms`.
bool expired(bool alive, int64_t* dead_since_ms, int64_t now_ms, int64_t after_ms) {
  if (alive) {
    *dead_since_ms = -1;
    return false;
  }
  if (*dead_since_ms < 0) {
    *dead_since_ms = now_ms;
  }
  return now_ms - *dead_since_ms >= after_ms;
}

}  // namespace

// ---- Live -------------------------------------------------------------------------------------

void Live::addRoute(std::string_view service, std::string_view route) {
  std::string key(service);
  key.push_back('\0');
  key.append(route);
  routes_.insert(std::move(key));
}

void Live::addConsumer(std::string_view username) { consumers_.emplace(std::string(username)); }

bool Live::has(std::string_view service, std::string_view route,
               std::string_view consumer) const {
  std::string key(service);
  key.push_back('\0');
  key.append(route);
  return routes_.contains(key) && (consumer.empty() || consumers_.contains(av(consumer)));
}

std::string_view validUtf8Prefix(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // the second byte's range (Unicode table 3-7)
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      break;
    }
    if (i + len > n) {
      break;
    }
    bool ok = true;
    for (size_t k = 1; k < len; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      const unsigned char l = k == 1 ? lo : 0x80;
      const unsigned char h = k == 1 ? hi : 0xBF;
      if (b < l || b > h) {
        ok = false;
        break;
      }
    }
    if (!ok) {
      break;
    }
    i += len;
  }
  return s.substr(0, i);
}

// ---- Nodes and shards ---------------------------------------------------------------------

struct SeriesStore::Node {
  Node(Kind k, std::string_view s, std::string_view r, std::string_view c, uint16_t code_in,
       bool from_service_in)
      : kind(k), service(s), route(r), consumer(c), code(code_in), from_service(from_service_in) {}
  virtual ~Node() = default;

  // The next older node of the shard's list: set by the worker before the node is published,
  // then changed only by the scraper (which unlinks freed nodes).
  Node* next = nullptr;
  std::atomic<uint8_t> state{kLive};
  int64_t dead_since_ms = -1;  // scraper only
  const Kind kind;
  const std::string service;
  const std::string route;
  const std::string consumer;
  const uint16_t code;
  const bool from_service;
};

// kRequests: v[0] counts requests; kBandwidth: v[0] ingress bytes, v[1] egress bytes.
// Cache-line aligned so no two workers' values share a line.
struct alignas(64) SeriesStore::CounterNode final : Node {
  using Node::Node;
  std::array<std::atomic<uint64_t>, 2> v{};
};

struct alignas(64) SeriesStore::LatencyNode final : Node {
  using Node::Node;
  AtomicHistogram<kKongLatencyBuckets.size()> kong;
  AtomicHistogram<kUpstreamLatencyBuckets.size()> upstream;
  AtomicHistogram<kUpstreamLatencyBuckets.size()> request;
};

// What the worker and the scraper share. The worker pushes nodes at `head` (release); the
// scraper reads from the head it loaded (acquire) and never frees that head node, so a push
// racing with a scrape only ever points at nodes still allocated.
struct alignas(64) SeriesStore::Shard {
  std::atomic<Node*> head{nullptr};
  std::atomic<bool> sweep{false};     // the scraper retired nodes: the worker should let go
  std::atomic<bool> orphaned{false};  // the thread exited: the scraper owns everything now
  std::atomic<uint32_t> count{0};     // nodes allocated (worker adds, scraper subtracts)
  std::atomic<uint64_t> dropped{0};   // worker only
};

// The worker thread's private side: lookup maps keyed by views into each node's own labels.
struct SeriesStore::Local {
  struct CounterKey {
    std::string_view service, route, consumer;
    uint16_t code;
    uint8_t kind_source;  // kind * 2 + from_service
    bool operator==(const CounterKey&) const = default;
    template <typename H>
    friend H AbslHashValue(H h, const CounterKey& k) {
      return H::combine(std::move(h), av(k.service), av(k.route), av(k.consumer), k.code,
                        k.kind_source);
    }
  };
  struct RouteKey {
    std::string_view service, route;
    bool operator==(const RouteKey&) const = default;
    template <typename H>
    friend H AbslHashValue(H h, const RouteKey& k) {
      return H::combine(std::move(h), av(k.service), av(k.route));
    }
  };

  Local(SeriesStore* s, Shard* sh) : store(s), shard(sh) {}
  ~Local() {
    counters.clear();
    latencies.clear();
    shard->orphaned.store(true, std::memory_order_release);
  }

  // Lets go of the nodes the scraper retired (they are freed on a later scrape).
  void sweep() {
    shard->sweep.store(false, std::memory_order_relaxed);
    for (auto it = counters.begin(); it != counters.end();) {
      Node* n = it->second;
      if (n->state.load(std::memory_order_acquire) == kRetired) {
        counters.erase(it++);
        n->state.store(kUnlinked, std::memory_order_release);
      } else {
        ++it;
      }
    }
    for (auto it = latencies.begin(); it != latencies.end();) {
      Node* n = it->second;
      if (n->state.load(std::memory_order_acquire) == kRetired) {
        latencies.erase(it++);
        n->state.store(kUnlinked, std::memory_order_release);
      } else {
        ++it;
      }
    }
  }

  bool reserve() {
    if (shard->count.load(std::memory_order_relaxed) >= kMaxSeriesPerShard) {
      bump(shard->dropped, 1);
      return false;
    }
    shard->count.fetch_add(1, std::memory_order_relaxed);  // only when a series is created
    return true;
  }
  void publish(Node* n) {
    n->next = shard->head.load(std::memory_order_relaxed);
    shard->head.store(n, std::memory_order_release);
  }

  CounterNode* counter(Kind kind, const Sample& s, uint16_t code, bool from_service) {
    const CounterKey key{s.service, s.route, s.consumer, code,
                         static_cast<uint8_t>(static_cast<uint8_t>(kind) * 2 + from_service)};
    auto it = counters.find(key);
    if (it != counters.end()) {
      CounterNode* n = it->second;
      if (n->state.load(std::memory_order_relaxed) == kLive) {
        return n;
      }
      counters.erase(it);  // retired meanwhile (its route came back): start a new series
      n->state.store(kUnlinked, std::memory_order_release);
    }
    if (!reserve()) {
      return nullptr;
    }
    auto* n = new CounterNode(kind, s.service, s.route, s.consumer, code, from_service);
    counters.emplace(CounterKey{n->service, n->route, n->consumer, code, key.kind_source}, n);
    publish(n);
    return n;
  }

  LatencyNode* latency(const Sample& s) {
    auto it = latencies.find(RouteKey{s.service, s.route});
    if (it != latencies.end()) {
      LatencyNode* n = it->second;
      if (n->state.load(std::memory_order_relaxed) == kLive) {
        return n;
      }
      latencies.erase(it);
      n->state.store(kUnlinked, std::memory_order_release);
    }
    if (!reserve()) {
      return nullptr;
    }
    auto* n = new LatencyNode(Kind::kLatency, s.service, s.route, "", 0, false);
    latencies.emplace(RouteKey{n->service, n->route}, n);
    publish(n);
    return n;
  }

  SeriesStore* const store;
  Shard* const shard;
  absl::flat_hash_map<CounterKey, CounterNode*> counters;
  absl::flat_hash_map<RouteKey, LatencyNode*> latencies;
};

// What exited threads recorded, summed by label; each entry tracks its own liveness.
struct SeriesStore::Retained {
  template <typename V>
  struct Entry {
    V value{};
    int64_t dead_since_ms = -1;
  };
  std::map<std::tuple<std::string, std::string, uint16_t, bool, std::string>,
           Entry<uint64_t>> requests;
  std::map<std::tuple<std::string, std::string, std::string>, Entry<std::array<uint64_t, 2>>>
      bandwidth;
  std::map<std::pair<std::string, std::string>, Entry<LatencyValues>> latency;
  uint64_t dropped = 0;
};

// ---- SeriesStore ----------------------------------------------------------------------------

SeriesStore& SeriesStore::process() {
  static SeriesStore* const kStore = new SeriesStore();
  return *kStore;
}

SeriesStore::SeriesStore() = default;

SeriesStore::~SeriesStore() {
  absl::MutexLock lock(&mu_);
  for (Shard* shard : shards_) {
    for (Node* n = shard->head.load(std::memory_order_acquire); n != nullptr;) {
      Node* next = n->next;
      delete n;
      n = next;
    }
    delete shard;
  }
}

SeriesStore::Local& SeriesStore::local() {
  // Usually one store per process, so the first entry is the one.
  thread_local std::vector<std::unique_ptr<Local>> locals;
  for (const std::unique_ptr<Local>& l : locals) {
    if (l->store == this) {
      return *l;
    }
  }
  auto* shard = new Shard();
  {
    absl::MutexLock lock(&mu_);
    shards_.push_back(shard);
  }
  locals.push_back(std::make_unique<Local>(this, shard));
  return *locals.back();
}

void SeriesStore::record(const Sample& s) {
  Local& l = local();
  if (l.shard->sweep.load(std::memory_order_relaxed)) {
    l.sweep();
  }
  if (s.code != 0) {
    if (CounterNode* n = l.counter(Kind::kRequests, s, s.code, s.from_service)) {
      bump(n->v[0], 1);
    }
  }
  if (s.bandwidth && (s.ingress > 0 || s.egress > 0)) {
    if (CounterNode* n = l.counter(Kind::kBandwidth, s, 0, false)) {
      bump(n->v[0], s.ingress);
      bump(n->v[1], s.egress);
    }
  }
  if (s.latency && (s.kong_ms >= 0 || s.upstream_ms >= 0 || s.request_ms >= 0)) {
    if (LatencyNode* n = l.latency(s)) {
      if (s.kong_ms >= 0) n->kong.observe(s.kong_ms, kKongLatencyBuckets);
      if (s.upstream_ms >= 0) n->upstream.observe(s.upstream_ms, kUpstreamLatencyBuckets);
      if (s.request_ms >= 0) n->request.observe(s.request_ms, kUpstreamLatencyBuckets);
    }
  }
}

void SeriesStore::foldOrphan(Shard* shard) {
  if (!retained_) {
    retained_ = std::make_unique<Retained>();
  }
  Retained& r = *retained_;
  for (Node* n = shard->head.load(std::memory_order_acquire); n != nullptr;) {
    if (n->state.load(std::memory_order_acquire) == kLive) {
      switch (n->kind) {
        case Kind::kRequests: {
          auto* c = static_cast<CounterNode*>(n);
          r.requests[{n->service, n->route, n->code, n->from_service, n->consumer}].value +=
              get(c->v[0]);
          break;
        }
        case Kind::kBandwidth: {
          auto* c = static_cast<CounterNode*>(n);
          auto& e = r.bandwidth[{n->service, n->route, n->consumer}];
          e.value[0] += get(c->v[0]);
          e.value[1] += get(c->v[1]);
          break;
        }
        case Kind::kLatency: {
          auto* h = static_cast<LatencyNode*>(n);
          LatencyValues& v = r.latency[{n->service, n->route}].value;
          h->kong.addTo(&v.kong);
          h->upstream.addTo(&v.upstream);
          h->request.addTo(&v.request);
          break;
        }
      }
    }
    Node* next = n->next;
    delete n;
    n = next;
  }
  r.dropped += get(shard->dropped);
  delete shard;
}

Merged SeriesStore::collect(const Live* live, int64_t now_ms, int64_t retire_after_ms) {
  absl::MutexLock lock(&mu_);
  // Threads that exited: their series move into retained_ and their shards go.
  for (auto it = shards_.begin(); it != shards_.end();) {
    if ((*it)->orphaned.load(std::memory_order_acquire)) {
      foldOrphan(*it);
      it = shards_.erase(it);
    } else {
      ++it;
    }
  }
  auto alive = [live](std::string_view service, std::string_view route,
                      std::string_view consumer) {
    return live == nullptr || live->has(service, route, consumer);
  };

  Merged m;
  if (retained_) {
    Retained& r = *retained_;
    for (auto it = r.requests.begin(); it != r.requests.end();) {
      const auto& [service, route, code, from_service, consumer] = it->first;
      if (expired(alive(service, route, consumer), &it->second.dead_since_ms, now_ms,
                  retire_after_ms)) {
        it = r.requests.erase(it);
        continue;
      }
      m.requests[{label(service), label(route), code, from_service, label(consumer)}] +=
          it->second.value;
      ++it;
    }
    for (auto it = r.bandwidth.begin(); it != r.bandwidth.end();) {
      const auto& [service, route, consumer] = it->first;
      if (expired(alive(service, route, consumer), &it->second.dead_since_ms, now_ms,
                  retire_after_ms)) {
        it = r.bandwidth.erase(it);
        continue;
      }
      auto& v = m.bandwidth[{label(service), label(route), label(consumer)}];
      v[0] += it->second.value[0];
      v[1] += it->second.value[1];
      ++it;
    }
    for (auto it = r.latency.begin(); it != r.latency.end();) {
      const auto& [service, route] = it->first;
      if (expired(alive(service, route, ""), &it->second.dead_since_ms, now_ms,
                  retire_after_ms)) {
        it = r.latency.erase(it);
        continue;
      }
      addLatency(it->second.value, &m.latency[{label(service), label(route)}]);
      ++it;
    }
    m.dropped += r.dropped;
  }

  for (Shard* shard : shards_) {
    Node* const head = shard->head.load(std::memory_order_acquire);
    bool retired_any = false;
    Node* prev = nullptr;
    for (Node* n = head; n != nullptr;) {
      const uint8_t state = n->state.load(std::memory_order_acquire);
      if (state == kUnlinked && n != head) {
        // The worker let go of it and newer nodes exist above it: free it. prev is set,
        // since only the head has no predecessor.
        Node* next = n->next;
        prev->next = next;
        delete n;
        shard->count.fetch_sub(1, std::memory_order_relaxed);
        n = next;
        continue;
      }
      if (state == kLive) {
        if (expired(alive(n->service, n->route, n->consumer), &n->dead_since_ms, now_ms,
                    retire_after_ms)) {
          n->state.store(kRetired, std::memory_order_release);
          retired_any = true;
        } else {
          switch (n->kind) {
            case Kind::kRequests:
              m.requests[{label(n->service), label(n->route), n->code, n->from_service,
                          label(n->consumer)}] += get(static_cast<CounterNode*>(n)->v[0]);
              break;
            case Kind::kBandwidth: {
              auto* c = static_cast<CounterNode*>(n);
              auto& v = m.bandwidth[{label(n->service), label(n->route), label(n->consumer)}];
              v[0] += get(c->v[0]);
              v[1] += get(c->v[1]);
              break;
            }
            case Kind::kLatency: {
              auto* h = static_cast<LatencyNode*>(n);
              LatencyValues& v = m.latency[{label(n->service), label(n->route)}];
              h->kong.addTo(&v.kong);
              h->upstream.addTo(&v.upstream);
              h->request.addTo(&v.request);
              break;
            }
          }
        }
      }
      prev = n;
      n = n->next;
    }
    if (retired_any) {
      shard->sweep.store(true, std::memory_order_release);
    }
    m.dropped += get(shard->dropped);
  }
  return m;
}

size_t SeriesStore::seriesHeld() {
  absl::MutexLock lock(&mu_);
  size_t n = 0;
  for (Shard* shard : shards_) {
    n += shard->count.load(std::memory_order_relaxed);
  }
  return n;
}

}  // namespace portico::dp::plugins::prometheus
