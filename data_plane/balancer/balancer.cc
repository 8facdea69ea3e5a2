#include "data_plane/balancer/balancer.h"

#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "data_plane/balancer/runtime.h"
#include "common/clock.h"

namespace portico::dp::balancer {

// ---- Per-table data ----------------------------------------------------------------------

struct Address {
  std::string ip;
  uint16_t port = 0;
  uint32_t weight = 0;
  uint32_t target = 0;  // index in config().targets
  std::string pool_key;
  std::string host_header;
  AddressHealthSharedPtr health;
};

// The addresses a balancer picks from: immutable once published. Rebuilt (and swapped) when a
// target's DNS answer changes.
struct Table {
  uint64_t version = 0;
  std::vector<Address> addresses;
  std::vector<uint32_t> wheel;  // smooth weighted round-robin order
  std::vector<uint32_t> ring;   // consistent hashing: slot -> address
  uint64_t total_weight = 0;
};

// One worker's view of one table: in-flight attempts and latency averages.
struct Held {
  std::shared_ptr<const Table> table;
  uint32_t inflight = 0;  // leases still open on this table
  std::vector<uint32_t> active;
  std::vector<double> ewma_ms;
  std::vector<uint64_t> ewma_at_ms;
};

// One worker's state for one balancer. Touched only by the thread owning the worker slot.
struct Shard {
  uint64_t version = ~uint64_t{0};
  std::vector<std::unique_ptr<Held>> held;  // back() is current; others wait for their leases
  uint64_t cursor = 0;
  uint64_t rng = 0;
};

namespace {

uint64_t mix64(uint64_t x) {  // splitmix64 finalizer
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t fnv1a(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (char c : s) {
    h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
  }
  return h;
}

// ---- Worker slots --------------------------------------------------------------------------

ABSL_CONST_INIT absl::Mutex g_slot_mu(absl::kConstInit);

std::vector<int32_t>& freeSlots() {
  static auto* const kFree = new std::vector<int32_t>();
  return *kFree;
}
int32_t g_next_slot = 0;  // guarded by g_slot_mu

struct SlotHolder {
  int32_t slot = -2;  // -2: not assigned yet
  ~SlotHolder() {
    if (slot >= 0) {
      absl::MutexLock lock(&g_slot_mu);
      freeSlots().push_back(slot);
    }
  }
};
thread_local SlotHolder t_slot;
thread_local uint64_t t_overflow_cursor = 0;

constexpr int32_t kMaxSlotsInt = 256;

std::string hostForHeader(const std::string& host) {
  return host.find(':') != std::string::npos ? absl::StrCat("[", host, "]") : host;
}

bool splitTarget(const std::string& target, std::string* host, uint16_t* port) {
  size_t colon = target.rfind(':');
  size_t bracket = target.rfind(']');
  std::string h = target;
  uint32_t p = 8000;
  if (colon != std::string::npos && (bracket == std::string::npos || colon > bracket)) {
    h = target.substr(0, colon);
    if (!absl::SimpleAtoi(target.substr(colon + 1), &p) || p == 0 || p > 65535) {
      return false;
    }
  }
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') {
    h = h.substr(1, h.size() - 2);
  }
  if (h.empty()) {
    return false;
  }
  *host = h;
  *port = static_cast<uint16_t>(p);
  return true;
}

bool parseHashOn(const std::string& s, HashOn* out) {
  static const std::pair<const char*, HashOn> kNames[] = {
      {"", HashOn::kNone},          {"none", HashOn::kNone},      {"consumer", HashOn::kConsumer},
      {"ip", HashOn::kIp},          {"header", HashOn::kHeader},  {"cookie", HashOn::kCookie},
      {"path", HashOn::kPath},      {"query_arg", HashOn::kQueryArg},
      {"uri_capture", HashOn::kUriCapture}};
  for (const auto& [name, v] : kNames) {
    if (s == name) {
      *out = v;
      return true;
    }
  }
  return false;
}

std::string_view cookieValue(std::string_view cookies, std::string_view name) {
  while (!cookies.empty()) {
    size_t semi = cookies.find(';');
    std::string_view pair = cookies.substr(0, semi);
    while (!pair.empty() && pair.front() == ' ') {
      pair.remove_prefix(1);
    }
    size_t eq = pair.find('=');
    if (eq != std::string_view::npos && pair.substr(0, eq) == name) {
      return pair.substr(eq + 1);
    }
    if (semi == std::string_view::npos) {
      break;
    }
    cookies.remove_prefix(semi + 1);
  }
  return {};
}

std::string_view queryValue(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name) {
      return eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    }
    if (amp == std::string_view::npos) {
      break;
    }
    query.remove_prefix(amp + 1);
  }
  return {};
}

