#include "common/heap.h"

#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>

namespace portico {
namespace {

constexpr uintptr_t kHugePage = uintptr_t{2} << 20;

}  // namespace

size_t reserveHugePageHeap(size_t reserve) {
  // The top grows by `reserve` at once (virtual memory: pages are faulted in as used), and
  // is not trimmed back below it (glibc's default trims past 128 KiB of free top).
  mallopt(M_TOP_PAD, static_cast<int>(reserve));
  mallopt(M_TRIM_THRESHOLD, static_cast<int>(2 * reserve));
  const auto before = reinterpret_cast<uintptr_t>(sbrk(0));
  // Blocks of 32 KiB (below any mmap threshold, so from the heap's top) until one makes
  // malloc extend the heap, by `reserve` at once. volatile: the compiler may drop a
  // malloc/free pair whose block is never used.
  constexpr int kProbes = 64;
  void* volatile probes[kProbes] = {};
  for (int i = 0; i < kProbes && reinterpret_cast<uintptr_t>(sbrk(0)) == before; ++i) {
    probes[i] = std::malloc(32 << 10);
  }
  for (int i = kProbes - 1; i >= 0; --i) {
    std::free(probes[i]);
  }
  const auto after = reinterpret_cast<uintptr_t>(sbrk(0));
  if (before == static_cast<uintptr_t>(-1) || after <= before) {
    return 0;
  }
  // Only whole 2 MiB pages can be huge: the advised range is aligned inwards.
  const uintptr_t start = (before + kHugePage - 1) & ~(kHugePage - 1);
  const uintptr_t end = after & ~(kHugePage - 1);
  if (end <= start) {
    return 0;
  }
  if (madvise(reinterpret_cast<void*>(start), end - start, MADV_HUGEPAGE) != 0) {
    return 0;
  }
  return end - start;
}

}  // namespace portico
