// Process-wide heap tuning for programs that build large trees of small objects.
#pragma once

#include <cstddef>

namespace portico {

// Grows the main malloc arena `reserve` bytes ahead of use and asks the kernel to back that
// range with transparent huge pages (madvise MADV_HUGEPAGE; a no-op where THP is "never").
// Why: with THP in "madvise" mode (Debian's default) every 4 KiB of a fresh heap costs a
// page fault, and on our VMs each fault costs ~5 us: a 2 MiB page replaces 512 of them and
// cuts TLB misses too. Call once, early in main(), from one thread. Sets glibc's top pad to
// `reserve` and its trim threshold to twice that (a later mallopt may raise it), so pages
// once faulted in are kept. Only the main arena's first `reserve` bytes are advised: later
// growth and other threads' arenas keep small pages. Returns the bytes advised (0 if the kernel or the heap layout
// did not allow it).
size_t reserveHugePageHeap(size_t reserve);

}  // namespace portico
