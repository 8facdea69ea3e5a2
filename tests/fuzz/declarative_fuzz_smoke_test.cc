// Runs the declarative-file fuzz target on deterministic mutations and on every truncation of
// its committed seed corpus in every CI run: malformed, cut-off, oversized, deeply nested and
// invalid-UTF-8 files get an error, never a crash.
#include <string>

#include <catch2/catch.hpp>

#include "tests/fuzz/declarative_fuzz.h"
#include "tests/fuzz/fuzz_smoke.h"

namespace {

using portico::fuzz::fuzzDeclarative;

int run(const std::string& s) {
  return fuzzDeclarative(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

}  // namespace

TEST_CASE("fuzz: declarative files survive 20000 mutations") {
  static constexpr char kAlphabet[] =
      "_:-[]{}&*!|>'\"#,\n 0123456789.abcdefghilmnoprstuvwxyz/\\\0\xff\xc0\xe2";
  portico::fuzz::mutateAndRun("declarative", fuzzDeclarative,
                              std::string(kAlphabet, sizeof(kAlphabet) - 1));
}

TEST_CASE("fuzz: every truncation of every seed file is answered") {
  for (const std::string& seed : portico::fuzz::seeds("declarative")) {
    for (size_t n = 0; n <= seed.size(); ++n) {
      CHECK(run(seed.substr(0, n)) == 0);
    }
  }
}

TEST_CASE("fuzz: hostile shapes: over the size limit, far past the depth limit, invalid UTF-8") {
  CHECK(run("_format_version: \"3.0\"\n_comment: \"" + std::string(70 << 10, 'x') + "\"\n") == 0);
  CHECK(run("_format_version: \"3.0\"\n_ignore: " + std::string(5000, '[')) == 0);
  CHECK(run("_format_version: \"3.0\"\n_ignore: " + std::string(5000, '{')) == 0);
  CHECK(run("_format_version: \"3.0\"\nservices:\n- name: \"\xed\xa0\x80\"\n") == 0);
  CHECK(run("{\"_format_version\": \"3.0\", \"services\": [{\"name\": \"\xff\"}]}") == 0);
}
