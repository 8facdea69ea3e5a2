// Runs the auth parsers' fuzz targets on deterministic mutations of the committed seed corpus
// in every CI run (the real libFuzzer runs need clang: tests/fuzz/CMakeLists.txt).
#include <catch2/catch.hpp>

#include "tests/fuzz/auth_fuzz.h"
#include "tests/fuzz/fuzz_smoke.h"

namespace {

using portico::fuzz::mutateAndRun;

const std::string kAlphabet = std::string("\"=,.:/+-_ \t\r\n\0{}[]aZ09%HMACbasicBearer", 38);

}  // namespace

TEST_CASE("fuzz: jwt token decoding survives 20000 mutated tokens") {
  mutateAndRun("jwt", portico::fuzz::fuzzJwtToken, kAlphabet);
}
TEST_CASE("fuzz: basic-auth credentials survive 20000 mutated headers") {
  mutateAndRun("basic_auth", portico::fuzz::fuzzBasicAuth, kAlphabet);
}
TEST_CASE("fuzz: hmac-auth Authorization and dates survive 20000 mutated headers") {
  mutateAndRun("hmac_auth", portico::fuzz::fuzzHmacAuthorization, kAlphabet);
}