std::string_view hashInput(const RequestInputs& in, HashOn on, const std::string& header,
                           const std::string& cookie, const std::string& query_arg,
                           const std::string& capture) {
  switch (on) {
    case HashOn::kNone:
      return {};
    case HashOn::kConsumer:
      return in.consumerId();
    case HashOn::kIp:
      return in.clientIp();
    case HashOn::kHeader:
      return in.header(header);
    case HashOn::kCookie:
      return cookieValue(in.header("cookie"), cookie);
    case HashOn::kPath:
      return in.path();
    case HashOn::kQueryArg:
      return queryValue(in.query(), query_arg);
    case HashOn::kUriCapture:
      return in.uriCapture(capture);
  }
  return {};
}

// Smooth weighted round-robin (nginx's): interleaves heavy targets instead of bunching them.
std::vector<uint32_t> buildWheel(const std::vector<Address>& addrs) {
  std::vector<uint64_t> w(addrs.size());
  uint64_t total = 0;
  uint64_t g = 0;
  for (size_t i = 0; i < addrs.size(); ++i) {
    w[i] = addrs[i].weight;
    total += w[i];
    g = std::gcd(g, w[i]);
  }
  if (total == 0) {
    return {};
  }
  constexpr uint64_t kMaxWheel = 10000;
  for (uint64_t& x : w) {
    x /= g;
  }
  total /= g;
  if (total > kMaxWheel) {  // keep the wheel small: proportions within 1/kMaxWheel
    uint64_t t = 0;
    for (uint64_t& x : w) {
      x = std::max<uint64_t>(1, x * kMaxWheel / total);
      t += x;
    }
    total = t;
  }
  std::vector<int64_t> cur(addrs.size(), 0);
  std::vector<uint32_t> wheel;
  wheel.reserve(total);
  for (uint64_t k = 0; k < total; ++k) {
    size_t best = 0;
    for (size_t i = 0; i < w.size(); ++i) {
      cur[i] += static_cast<int64_t>(w[i]);
      if (cur[i] > cur[best]) {
        best = i;
      }
    }
    cur[best] -= static_cast<int64_t>(total);
    wheel.push_back(static_cast<uint32_t>(best));
  }
  return wheel;
}

// Consistent-hashing ring of `slots` entries. Each slot goes to the address with the highest
// weighted rendezvous score for it, so a slot's owner depends only on the address set: adding
// an address moves only the slots it wins (~its share of the weight), whatever the history.
std::vector<uint32_t> buildRing(const std::vector<Address>& addrs, uint32_t slots) {
  std::vector<uint32_t> ring(slots, 0);
  if (addrs.empty()) {
    return ring;
  }
  std::vector<uint64_t> seeds(addrs.size());
  for (size_t i = 0; i < addrs.size(); ++i) {
    seeds[i] = fnv1a(absl::StrCat(addrs[i].ip, ":", addrs[i].port));
  }
  for (uint32_t s = 0; s < slots; ++s) {
    double best_score = -1;
    for (size_t i = 0; i < addrs.size(); ++i) {
      if (addrs[i].weight == 0) {
        continue;
      }
      const uint64_t h = mix64(seeds[i] ^ mix64(s));
      const double u = (static_cast<double>(h >> 11) + 0.5) * (1.0 / 9007199254740992.0);
      const double score = static_cast<double>(addrs[i].weight) / -std::log(u);
      if (score > best_score) {
        best_score = score;
        ring[s] = static_cast<uint32_t>(i);
      }
    }
  }
  return ring;
}

}  // namespace

