// Deterministic mutation runs of the fuzz targets over their committed seed corpora, for
// the CI smoke tests (the real libFuzzer runs need clang: tests/fuzz/CMakeLists.txt).
#pragma once

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

namespace portico::fuzz {

inline std::vector<std::string> seeds(const std::string& name) {
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

inline void mutateAndRun(const std::string& corpus, int (*target)(const uint8_t*, size_t),
                         const std::string& alphabet, int iterations = 20000) {
  const std::vector<std::string> base = seeds(corpus);
  std::mt19937 rng(4242);
  for (int iter = 0; iter < iterations; ++iter) {
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

}  // namespace portico::fuzz
