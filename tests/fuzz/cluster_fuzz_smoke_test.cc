// The cluster listener's fuzz targets on deterministic mutations of their seed corpora
// (tests/fuzz/corpus/hpack, h2_frames): every CI run fuzzes a little without libFuzzer.
#include "tests/fuzz/cluster_fuzz.h"

#include <catch2/catch.hpp>

#include "tests/fuzz/fuzz_smoke.h"

namespace portico::fuzz {
namespace {

// Bytes that matter to each format: HPACK representation prefixes and length bytes; frame
// types, flags and lengths.
const char kHpackBytes[] = "\x00\x01\x0f\x1f\x3f\x40\x7f\x80\x82\x84\xbe\xff" "abc:path/";
const char kFrameBytes[] = "\x00\x01\x03\x04\x05\x06\x07\x08\x09\x0b\xff" "grpc";

TEST_CASE("fuzz: the HPACK decoder survives 20000 mutated header blocks") {
  mutateAndRun("hpack", fuzzHpack, std::string(kHpackBytes, sizeof(kHpackBytes) - 1), 20000);
}

TEST_CASE("fuzz: the cluster listener survives 300 mutated HTTP/2 connections") {
  mutateAndRun("h2_frames", fuzzH2Frames, std::string(kFrameBytes, sizeof(kFrameBytes) - 1), 300);
}

}  // namespace
}  // namespace portico::fuzz