int32_t workerSlot() {
  if (t_slot.slot != -2) {
    return t_slot.slot;
  }
  absl::MutexLock lock(&g_slot_mu);
  std::vector<int32_t>& free = freeSlots();
  if (!free.empty()) {
    t_slot.slot = free.back();
    free.pop_back();
  } else if (g_next_slot < kMaxSlotsInt) {
    t_slot.slot = g_next_slot++;
  } else {
    t_slot.slot = -1;
    LOG_WARN("balancer", "more than %d threads pick upstreams: this one balances statelessly",
             kMaxSlotsInt);
  }
  return t_slot.slot;
}

uint32_t hashKey(std::string_view key) {
  return static_cast<uint32_t>(
      crc32(0L, reinterpret_cast<const Bytef*>(key.data()), static_cast<uInt>(key.size())));
}

// ---- BalancerConfig ------------------------------------------------------------------------

absl::StatusOr<BalancerConfig> BalancerConfig::fromUpstream(
    const config::v1::Upstream& u, const std::vector<const config::v1::Target*>& targets) {
  BalancerConfig c;
  c.name = u.name();
  c.upstream_id = u.id();
  if (u.algorithm() == "consistent-hashing") {
    c.algorithm = Algorithm::kConsistentHashing;
  } else if (u.algorithm() == "least-connections") {
    c.algorithm = Algorithm::kLeastConnections;
  } else if (u.algorithm() == "latency") {
    c.algorithm = Algorithm::kLatency;
  } else if (u.algorithm().empty() || u.algorithm() == "round-robin") {
    c.algorithm = Algorithm::kRoundRobin;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("upstream ", u.name(), ": unknown algorithm '", u.algorithm(), "'"));
  }
  if (!parseHashOn(u.hash_on(), &c.hash_on) || !parseHashOn(u.hash_fallback(), &c.hash_fallback)) {
    return absl::InvalidArgumentError(absl::StrCat("upstream ", u.name(), ": unknown hash_on"));
  }
  c.hash_on_header = absl::AsciiStrToLower(u.hash_on_header());
  c.hash_fallback_header = absl::AsciiStrToLower(u.hash_fallback_header());
  c.hash_on_cookie = u.hash_on_cookie();
  if (!u.hash_on_cookie_path().empty()) {
    c.hash_on_cookie_path = u.hash_on_cookie_path();
  }
  c.hash_on_query_arg = u.hash_on_query_arg();
  c.hash_fallback_query_arg = u.hash_fallback_query_arg();
  c.hash_on_uri_capture = u.hash_on_uri_capture();
  c.hash_fallback_uri_capture = u.hash_fallback_uri_capture();
  c.slots = u.slots() >= 10 && u.slots() <= 65536 ? static_cast<uint32_t>(u.slots()) : 10000;
  if (u.has_host_header() && !u.host_header().empty()) {
    c.host_header = u.host_header();
  }
  for (const config::v1::Target* t : targets) {
    TargetSpec spec;
    if (!splitTarget(t->target(), &spec.host, &spec.port)) {
      return absl::InvalidArgumentError(
          absl::StrCat("upstream ", u.name(), ": invalid target '", t->target(), "'"));
    }
    spec.weight = t->weight() > 0 ? static_cast<uint32_t>(t->weight()) : 0;
    c.targets.push_back(std::move(spec));
  }
  absl::StatusOr<HealthConfig> health = HealthConfig::parse(u.healthchecks());
  if (!health.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("upstream ", u.name(), ": ", health.status().message()));
  }
  c.health = *std::move(health);
  c.healthchecks_text = u.healthchecks();
  return c;
}

BalancerConfig BalancerConfig::forHost(const std::string& host, uint16_t port, bool https) {
  BalancerConfig c;
  c.name = host;
  std::string bare = host;
  if (bare.size() > 2 && bare.front() == '[' && bare.back() == ']') {
    bare = bare.substr(1, bare.size() - 2);
  }
  c.https = https;
  c.targets.push_back(TargetSpec{bare, port, 100});
  c.health = *HealthConfig::parse("");
  return c;
}

