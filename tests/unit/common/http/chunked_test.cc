// Chunked decoder: valid streams (with extensions and trailers), malformed sizes and framing,
// and the same stream fed at every split point.
#include "common/http/chunked.h"

#include <string>

#include <catch2/catch.hpp>

namespace portico::http {
namespace {

using Result = ChunkedDecoder::Result;

// Decodes `wire` split at `split`; returns the result and the body in *body.
Result decodeSplit(const std::string& wire, size_t split, std::string* body, size_t* used) {
  ChunkedDecoder d;
  body->clear();
  auto sink = [&](std::string_view piece) { body->append(piece); };
  size_t c1 = 0;
  Result r = d.decode(std::string_view(wire).substr(0, split), &c1, sink);
  if (r != Result::kNeedMore) {
    *used = c1;
    return r;
  }
  size_t c2 = 0;
  r = d.decode(std::string_view(wire).substr(split), &c2, sink);
  *used = split + c2;
  return r;
}

TEST_CASE("chunked: decodes with extensions and trailers at every split") {
  const std::string wire =
      "5\r\nhello\r\n1a;name=val;x\r\nabcdefghijklmnopqrstuvwxyz\r\n3 ; e\r\nxyz\r\n"
      "0\r\nX-Trailer: 1\r\nY: z\r\n\r\nNEXT";
  for (size_t split = 0; split <= wire.size(); ++split) {
    std::string body;
    size_t used = 0;
    REQUIRE(decodeSplit(wire, split, &body, &used) == Result::kDone);
    CHECK(body == "helloabcdefghijklmnopqrstuvwxyzxyz");
    CHECK(wire.substr(used) == "NEXT");
  }
}

TEST_CASE("chunked: rejects malformed framing") {
  const char* bad[] = {
      "x\r\n",                      // not hex
      "\r\n",                       // empty size
      "-5\r\nhello\r\n0\r\n\r\n",  // sign
      "5 \r\nhello\r\n0\r\n\r\n",  // trailing space without extension
      "5\nhello\r\n0\r\n\r\n",     // bare LF
      "5\r\nhelloX\r\n0\r\n\r\n",  // data longer than size
      "5\r\nhello\n0\r\n\r\n",     // bare LF after data
      "1000000000000000\r\n",      // > 15 hex digits
      "0\r\n folded: x\r\n\r\n",   // obs-fold in trailers
      "0\r\nX: a\nY: b\r\n\r\n",   // bare LF in trailers
      "0\r\n\n",                   // bare LF as the final line
      "5\r\nhello\r\n0x0\r\n\r\n", // 0x prefix
  };
  for (const char* w : bad) {
    INFO(w);
    ChunkedDecoder d;
    size_t used = 0;
    CHECK(d.decode(w, &used, [](std::string_view) {}) == Result::kError);
  }
  std::string long_ext = "5;" + std::string(2000, 'e') + "\r\nhello\r\n0\r\n\r\n";
  ChunkedDecoder d;
  size_t used = 0;
  CHECK(d.decode(long_ext, &used, [](std::string_view) {}) == Result::kError);
}

TEST_CASE("chunked: needs more until the last chunk") {
  ChunkedDecoder d;
  size_t used = 0;
  CHECK(d.decode("5\r\nhel", &used, [](std::string_view) {}) == Result::kNeedMore);
  CHECK(used == 6);
  CHECK(d.decode("lo\r\n0\r\n", &used, [](std::string_view) {}) == Result::kNeedMore);
  CHECK(d.decode("\r\n", &used, [](std::string_view) {}) == Result::kDone);
  CHECK(d.done());
}

TEST_CASE("chunked: header formatting") {
  char buf[24];
  CHECK(std::string_view(buf, formatChunkHeader(0, buf)) == "0\r\n");
  CHECK(std::string_view(buf, formatChunkHeader(255, buf)) == "ff\r\n");
  CHECK(std::string_view(buf, formatChunkHeader(0x10000, buf)) == "10000\r\n");
}

}  // namespace
}  // namespace portico::http
