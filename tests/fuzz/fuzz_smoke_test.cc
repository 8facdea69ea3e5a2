// Runs the codec fuzz target on deterministic mutations of real requests, so every CI run
// fuzzes a little even without libFuzzer (clang is not in the toolchain).
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

TEST_CASE("fuzz: http codec survives 20000 mutated inputs") {
  const std::vector<std::string> seeds = {
      "GET /a?b=c HTTP/1.1\r\nHost: x\r\nUser-Agent: y\r\n\r\n",
      "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
      "POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;e=1\r\nhello\r\n0\r\nT: 1\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
      "5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n",
  };
  const std::string alphabet = "\r\n :;,/\t\0aZ09-_%?#HTTP/1.1chunkedContent-Length";
  std::mt19937 rng(12345);
  for (int iter = 0; iter < 20000; ++iter) {
    std::string s = seeds[rng() % seeds.size()];
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !s.empty(); ++e) {
      const size_t pos = rng() % s.size();
      switch (rng() % 4) {
        case 0: s[pos] = alphabet[rng() % alphabet.size()]; break;
        case 1: s.insert(pos, 1, alphabet[rng() % alphabet.size()]); break;
        case 2: s.erase(pos, 1 + rng() % 3); break;
        default: s.insert(pos, s.substr(rng() % s.size(), rng() % 16)); break;
      }
    }
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  }
  SUCCEED();
}