// ---- Cell: the published table -------------------------------------------------------------

struct Balancer::Cell : public dns::Listener {
  std::shared_ptr<const BalancerConfig> config;
  std::vector<dns::RecordSharedPtr> records;  // one per target
  UpstreamHealthSharedPtr health;             // nullptr: health checks off

  absl::Mutex build_mu;  // serializes rebuilds (config thread vs resolver thread)
  absl::Mutex mu;
  std::shared_ptr<const Table> table ABSL_GUARDED_BY(mu);
  std::atomic<uint64_t> version{0};

  std::shared_ptr<const Table> current() {
    absl::MutexLock lock(&mu);
    return table;
  }

  void rebuild() {
    absl::MutexLock build_lock(&build_mu);
    auto t = std::make_shared<Table>();
    const BalancerConfig& c = *config;
    for (size_t ti = 0; ti < c.targets.size(); ++ti) {
      const TargetSpec& spec = c.targets[ti];
      if (spec.weight == 0) {
        continue;  // Kong: weight 0 disables a target
      }
      const uint16_t default_port = c.https ? 443 : 80;
      std::string host_header = hostForHeader(c.host_header.value_or(spec.host));
      if (spec.port != default_port) {
        absl::StrAppend(&host_header, ":", spec.port);
      }
      std::shared_ptr<const dns::Record::Addresses> ips = records[ti]->addresses();
      for (const std::string& ip : *ips) {
        Address a;
        a.ip = ip;
        a.port = spec.port;
        a.weight = spec.weight;
        a.target = static_cast<uint32_t>(ti);
        a.pool_key = absl::StrCat(ip, "|", spec.port);
        a.host_header = host_header;
        if (health) {
          a.health = health->address(spec.host, ip, spec.port);
        }
        t->total_weight += a.weight;
        t->addresses.push_back(std::move(a));
      }
    }
    if (c.algorithm == Algorithm::kRoundRobin) {
      t->wheel = buildWheel(t->addresses);
    } else if (c.algorithm == Algorithm::kConsistentHashing) {
      t->ring = buildRing(t->addresses, c.slots);
    }
    std::shared_ptr<const Table> old;
    {
      absl::MutexLock lock(&mu);
      t->version = version.load(std::memory_order_relaxed) + 1;
      old = std::move(table);
      table = std::move(t);
      version.store(table->version, std::memory_order_release);
    }
  }

  void onAddressesChanged() override { rebuild(); }
};

// ---- Balancer ------------------------------------------------------------------------------

std::shared_ptr<const Balancer> Balancer::create(BalancerConfig config, Runtime& runtime,
                                                 std::chrono::milliseconds dns_wait) {
  std::shared_ptr<Balancer> b(new Balancer());
  b->config_ = std::make_shared<const BalancerConfig>(std::move(config));
  b->cell_ = std::make_shared<Cell>();
  Cell& cell = *b->cell_;
  cell.config = b->config_;
  for (const TargetSpec& t : b->config_->targets) {
    cell.records.push_back(runtime.resolver().watch(t.host));
  }
  if (b->config_->health.enabled()) {
    cell.health = runtime.health().acquire(b->config_->upstream_id, b->config_->name,
                                           b->config_->healthchecks_text, b->config_->health);
  }
  if (!dns::Resolver::waitSettled(cell.records, dns_wait) && dns_wait.count() > 0) {
    LOG_WARN("balancer", "%s: some target names are still resolving", b->config_->name);
  }
  for (const dns::RecordSharedPtr& r : cell.records) {
    r->subscribe(b->cell_);
  }
  cell.rebuild();
  return b;
}

struct Balancer::Fixed {
  std::string host;  // as configured (for reports)
  std::string ip;    // no brackets
  uint16_t port = 0;
  std::string pool_key;
  std::string host_header;
};

