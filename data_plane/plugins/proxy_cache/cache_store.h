// proxy-cache's `memory` strategy: one bounded cache per DP process, shared by its workers
// (Kong's kong_db_cache shared dictionary). Entries are immutable once stored and handed out
// as shared pointers, so a hit copies nothing under the lock. 16 shards, each with its own
// mutex, byte budget and LRU order; an entry whose storage TTL passed is dropped when met.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace portico::dp::plugins::proxy_cache {

struct CachedResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // as the upstream sent them
  std::string body;
  int64_t timestamp_s = 0;  // when stored (wall clock)
  int64_t ttl_s = 0;        // freshness: cache_ttl, or the response's Cache-Control TTL
  size_t bytes() const;
};
using CachedResponseConstPtr = std::shared_ptr<const CachedResponse>;

class CacheStore {
 public:
  // The process's store. Its capacity is set once at start-up (--proxy_cache_memory_mb).
  static CacheStore& instance();
  static void setCapacity(size_t bytes);
  explicit CacheStore(size_t capacity_bytes);
  ~CacheStore();

  // The entry under `key`, or null (absent, or past its storage TTL at `now_s`).
  CachedResponseConstPtr fetch(std::string_view key, int64_t now_s);
  // Stores (or replaces) `key` until now_s + storage_ttl_s, evicting the least recently used
  // entries of its shard to make room. False when the entry is larger than an entry may be
  // (maxEntryBytes()).
  bool store(std::string_view key, CachedResponseConstPtr response, int64_t storage_ttl_s,
             int64_t now_s);
  bool purge(std::string_view key);  // false when absent
  size_t flush();                    // entries dropped

  size_t maxEntryBytes() const;
  struct Stats {
    uint64_t entries = 0;
    uint64_t bytes = 0;
    uint64_t evictions = 0;
  };
  Stats stats() const;

 private:
  struct Shard;
  Shard& shardOf(std::string_view key);
  static constexpr size_t kShards = 16;
  std::unique_ptr<Shard[]> shards_;
  size_t shard_capacity_;
};

// The CP's purge or lookup of `cache_key` ("" = every entry) on this process's store: entries
// dropped, or for a lookup 1 and the entry as Kong's GET /proxy-cache/{key} shows it
// ({status, headers, body, body_len, timestamp, ttl, version}).
struct PurgeOutcome {
  uint32_t purged = 0;
  std::string entry_json;
};
PurgeOutcome purgeOrLookup(const std::string& cache_key, bool lookup);

}  // namespace portico::dp::plugins::proxy_cache
