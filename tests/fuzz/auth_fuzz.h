// Fuzz entry points for the authentication plugins' parsers (jwt tokens, Basic credentials,
// hmac Authorization headers). Each returns 0 and aborts on a broken invariant; the libFuzzer
// mains (*_fuzz_main.cc) and the deterministic CI smoke test (auth_fuzz_smoke_test.cc) call
// them.
#pragma once

#include <cstddef>
#include <cstdint>

namespace portico::fuzz {

int fuzzJwtToken(const uint8_t* data, size_t size);
int fuzzBasicAuth(const uint8_t* data, size_t size);
int fuzzHmacAuthorization(const uint8_t* data, size_t size);

}  // namespace portico::fuzz