namespace {

// Shared by every fixed endpoint (config() must return something; nothing reads it on pick).
const std::shared_ptr<const BalancerConfig>& fixedConfig() {
  static const auto* const kConfig = new std::shared_ptr<const BalancerConfig>([] {
    auto c = std::make_shared<BalancerConfig>();
    c->health = *HealthConfig::parse("");
    return c;
  }());
  return *kConfig;
}

}  // namespace

std::shared_ptr<const Balancer> Balancer::forService(const std::string& host, uint16_t port,
                                                     bool https, Runtime& runtime) {
  std::string ip;
  if (!dns::ipLiteral(host, &ip)) {
    return create(BalancerConfig::forHost(host, port, https), runtime,
                  std::chrono::milliseconds(0));
  }
  std::shared_ptr<Balancer> b(new Balancer());
  b->config_ = fixedConfig();
  auto f = std::make_unique<Fixed>();
  f->host = host;
  f->port = port;
  f->pool_key = absl::StrCat(ip, "|", port);
  f->host_header = hostForHeader(ip);
  if (port != (https ? 443 : 80)) {
    absl::StrAppend(&f->host_header, ":", port);
  }
  f->ip = std::move(ip);
  b->fixed_ = std::move(f);
  return b;
}

Balancer::~Balancer() {
  std::atomic<Shard*>* shards = shards_.load(std::memory_order_acquire);
  if (shards != nullptr) {
    for (size_t i = 0; i < kMaxSlots; ++i) {
      delete shards[i].load(std::memory_order_acquire);
    }
    delete[] shards;
  }
}

uint64_t Balancer::tableVersion() const {
  return fixed_ ? 1 : cell_->version.load(std::memory_order_acquire);
}

bool Balancer::available() const {
  if (fixed_) {
    return true;
  }
  std::shared_ptr<const Table> t = cell_->current();
  const bool checks = config_->health.enabled();
  uint64_t healthy_weight = 0;
  for (const Address& a : t->addresses) {
    if (!checks || a.health == nullptr || a.health->healthy()) {
      healthy_weight += a.weight;
    }
  }
  if (healthy_weight == 0) {
    return false;
  }
  return !checks || config_->health.threshold <= 0 ||
         static_cast<double>(healthy_weight) * 100.0 >=
             config_->health.threshold * static_cast<double>(t->total_weight);
}

size_t Balancer::addressCount() const { return fixed_ ? 1 : cell_->current()->addresses.size(); }

Shard* Balancer::shard(int32_t slot) const {
  if (slot < 0) {
    return nullptr;
  }
  std::atomic<Shard*>* shards = shards_.load(std::memory_order_acquire);
  if (shards == nullptr) {
    // Once per balancer, by whichever worker picks first; a loser of the race frees its copy.
    auto* fresh = new std::atomic<Shard*>[kMaxSlots]();
    if (shards_.compare_exchange_strong(shards, fresh, std::memory_order_acq_rel)) {
      shards = fresh;
    } else {
      delete[] fresh;
    }
  }
  std::atomic<Shard*>& cell = shards[static_cast<size_t>(slot)];
  Shard* s = cell.load(std::memory_order_acquire);
  if (s == nullptr) {
    s = new Shard();  // once per worker per balancer, never per request
    s->cursor = static_cast<uint64_t>(slot) * 7919;
    s->rng = mix64(reinterpret_cast<uintptr_t>(s) ^ static_cast<uint64_t>(slot));
    cell.store(s, std::memory_order_release);
  }
  const uint64_t v = cell_->version.load(std::memory_order_acquire);
  if (s->version != v) {
    // The table changed (DNS): take the new one; retire the old view once its leases end.
    auto held = std::make_unique<Held>();
    held->table = cell_->current();
    const size_t n = held->table->addresses.size();
    held->active.assign(n, 0);
    held->ewma_ms.assign(n, 0);
    held->ewma_at_ms.assign(n, 0);
    s->version = held->table->version;
    s->held.erase(std::remove_if(s->held.begin(), s->held.end(),
                                 [](const std::unique_ptr<Held>& h) { return h->inflight == 0; }),
                  s->held.end());
    s->held.push_back(std::move(held));
  }
  return s;
}

