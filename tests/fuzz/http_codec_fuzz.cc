// Fuzz target for the HTTP/1.1 codec (libFuzzer entry point). Checks invariants rather than
// outputs: no crash or overread (run under ASan), a head parsed in one piece parses the same
// when fed one byte at a time, views stay inside the input, and the chunked decoder's output
// is never larger than its input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/http/chunked.h"
#include "common/http/http_parser.h"

namespace {

void check(bool ok) {
  if (!ok) {
    std::abort();
  }
}

bool inside(std::string_view v, std::string_view buf) {
  return v.empty() || (v.data() >= buf.data() && v.data() + v.size() <= buf.data() + buf.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace portico::http;
  const std::string_view buf(reinterpret_cast<const char*>(data), size);
  Limits limits;
  limits.max_head_bytes = 2048;
  limits.max_headers = 16;
  limits.max_uri_bytes = 512;

  HeadParser whole(limits);
  RequestHead a;
  const HeadParser::Status sa = whole.parseRequest(buf, &a);
  if (sa == HeadParser::Status::kComplete) {
    check(a.head_bytes <= size);
    check(inside(a.method, buf) && inside(a.target, buf) && inside(a.host, buf));
    for (uint32_t i = 0; i < a.num_headers; ++i) {
      check(inside(a.headers[i].name, buf) && inside(a.headers[i].value, buf));
    }
  }
  HeadParser incremental(limits);
  RequestHead b;
  HeadParser::Status sb = HeadParser::Status::kIncomplete;
  for (size_t n = 1; n <= size && sb == HeadParser::Status::kIncomplete; ++n) {
    sb = incremental.parseRequest(buf.substr(0, n), &b);
  }
  if (sa == HeadParser::Status::kComplete) {
    check(sb == HeadParser::Status::kComplete && b.head_bytes == a.head_bytes &&
          b.num_headers == a.num_headers && b.body == a.body);
  }

  HeadParser resp(limits);
  ResponseHead r;
  resp.parseResponse(buf, false, &r);

  ChunkedDecoder d;
  size_t used = 0;
  size_t out = 0;
  d.decode(buf, &used, [&](std::string_view piece) {
    check(inside(piece, buf));
    out += piece.size();
  });
  check(used <= size && out <= size);
  return 0;
}
