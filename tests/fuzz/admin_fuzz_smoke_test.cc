// Runs the Admin API input fuzz targets (JSON bodies, form bodies, entity schemas) on
// deterministic mutations of their committed seed corpora in every CI run.
#include <catch2/catch.hpp>

#include "tests/fuzz/admin_fuzz.h"
#include "tests/fuzz/fuzz_smoke.h"

namespace {

using portico::fuzz::mutateAndRun;

const std::string kJsonAlphabet = std::string("{}[]\",:0123456789.eE+-truefalsnul \\u\0\xff", 38);
const std::string kFormAlphabet = std::string("=&.[]%+0123456789abcfgnmiotp\0\xff", 30);

}  // namespace

TEST_CASE("fuzz: Admin API JSON bodies survive 20000 mutations, never deeper than the limit") {
  mutateAndRun("admin_json", portico::fuzz::fuzzAdminJsonBody, kJsonAlphabet);
}
TEST_CASE("fuzz: Admin API form bodies survive 20000 mutations, bounded in size and depth") {
  mutateAndRun("admin_form", portico::fuzz::fuzzAdminFormBody, kFormAlphabet);
}
TEST_CASE("fuzz: entity schema validation survives 20000 mutated entities, idempotently") {
  mutateAndRun("entity_schema", portico::fuzz::fuzzEntitySchema, kJsonAlphabet);
}