PickStatus Balancer::pick(const RequestInputs& in, uint32_t attempt, const Lease* previous,
                          Endpoint* out, Lease* lease) const {
  lease->reset();
  if (fixed_) {
    // One address, no health checks, nothing to count: no lease (report() ignores it).
    out->address.assign(fixed_->ip);
    out->port = fixed_->port;
    out->pool_key.assign(fixed_->pool_key);
    out->host_header.assign(fixed_->host_header);
    out->set_cookie.clear();
    return PickStatus::kOk;
  }
  const int32_t slot = workerSlot();
  Shard* sh = shard(slot);
  std::shared_ptr<const Table> overflow_table;
  Held* held = nullptr;
  const Table* table;
  if (sh != nullptr) {
    held = sh->held.back().get();
    table = held->table.get();
  } else {
    overflow_table = cell_->current();
    table = overflow_table.get();
  }
  const BalancerConfig& c = *config_;
  const uint32_t n = static_cast<uint32_t>(table->addresses.size());
  if (n == 0) {
    return PickStatus::kNoAddresses;
  }
  const bool checks = c.health.enabled();
  const Address* prev = nullptr;
  if (previous != nullptr && previous->held_ != nullptr) {
    prev = &previous->held_->table->addresses[previous->index_];
  }
  auto healthy = [&](uint32_t i) {
    return !checks || table->addresses[i].health == nullptr ||
           table->addresses[i].health->healthy();
  };
  auto excluded = [&](uint32_t i) {
    return prev != nullptr && table->addresses[i].port == prev->port &&
           table->addresses[i].ip == prev->ip;
  };
  auto usable = [&](uint32_t i) { return healthy(i) && !excluded(i); };
  if (checks && c.health.threshold > 0) {
    uint64_t healthy_weight = 0;
    for (uint32_t i = 0; i < n; ++i) {
      healthy_weight += healthy(i) ? table->addresses[i].weight : 0;
    }
    if (static_cast<double>(healthy_weight) * 100.0 <
        c.health.threshold * static_cast<double>(table->total_weight)) {
      return PickStatus::kNoHealthy;
    }
  }
  uint64_t& cursor = sh != nullptr ? sh->cursor : t_overflow_cursor;
  constexpr uint32_t kNone = ~uint32_t{0};
  uint32_t chosen = kNone;
  out->set_cookie.clear();
  Algorithm algo = c.algorithm;
  if (held == nullptr && (algo == Algorithm::kLeastConnections || algo == Algorithm::kLatency)) {
    algo = Algorithm::kRoundRobin;  // no per-worker counts on an overflow thread
  }
  switch (algo) {
    case Algorithm::kRoundRobin: {
      const uint64_t len = table->wheel.size();
      const uint64_t start = cursor++;
      for (uint64_t k = 0; k < len && chosen == kNone; ++k) {
        const uint32_t i = table->wheel[(start + k) % len];
        if (usable(i)) {
          chosen = i;
        }
      }
      break;
    }
    case Algorithm::kConsistentHashing: {
      std::string_view key = hashInput(in, c.hash_on, c.hash_on_header, c.hash_on_cookie,
                                       c.hash_on_query_arg, c.hash_on_uri_capture);
      char cookie_buf[32];
      if (key.empty() && c.hash_on == HashOn::kCookie) {
        // Kong: no cookie yet, so make one up, hash on it, and send it to the client.
        uint64_t& r = sh != nullptr ? sh->rng : t_overflow_cursor;
        static constexpr char kHex[] = "0123456789abcdef";
        for (int part = 0; part < 2; ++part) {
          r = mix64(r + static_cast<uint64_t>(steadyMs()));
          for (int j = 0; j < 16; ++j) {
            cookie_buf[part * 16 + j] = kHex[(r >> (j * 4)) & 0xf];
          }
        }
        key = std::string_view(cookie_buf, sizeof(cookie_buf));
        out->set_cookie.assign(c.hash_on_cookie);
        out->set_cookie.push_back('=');
        out->set_cookie.append(key);
        out->set_cookie.append("; Path=");
        out->set_cookie.append(c.hash_on_cookie_path);
      }
      if (key.empty() && c.hash_fallback != HashOn::kNone) {
        key = hashInput(in, c.hash_fallback, c.hash_fallback_header, c.hash_on_cookie,
                        c.hash_fallback_query_arg, c.hash_fallback_uri_capture);
      }
      const uint64_t slots = table->ring.size();
      // No key: walk the ring like a round-robin wheel (Kong does the same).
      const uint64_t start = key.empty() ? cursor++ : hashKey(key) % slots;
      for (uint64_t k = 0; k < slots && chosen == kNone; ++k) {
        const uint32_t i = table->ring[(start + k) % slots];
        if (usable(i)) {
          chosen = i;
        }
      }
      break;
    }
    case Algorithm::kLeastConnections:
    case Algorithm::kLatency: {
      const bool latency = algo == Algorithm::kLatency;
      const uint64_t start = cursor++;
      double best_score = 0;
      for (uint32_t k = 0; k < n; ++k) {
        const uint32_t i = static_cast<uint32_t>((start + k) % n);
        if (!usable(i)) {
          continue;
        }
        const Address& a = table->addresses[i];
        double score = static_cast<double>(held->active[i] + 1) / static_cast<double>(a.weight);
        if (latency) {
          score *= held->ewma_ms[i] + 1.0;
        }
        if (chosen == kNone || score < best_score) {
          chosen = i;
          best_score = score;
        }
      }
      break;
    }
  }
  if (chosen == kNone && prev != nullptr) {
    // The only healthy address is the one that just failed: Kong retries it too.
    for (uint32_t i = 0; i < n && chosen == kNone; ++i) {
      if (healthy(i)) {
        chosen = i;
      }
    }
  }
  if (chosen == kNone) {
    return PickStatus::kNoHealthy;
  }
  (void)attempt;
  const Address& a = table->addresses[chosen];
  out->address.assign(a.ip);
  out->port = a.port;
  out->pool_key.assign(a.pool_key);
  out->host_header.assign(a.host_header);
  if (held != nullptr) {
    ++held->active[chosen];
    ++held->inflight;
    lease->balancer_ = this;
    lease->shard_ = sh;
    lease->held_ = held;
    lease->index_ = chosen;
    lease->slot_ = slot;
    lease->started_ms_ = steadyMs();
  }
  return PickStatus::kOk;
}

