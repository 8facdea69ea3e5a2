#include "data_plane/plugins/proxy_cache/cache_store.h"

#include <atomic>
#include <chrono>
#include <list>

#include <nlohmann/json.hpp>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/synchronization/mutex.h"

namespace portico::dp::plugins::proxy_cache {
namespace {

// Debian's Abseil has its own string_view: the maps look keys up with it.
absl::string_view av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

std::atomic<size_t> g_capacity{128u * 1024 * 1024};  // Kong's mem_cache_size default

}  // namespace

size_t CachedResponse::bytes() const {
  size_t n = sizeof(CachedResponse) + body.size();
  for (const auto& [name, value] : headers) {
    n += name.size() + value.size() + 2 * sizeof(std::string);
  }
  return n;
}

struct CacheStore::Shard {
  struct Entry {
    CachedResponseConstPtr response;
    int64_t expires_s = 0;
    size_t bytes = 0;
    std::list<std::string>::iterator lru;  // position in `order` (front: most recent)
  };
  absl::Mutex mu;
  absl::flat_hash_map<std::string, Entry> map ABSL_GUARDED_BY(mu);
  std::list<std::string> order ABSL_GUARDED_BY(mu);
  size_t bytes ABSL_GUARDED_BY(mu) = 0;
  uint64_t evictions ABSL_GUARDED_BY(mu) = 0;

  void eraseLocked(absl::flat_hash_map<std::string, Entry>::iterator it)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    bytes -= it->second.bytes;
    order.erase(it->second.lru);
    map.erase(it);
  }
};

CacheStore& CacheStore::instance() {
  static CacheStore* store = new CacheStore(g_capacity.load());  // never destroyed
  return *store;
}

void CacheStore::setCapacity(size_t bytes) { g_capacity.store(bytes); }

CacheStore::CacheStore(size_t capacity_bytes)
    : shards_(new Shard[kShards]), shard_capacity_(capacity_bytes / kShards) {}

CacheStore::~CacheStore() = default;

CacheStore::Shard& CacheStore::shardOf(std::string_view key) {
  return shards_[absl::HashOf(key) % kShards];
}

size_t CacheStore::maxEntryBytes() const { return shard_capacity_ / 4; }

CachedResponseConstPtr CacheStore::fetch(std::string_view key, int64_t now_s) {
  Shard& s = shardOf(key);
  absl::MutexLock lock(&s.mu);
  auto it = s.map.find(av(key));
  if (it == s.map.end()) {
    return nullptr;
  }
  if (it->second.expires_s <= now_s) {
    s.eraseLocked(it);
    return nullptr;
  }
  s.order.splice(s.order.begin(), s.order, it->second.lru);
  return it->second.response;
}

bool CacheStore::store(std::string_view key, CachedResponseConstPtr response,
                       int64_t storage_ttl_s, int64_t now_s) {
  const size_t bytes = response->bytes() + key.size();
  if (bytes > maxEntryBytes() || storage_ttl_s <= 0) {
    return false;
  }
  Shard& s = shardOf(key);
  absl::MutexLock lock(&s.mu);
  if (auto it = s.map.find(av(key)); it != s.map.end()) {
    s.eraseLocked(it);
  }
  while (s.bytes + bytes > shard_capacity_ && !s.order.empty()) {
    s.eraseLocked(s.map.find(s.order.back()));
    ++s.evictions;
  }
  s.order.emplace_front(key);
  s.map.emplace(std::string(key),
                Shard::Entry{std::move(response), now_s + storage_ttl_s, bytes, s.order.begin()});
  s.bytes += bytes;
  return true;
}

bool CacheStore::purge(std::string_view key) {
  Shard& s = shardOf(key);
  absl::MutexLock lock(&s.mu);
  auto it = s.map.find(av(key));
  if (it == s.map.end()) {
    return false;
  }
  s.eraseLocked(it);
  return true;
}

size_t CacheStore::flush() {
  size_t n = 0;
  for (size_t i = 0; i < kShards; ++i) {
    absl::MutexLock lock(&shards_[i].mu);
    n += shards_[i].map.size();
    shards_[i].map.clear();
    shards_[i].order.clear();
    shards_[i].bytes = 0;
  }
  return n;
}

CacheStore::Stats CacheStore::stats() const {
  Stats st;
  for (size_t i = 0; i < kShards; ++i) {
    absl::MutexLock lock(&shards_[i].mu);
    st.entries += shards_[i].map.size();
    st.bytes += shards_[i].bytes;
    st.evictions += shards_[i].evictions;
  }
  return st;
}

PurgeOutcome purgeOrLookup(const std::string& cache_key, bool lookup) {
  CacheStore& store = CacheStore::instance();
  PurgeOutcome out;
  if (cache_key.empty()) {
    out.purged = lookup ? 0 : static_cast<uint32_t>(store.flush());
    return out;
  }
  if (!lookup) {
    out.purged = store.purge(cache_key) ? 1 : 0;
    return out;
  }
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  const CachedResponseConstPtr res = store.fetch(cache_key, now);
  if (res == nullptr) {
    return out;
  }
  nlohmann::json headers = nlohmann::json::object();
  for (const auto& [name, value] : res->headers) {
    nlohmann::json& h = headers[name];
    if (h.is_null()) {
      h = value;
    } else {
      if (!h.is_array()) h = nlohmann::json::array({h});
      h.push_back(value);
    }
  }
  const nlohmann::json entry = {{"status", res->status},     {"headers", headers},
                                {"body", res->body},         {"body_len", res->body.size()},
                                {"timestamp", res->timestamp_s}, {"ttl", res->ttl_s},
                                {"version", 1}};
  out.purged = 1;
  out.entry_json = entry.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return out;
}

}  // namespace portico::dp::plugins::proxy_cache
