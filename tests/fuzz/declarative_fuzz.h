// Fuzz entry point for Kong declarative files (common/declarative): what `portico-dp
// --declarative_config`, its SIGHUP reload and `porticoctl validate` read from users. Returns
// 0 and aborts on a broken invariant; declarative_fuzz_main.cc (libFuzzer) and the
// deterministic CI smoke test (declarative_fuzz_smoke_test.cc) call it.
#pragma once

#include <cstddef>
#include <cstdint>

namespace portico::fuzz {

int fuzzDeclarative(const uint8_t* data, size_t size);

}  // namespace portico::fuzz