void Balancer::report(const Lease& lease, Outcome outcome, int status) const {
  if (lease.held_ == nullptr) {
    return;
  }
  const Address& a = lease.held_->table->addresses[lease.index_];
  const HealthConfig& hc = config_->health;
  if (a.health != nullptr && hc.passiveEnabled()) {
    bool counted = true;
    HealthEvent e = HealthEvent::kSuccess;
    if (outcome == Outcome::kConnectFailure) {
      e = HealthEvent::kTcpFailure;
    } else if (outcome == Outcome::kTimeout) {
      e = HealthEvent::kTimeout;
    } else if (status >= 100 && status < 1000 &&
               hc.passive.unhealthy_statuses.test(static_cast<size_t>(status))) {
      e = HealthEvent::kHttpFailure;
    } else if (status >= 100 && status < 1000 &&
               hc.passive.healthy_statuses.test(static_cast<size_t>(status))) {
      e = HealthEvent::kSuccess;
    } else {
      counted = false;
    }
    if (counted && a.health->record(e, static_cast<uint32_t>(status), hc.passive)) {
      LOG_INFO("health", "upstream %s: %s:%d (%s) is now %s (passive)", config_->name, a.ip,
               a.port, a.health->hostname(), a.health->healthy() ? "healthy" : "unhealthy");
    }
  }
  if (config_->algorithm == Algorithm::kLatency && lease.slot_ == workerSlot()) {
    const uint64_t now = steadyMs();
    // Failures count as slow: a target that does not answer must not look fast.
    const double sample = outcome == Outcome::kResponse
                              ? static_cast<double>(now - lease.started_ms_)
                              : 10000.0;
    Held& h = *lease.held_;
    const size_t i = lease.index_;
    if (h.ewma_at_ms[i] == 0 || sample > h.ewma_ms[i]) {
      h.ewma_ms[i] = sample;  // peak-sensitive, as Finagle's and Kong's peak EWMA
    } else {
      const double w = std::exp(-static_cast<double>(now - h.ewma_at_ms[i]) / 10000.0);
      h.ewma_ms[i] = h.ewma_ms[i] * w + sample * (1 - w);
    }
    h.ewma_at_ms[i] = now == 0 ? 1 : now;
  }
}

