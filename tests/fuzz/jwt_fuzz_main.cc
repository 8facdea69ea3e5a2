// libFuzzer entry for jwt (see tests/fuzz/CMakeLists.txt for how to build and run it).
#include "tests/fuzz/auth_fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return portico::fuzz::fuzzJwtToken(data, size);
}
