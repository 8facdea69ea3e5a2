// libFuzzer entry for declarative (see tests/fuzz/CMakeLists.txt for how to build and run it).
#include "tests/fuzz/declarative_fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return portico::fuzz::fuzzDeclarative(data, size);
}