void Balancer::release(Lease& lease) const {
  // Only the thread that owns the shard touches it; a lease ended elsewhere (a coroutine frame
  // destroyed after its worker stopped) just leaves its retired view alive until ~Balancer.
  if (lease.slot_ != workerSlot()) {
    return;
  }
  Held* h = lease.held_;
  if (h->active[lease.index_] > 0) {
    --h->active[lease.index_];
  }
  --h->inflight;
  Shard* s = lease.shard_;
  if (h->inflight == 0 && h != s->held.back().get()) {
    s->held.erase(std::remove_if(s->held.begin(), s->held.end(),
                                 [h](const std::unique_ptr<Held>& x) { return x.get() == h; }),
                  s->held.end());
  }
}

UpstreamReport Balancer::healthReport() const {
  UpstreamReport r;
  r.id = config_->upstream_id;
  r.name = config_->name;
  if (fixed_) {
    r.name = fixed_->host;
    TargetReport tr;
    tr.target = absl::StrCat(hostForHeader(fixed_->ip), ":", fixed_->port);
    tr.weight = 100;
    tr.health = "HEALTHCHECKS_OFF";
    tr.addresses.push_back(AddressReport{fixed_->ip, fixed_->port, true});
    r.targets.push_back(std::move(tr));
    return r;
  }
  std::shared_ptr<const Table> t = cell_->current();
  const bool checks = config_->health.enabled();
  for (size_t ti = 0; ti < config_->targets.size(); ++ti) {
    const TargetSpec& spec = config_->targets[ti];
    TargetReport tr;
    tr.target = absl::StrCat(hostForHeader(spec.host), ":", spec.port);
    tr.weight = spec.weight;
    bool any_healthy = false;
    for (const Address& a : t->addresses) {
      if (a.target != ti) {
        continue;
      }
      const bool h = a.health == nullptr || a.health->healthy();
      any_healthy |= h;
      tr.addresses.push_back(AddressReport{a.ip, a.port, h});
    }
    if (spec.weight == 0) {
      tr.health = checks ? "HEALTHY" : "HEALTHCHECKS_OFF";
    } else if (tr.addresses.empty()) {
      tr.health = "DNS_ERROR";
    } else if (!checks) {
      tr.health = "HEALTHCHECKS_OFF";
    } else {
      tr.health = any_healthy ? "HEALTHY" : "UNHEALTHY";
    }
    r.targets.push_back(std::move(tr));
  }
  return r;
}

// ---- Lease ---------------------------------------------------------------------------------

Lease& Lease::operator=(Lease&& o) noexcept {
  if (this != &o) {
    reset();
    balancer_ = o.balancer_;
    shard_ = o.shard_;
    held_ = o.held_;
    index_ = o.index_;
    slot_ = o.slot_;
    started_ms_ = o.started_ms_;
    o.held_ = nullptr;
    o.balancer_ = nullptr;
  }
  return *this;
}

void Lease::reset() {
  if (held_ != nullptr) {
    balancer_->release(*this);
    held_ = nullptr;
    balancer_ = nullptr;
  }
}

// ---- Runtime -------------------------------------------------------------------------------

Runtime::Runtime(Options options)
    : options_(std::move(options)), resolver_(options_.dns), health_() {}

Runtime::~Runtime() = default;

Runtime& Runtime::processDefault() {
  static Runtime* const kRuntime = new Runtime(Options{});
  return *kRuntime;
}

}  // namespace portico::dp::balancer
