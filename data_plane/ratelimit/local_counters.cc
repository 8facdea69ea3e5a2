#include "data_plane/ratelimit/local_counters.h"

#include <sys/mman.h>

#include <chrono>
#include <cstdlib>
#include <tuple>

#include "absl/hash/hash.h"
#include "common/logging.h"

namespace portico::dp::ratelimit {
namespace {

constexpr size_t kTableBytes = LocalCounters::kSlotsPerTable * 16;

// Releases the thread's announce slot when the thread ends.
struct ThreadAnnounce {
  std::atomic<uint64_t>* epoch = nullptr;
  std::atomic<bool>* used = nullptr;
  bool tried = false;
  ~ThreadAnnounce() {
    if (used != nullptr) used->store(false, std::memory_order_release);
  }
};
thread_local ThreadAnnounce t_announce;

}  // namespace

namespace {
std::atomic<LocalCounters*> g_instance{nullptr};
}  // namespace

LocalCounters& LocalCounters::instance() {
  static LocalCounters* const kInstance = [] {
    auto* c = new LocalCounters();
    g_instance.store(c, std::memory_order_release);
    return c;
  }();
  return *kInstance;
}

uint64_t LocalCounters::missesIfCreated() {
  const LocalCounters* c = g_instance.load(std::memory_order_acquire);
  return c != nullptr ? c->misses() : 0;
}

LocalCounters::LocalCounters() {
  for (auto& ring : tables_) {
    for (Table& t : ring) {
      void* p = mmap(nullptr, kTableBytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (p == MAP_FAILED) {
        std::abort();  // 48 MiB of address space at start-up: nothing sensible to do without
      }
      t.slots = static_cast<Slot*>(p);
    }
  }
  sweeper_ = std::thread([this] { sweeperLoop(); });
  sweeper_.detach();
}

uint64_t LocalCounters::key(std::string_view prefix, std::string_view route_id,
                            std::string_view service_id, std::string_view identifier,
                            std::string_view name, Period period, int64_t window_start_s) {
  const uint64_t h = absl::HashOf(prefix, route_id, service_id, identifier, name,
                                  static_cast<uint8_t>(period), window_start_s);
  return h == 0 ? 1 : h;
}

std::atomic<uint64_t>* LocalCounters::announceSlot() {
  if (t_announce.epoch != nullptr || t_announce.tried) {
    return t_announce.epoch;
  }
  t_announce.tried = true;
  for (Announce& a : announces_) {
    bool expected = false;
    if (!a.used.load(std::memory_order_relaxed) &&
        a.used.compare_exchange_strong(expected, true, std::memory_order_acq_rel)) {
      a.epoch.store(0, std::memory_order_relaxed);
      t_announce.epoch = &a.epoch;
      t_announce.used = &a.used;
      break;
    }
  }
  return t_announce.epoch;
}

LocalCounters::Scope::Scope(LocalCounters& counters)
    : c_(counters), announce_(counters.announceSlot()) {
  if (announce_ != nullptr) {
    // Acquire: a request that sees the sweeper's new epoch also sees the table it retired.
    announce_->store(c_.epoch_.load(std::memory_order_acquire), std::memory_order_relaxed);
  } else {
    c_.overflow_active_.fetch_add(1, std::memory_order_relaxed);
  }
  // Dekker with the sweeper: either it sees our announcement, or we see its retirement.
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

LocalCounters::Scope::~Scope() {
  if (announce_ != nullptr) {
    announce_->store(0, std::memory_order_release);
  } else {
    c_.overflow_active_.fetch_sub(1, std::memory_order_release);
  }
}

LocalCounters::Table* LocalCounters::tableFor(Period p, int64_t window_start_s) {
  const int64_t seq = windowSeq(p, window_start_s);
  Table& t = tables_[index(p)][static_cast<size_t>(seq) % kTablesPerPeriod];
  int64_t s = t.seq.load(std::memory_order_acquire);
  for (;;) {
    if (s == kRetired) {
      return nullptr;  // the sweeper is zeroing it (it fell behind by two windows)
    }
    if (s >= seq) {
      // Ours, or a later window's (a straggler from an older window, or the clock went back):
      // keys carry their window, so sharing the table is correct; it is recycled later.
      return &t;
    }
    // Free, or left from a window that is over and not swept yet: it serves ours now (the old
    // window's slots stay until it is recycled after ours).
    if (t.seq.compare_exchange_weak(s, seq, std::memory_order_acq_rel)) {
      return &t;
    }
  }
}

LocalCounters::Slot* LocalCounters::find(Table& t, uint64_t key, bool insert) {
  constexpr size_t kMask = kSlotsPerTable - 1;
  size_t i = static_cast<size_t>(key) & kMask;
  for (size_t n = 0; n < kProbeLimit; ++n, i = (i + 1) & kMask) {
    Slot& s = t.slots[i];
    uint64_t k = s.key.load(std::memory_order_acquire);
    if (k == key) {
      return &s;
    }
    if (k == 0) {
      if (!insert) {
        return nullptr;
      }
      if (s.key.compare_exchange_strong(k, key, std::memory_order_acq_rel) || k == key) {
        return &s;
      }
    }
  }
  return nullptr;
}

bool LocalCounters::Scope::add(Period p, int64_t window_start_s, uint64_t key, int64_t delta,
                               int64_t* before) {
  *before = 0;
  Table* t = c_.tableFor(p, window_start_s);
  Slot* s = t != nullptr ? c_.find(*t, key, /*insert=*/true) : nullptr;
  if (s == nullptr) {
    c_.misses_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  *before = s->count.fetch_add(delta, std::memory_order_acq_rel);
  return true;
}

bool LocalCounters::Scope::get(Period p, int64_t window_start_s, uint64_t key, int64_t* value) {
  *value = 0;
  Table* t = c_.tableFor(p, window_start_s);
  if (t == nullptr) {
    c_.misses_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  if (Slot* s = c_.find(*t, key, /*insert=*/false)) {
    *value = s->count.load(std::memory_order_acquire);
  }
  return true;
}

size_t LocalCounters::tablesInUse() const {
  size_t n = 0;
  for (const auto& ring : tables_) {
    for (const Table& t : ring) {
      n += t.seq.load(std::memory_order_relaxed) != kFree ? 1 : 0;
    }
  }
  return n;
}

void LocalCounters::recycle(Table& t) {
  // Grace period: a new epoch, then wait until no request announced an older one (those may
  // have loaded the table before it was retired). Requests are a few hundred nanoseconds in
  // here, so this is quick.
  const uint64_t e = epoch_.fetch_add(1, std::memory_order_seq_cst) + 1;
  std::atomic_thread_fence(std::memory_order_seq_cst);
  for (;;) {
    bool busy = overflow_active_.load(std::memory_order_seq_cst) != 0;
    for (const Announce& a : announces_) {
      const uint64_t v = a.epoch.load(std::memory_order_seq_cst);
      busy = busy || (v != 0 && v < e);
    }
    if (!busy) break;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  madvise(t.slots, kTableBytes, MADV_DONTNEED);  // zero-filled on next touch, pages released
  t.seq.store(kFree, std::memory_order_release);
}

void LocalCounters::sweep(int64_t now_s) {
  std::lock_guard<std::mutex> lock(sweep_mu_);
  const Timestamps ts = timestamps(now_s);
  for (int pi = 0; pi < kPeriods; ++pi) {
    const Period p = static_cast<Period>(pi);
    const int64_t cur = windowSeq(p, ts[p]);
    for (Table& t : tables_[pi]) {
      int64_t s = t.seq.load(std::memory_order_acquire);
      // Over (older than the previous window), or ahead of the clock by more than a window
      // (the wall clock went back): recycle it.
      if (s >= 0 && (s < cur - 1 || s > cur + 1) &&
          t.seq.compare_exchange_strong(s, kRetired, std::memory_order_seq_cst)) {
        recycle(t);
      }
    }
  }
}

void LocalCounters::clearForTesting() {
  std::lock_guard<std::mutex> lock(sweep_mu_);
  for (auto& ring : tables_) {
    for (Table& t : ring) {
      if (t.seq.exchange(kRetired, std::memory_order_seq_cst) != kFree) {
        recycle(t);
      } else {
        t.seq.store(kFree, std::memory_order_release);
      }
    }
  }
}

void LocalCounters::sweeperLoop() {
  for (;;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    sweep(nowSeconds());
  }
}

}  // namespace portico::dp::ratelimit
