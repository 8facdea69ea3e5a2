// Fuzz entry points for what the Admin API reads from a client: JSON bodies (depth-limited
// parse), Kong form bodies, and entity schema validation. Each returns 0 and aborts on a
// broken invariant; the libFuzzer mains (*_fuzz_main.cc) and the deterministic CI smoke test
// (admin_fuzz_smoke_test.cc) call them.
#pragma once

#include <cstddef>
#include <cstdint>

namespace portico::fuzz {

int fuzzAdminJsonBody(const uint8_t* data, size_t size);
int fuzzAdminFormBody(const uint8_t* data, size_t size);
// The first byte picks the entity (services, routes, ... acls); the rest is its JSON.
int fuzzEntitySchema(const uint8_t* data, size_t size);

}  // namespace portico::fuzz
