// libFuzzer entry for h2_frames (see tests/fuzz/CMakeLists.txt for how to build and run it).
#include "tests/fuzz/cluster_fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return portico::fuzz::fuzzH2Frames(data, size);
}
