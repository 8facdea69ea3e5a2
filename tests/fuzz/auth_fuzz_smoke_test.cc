// Runs the auth parsers' fuzz targets on deterministic mutations of the committed seed corpus
// in every CI run (the real libFuzzer runs need clang: tests/fuzz/CMakeLists.txt).
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/fuzz/auth_fuzz.h"

namespace {

std::vector<std::string> seeds(const std::string& name) {
  const char* src = std::getenv("PORTICO_SOURCE_DIR");
  const std::filesystem::path dir =
      std::filesystem::path(src ? src : ".") / "tests/fuzz/corpus" / name;
  std::vector<std::string> out;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    out.push_back(ss.str());
  }
  REQUIRE(!out.empty());
  return out;
}

void mutateAndRun(const std::string& corpus, int (*target)(const uint8_t*, size_t)) {
  const std::vector<std::string> base = seeds(corpus);
  const std::string alphabet = "\"=,.:/+-_ \t\r\n\0{}[]aZ09%HMACbasicBearer";
  std::mt19937 rng(4242);
  for (int iter = 0; iter < 20000; ++iter) {
    std::string s = base[rng() % base.size()];
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !s.empty(); ++e) {
      const size_t pos = rng() % s.size();
      switch (rng() % 4) {
        case 0: s[pos] = alphabet[rng() % alphabet.size()]; break;
        case 1: s.insert(pos, 1, alphabet[rng() % alphabet.size()]); break;
        case 2: s.erase(pos, 1 + rng() % 3); break;
        default: s.append(s.substr(0, rng() % 16)); break;
      }
    }
    target(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  }
  for (const std::string& s : base) {
    target(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  }
}

}  // namespace

TEST_CASE("fuzz: jwt token decoding survives 20000 mutated tokens") {
  mutateAndRun("jwt", portico::fuzz::fuzzJwtToken);
}
TEST_CASE("fuzz: basic-auth credentials survive 20000 mutated headers") {
  mutateAndRun("basic_auth", portico::fuzz::fuzzBasicAuth);
}
TEST_CASE("fuzz: hmac-auth Authorization and dates survive 20000 mutated headers") {
  mutateAndRun("hmac_auth", portico::fuzz::fuzzHmacAuthorization);
}
