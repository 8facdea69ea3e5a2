#include "common/heap.h"

#include <catch2/catch.hpp>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace {

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The VmFlags line of the mapping holding `address` in /proc/self/smaps.
std::string vmFlagsAt(uintptr_t address) {
  std::ifstream in("/proc/self/smaps");
  std::string line;
  bool inside = false;
  while (std::getline(in, line)) {
    uintptr_t lo = 0;
    uintptr_t hi = 0;
    char dash = 0;
    std::istringstream head(line);
    if (head >> std::hex >> lo >> dash >> hi && dash == '-') {
      inside = address >= lo && address < hi;
      continue;
    }
    if (inside && line.rfind("VmFlags:", 0) == 0) {
      return line;
    }
  }
  return "";
}

}  // namespace

TEST_CASE("reserveHugePageHeap: the heap ahead is advised for huge pages where THP allows") {
  const std::string thp = readFile("/sys/kernel/mm/transparent_hugepage/enabled");
  const size_t advised = portico::reserveHugePageHeap(16 << 20);
  if (thp.empty() || thp.find("[never]") != std::string::npos) {
    WARN("transparent huge pages are off here: only the call's safety is checked");
    return;
  }
  // 16 MiB reserved from a 2 MiB-aligned start inside it: at least 12 MiB of whole pages.
  REQUIRE(advised >= (12u << 20));
  // The heap's end is still past the advised range (not trimmed back), and the kernel marks
  // the range "hg".
  const auto end = reinterpret_cast<uintptr_t>(sbrk(0));
  const std::string flags = vmFlagsAt(end - advised / 2);
  INFO("VmFlags: " << flags);
  CHECK(flags.find(" hg") != std::string::npos);
}
