#include "tests/fuzz/declarative_fuzz.h"

#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "common/declarative/declarative.h"

namespace portico::fuzz {

namespace {

[[noreturn]] void broken(const char* what) {
  std::fprintf(stderr, "declarative fuzz: %s\n", what);
  std::abort();
}

}  // namespace

int fuzzDeclarative(const uint8_t* data, size_t size) {
  // Limits small enough that every input runs fast, so the mutations reach the limits.
  declarative::LoadOptions options;
  options.max_bytes = 64 << 10;
  options.max_depth = 64;
  options.max_nodes = 100'000;
  const declarative::LoadResult r =
      declarative::loadDeclarative(std::string_view(reinterpret_cast<const char*>(data), size),
                                   options);
  if (r.ok()) {
    return 0;
  }
  for (const declarative::Problem& p : r.problems) {
    if (p.message.empty()) broken("a problem without a message");
    if (p.line < 0) broken("a negative line");
    if (p.message.rfind(declarative::kInternalErrorPrefix, 0) == 0) {
      std::fprintf(stderr, "%s\n", p.message.c_str());
      broken("the loader threw");
    }
  }
  // What users see: Kong's error body (POST /config, porticoctl --json) and the log lines.
  // Both must serialise as valid UTF-8 whatever bytes the file held (dump() throws else).
  try {
    (void)r.errorBody().dump();
    (void)declarative::Json(r.describe("fuzz.yml")).dump();
  } catch (const std::exception&) {
    broken("an error that does not serialise as JSON");
  }
  return 0;
}

}  // namespace portico::fuzz
