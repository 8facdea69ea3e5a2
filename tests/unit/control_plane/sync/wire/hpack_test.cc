// HPACK (RFC 7541) tests: every example of Appendix C, the static table and Huffman code
// checked against copies typed here from a second source, each malformed-input rule, the
// dynamic table against a reference model, the encoder helpers round-tripped through the
// decoder, and a deterministic mutation run that must neither crash nor emit unbounded output.
#include "control_plane/sync/wire/hpack.h"

#include <catch2/catch.hpp>

#include <malloc.h>

#include <algorithm>
#include <cstdio>
#include <cstdint>
#include <deque>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace portico::cp::wire {
namespace {

using Fields = std::vector<std::pair<std::string, std::string>>;

std::string unhex(std::string_view text) {
  std::string out;
  int high = -1;
  for (const char c : text) {
    int v;
    if (c >= '0' && c <= '9') {
      v = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      v = c - 'a' + 10;
    } else {
      continue;  // spaces and newlines as the RFC prints them
    }
    if (high < 0) {
      high = v;
    } else {
      out.push_back(static_cast<char>(high * 16 + v));
      high = -1;
    }
  }
  return out;
}

struct Result {
  absl::Status status;
  Fields fields;
};

Result run(HpackDecoder& decoder, std::string_view block, size_t max_list = 16384) {
  Result r;
  r.status = decoder.decode(
      block, [&](std::string_view n, std::string_view v) { r.fields.emplace_back(n, v); },
      max_list);
  return r;
}

// The dynamic table, newest first, read through indexed fields (which leave it unchanged).
Fields dynamicTable(HpackDecoder& decoder) {
  std::string block;
  for (size_t i = 0; i < decoder.tableEntries(); ++i) {
    hpackAppendIndexed(block, static_cast<uint32_t>(62 + i));
  }
  Result r = run(decoder, block, SIZE_MAX);
  REQUIRE(r.status.ok());
  return r.fields;
}

// ---- Huffman code, test side: lengths typed from a second transcription of Appendix B
// (golang.org/x/net/http2/hpack), codes rebuilt from them because the RFC's code is
// canonical (codes of one length are consecutive, in symbol order).
constexpr uint8_t kHuffmanLengths[257] = {
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,  //
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,  //
    6,  10, 10, 12, 13, 6,  8,  11, 10, 10, 8,  11, 8,  6,  6,  6,   //
    5,  5,  5,  6,  6,  6,  6,  6,  6,  6,  7,  8,  15, 6,  12, 10,  //
    13, 6,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,   //
    7,  7,  7,  7,  7,  7,  7,  7,  8,  7,  8,  13, 19, 13, 14, 6,   //
    15, 5,  6,  5,  6,  5,  6,  6,  6,  5,  7,  7,  6,  6,  6,  5,   //
    6,  7,  6,  5,  5,  6,  7,  7,  7,  7,  7,  15, 11, 14, 13, 28,  //
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,  //
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,  //
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,  //
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,  //
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,  //
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,  //
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,  //
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,  //
    30,                                                              // EOS
};

const std::vector<uint32_t>& huffmanCodes() {
  static const auto* const kCodes = [] {
    std::vector<int> order(257);
    for (int i = 0; i < 257; ++i) {
      order[i] = i;
    }
    std::stable_sort(order.begin(), order.end(),
                     [](int a, int b) { return kHuffmanLengths[a] < kHuffmanLengths[b]; });
    auto* codes = new std::vector<uint32_t>(257);
    uint32_t code = 0;
    for (size_t i = 0; i < order.size(); ++i) {
      if (i > 0) {
        code = (code + 1) << (kHuffmanLengths[order[i]] - kHuffmanLengths[order[i - 1]]);
      }
      (*codes)[order[i]] = code;
    }
    return codes;
  }();
  return *kCodes;
}

// Test-only encoder; the last byte is padded with ones (a prefix of EOS), as §5.2 requires.
std::string huffmanEncode(std::string_view s) {
  std::string out;
  uint64_t acc = 0;
  int bits = 0;
  for (const char c : s) {
    const auto sym = static_cast<uint8_t>(c);
    acc = (acc << kHuffmanLengths[sym]) | huffmanCodes()[sym];
    bits += kHuffmanLengths[sym];
    while (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>(acc >> bits));
    }
  }
  if (bits > 0) {
    out.push_back(static_cast<char>((acc << (8 - bits)) | (0xff >> bits)));
  }
  return out;
}

// A string literal (§5.2) with H = 1.
std::string huffmanLiteral(std::string_view s) {
  std::string out;
  const std::string encoded = huffmanEncode(s);
  hpackAppendInteger(out, encoded.size(), 7, 0x80);
  return out + encoded;
}

// A literal header field without indexing, literal name "x", and a Huffman value of raw bytes.
std::string fieldWithHuffmanBytes(std::string_view huffman_bytes) {
  std::string out("\x00\x01x", 3);
  hpackAppendInteger(out, huffman_bytes.size(), 7, 0x80);
  return out.append(huffman_bytes);
}

// ---- Static table, test side (second transcription of Appendix A).
const std::pair<std::string, std::string> kStatic[61] = {
    {":authority", ""},
    {":method", "GET"},
    {":method", "POST"},
    {":path", "/"},
    {":path", "/index.html"},
    {":scheme", "http"},
    {":scheme", "https"},
    {":status", "200"},
    {":status", "204"},
    {":status", "206"},
    {":status", "304"},
    {":status", "400"},
    {":status", "404"},
    {":status", "500"},
    {"accept-charset", ""},
    {"accept-encoding", "gzip, deflate"},
    {"accept-language", ""},
    {"accept-ranges", ""},
    {"accept", ""},
    {"access-control-allow-origin", ""},
    {"age", ""},
    {"allow", ""},
    {"authorization", ""},
    {"cache-control", ""},
    {"content-disposition", ""},
    {"content-encoding", ""},
    {"content-language", ""},
    {"content-length", ""},
    {"content-location", ""},
    {"content-range", ""},
    {"content-type", ""},
    {"cookie", ""},
    {"date", ""},
    {"etag", ""},
    {"expect", ""},
    {"expires", ""},
    {"from", ""},
    {"host", ""},
    {"if-match", ""},
    {"if-modified-since", ""},
    {"if-none-match", ""},
    {"if-range", ""},
    {"if-unmodified-since", ""},
    {"last-modified", ""},
    {"link", ""},
    {"location", ""},
    {"max-forwards", ""},
    {"proxy-authenticate", ""},
    {"proxy-authorization", ""},
    {"range", ""},
    {"referer", ""},
    {"refresh", ""},
    {"retry-after", ""},
    {"server", ""},
    {"set-cookie", ""},
    {"strict-transport-security", ""},
    {"transfer-encoding", ""},
    {"user-agent", ""},
    {"vary", ""},
    {"via", ""},
    {"www-authenticate", ""},
};

struct Step {
  std::string hex;
  Fields headers;
  Fields table;  // newest first, as the RFC lists it
  size_t size;
};

// A decoder whose peer uses a `size`-byte table: we advertise it and, as RFC 7541 §4.2 requires
// of an encoder after a table smaller than HTTP/2's initial 4096, the first block starts with
// a dynamic table size update (nghttp2's inflater insists on it).
HpackDecoder withTable(uint32_t size) {
  HpackDecoder decoder(size);
  std::string update;
  hpackAppendInteger(update, size, 5, 0x20);
  REQUIRE(decoder.decode(update, [](std::string_view, std::string_view) {}).ok());
  return decoder;
}

void runSteps(HpackDecoder& decoder, const std::vector<Step>& steps) {
  for (size_t i = 0; i < steps.size(); ++i) {
    INFO("step " << i + 1);
    Result r = run(decoder, unhex(steps[i].hex));
    REQUIRE(r.status.ok());
    CHECK(r.fields == steps[i].headers);
    CHECK(decoder.tableSize() == steps[i].size);
    CHECK(dynamicTable(decoder) == steps[i].table);
  }
}

const Fields kRequest1 = {
    {":method", "GET"}, {":scheme", "http"}, {":path", "/"}, {":authority", "www.example.com"}};
const Fields kRequest2 = {{":method", "GET"},
                          {":scheme", "http"},
                          {":path", "/"},
                          {":authority", "www.example.com"},
                          {"cache-control", "no-cache"}};
const Fields kRequest3 = {{":method", "GET"},
                          {":scheme", "https"},
                          {":path", "/index.html"},
                          {":authority", "www.example.com"},
                          {"custom-key", "custom-value"}};
const Fields kRequestTable1 = {{":authority", "www.example.com"}};
const Fields kRequestTable2 = {{"cache-control", "no-cache"}, {":authority", "www.example.com"}};
const Fields kRequestTable3 = {{"custom-key", "custom-value"},
                               {"cache-control", "no-cache"},
                               {":authority", "www.example.com"}};

const std::string kDate1 = "Mon, 21 Oct 2013 20:13:21 GMT";
const std::string kDate2 = "Mon, 21 Oct 2013 20:13:22 GMT";
const std::string kLocation = "https://www.example.com";
const std::string kCookie = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";
const Fields kResponse1 = {
    {":status", "302"}, {"cache-control", "private"}, {"date", kDate1}, {"location", kLocation}};
const Fields kResponse2 = {
    {":status", "307"}, {"cache-control", "private"}, {"date", kDate1}, {"location", kLocation}};
const Fields kResponse3 = {
    {":status", "200"},      {"cache-control", "private"}, {"date", kDate2},
    {"location", kLocation}, {"content-encoding", "gzip"}, {"set-cookie", kCookie}};
const Fields kResponseTable1 = {
    {"location", kLocation}, {"date", kDate1}, {"cache-control", "private"}, {":status", "302"}};
const Fields kResponseTable2 = {
    {":status", "307"}, {"location", kLocation}, {"date", kDate1}, {"cache-control", "private"}};
const Fields kResponseTable3 = {
    {"set-cookie", kCookie}, {"content-encoding", "gzip"}, {"date", kDate2}};

const char* const kC31 = "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d";
const char* const kC32 = "8286 84be 5808 6e6f 2d63 6163 6865";
const char* const kC33 = "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65";
const char* const kC41 = "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff";
const char* const kC42 = "8286 84be 5886 a8eb 1064 9cbf";
const char* const kC43 = "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf";
const char* const kC51 =
    "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133"
    "2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70"
    "6c65 2e63 6f6d";
const char* const kC52 = "4803 3330 37c1 c0bf";
const char* const kC53 =
    "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d"
    "54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049"
    "5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e"
    "3d31";
const char* const kC61 =
    "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6"
    "2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3";
const char* const kC62 = "4883 640e ffc1 c0bf";
const char* const kC63 =
    "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab"
    "77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f"
    "9587 3160 65c0 03ed 4ee5 b106 3d50 07";
const char* const kC21 = "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572";
const char* const kC22 = "040c 2f73 616d 706c 652f 7061 7468";
const char* const kC23 = "1008 7061 7373 776f 7264 0673 6563 7265 74";

TEST_CASE("hpack: C.1 integer representation examples") {
  std::string out;
  hpackAppendInteger(out, 10, 5, 0x00);
  CHECK(out == unhex("0a"));
  out.clear();
  hpackAppendInteger(out, 1337, 5, 0x00);
  CHECK(out == unhex("1f9a0a"));
  out.clear();
  hpackAppendInteger(out, 42, 8, 0x00);
  CHECK(out == unhex("2a"));
  out.clear();
  hpackAppendInteger(out, 10, 5, 0xe0);  // pattern bits above the prefix are kept
  CHECK(out == unhex("ea"));
  out.clear();
  hpackAppendInteger(out, 31, 5, 0x20);  // exactly 2^N-1 needs a zero continuation byte
  CHECK(out == unhex("3f00"));

  // The decoder reads C.1.2 as a table size update to 1337: an entry of exactly 1337 bytes
  // then fits and one of 1338 does not.
  HpackDecoder decoder;
  std::string fits = unhex("3f9a0a");
  hpackAppendLiteral(fits, "n", "");  // not indexed, just to see the block is accepted
  REQUIRE(run(decoder, fits).status.ok());
  std::string block = unhex("3f9a0a 40 01 6e");  // literal with indexing, name "n"
  hpackAppendInteger(block, 1337 - 32 - 1, 7, 0x00);
  block.append(1337 - 32 - 1, 'v');
  REQUIRE(run(decoder, block).status.ok());
  CHECK(decoder.tableSize() == 1337);
  block = unhex("3f9a0a 40 01 6e");
  hpackAppendInteger(block, 1337 - 32, 7, 0x00);
  block.append(1337 - 32, 'v');
  REQUIRE(run(decoder, block).status.ok());
  CHECK(decoder.tableEntries() == 0);
}

TEST_CASE("hpack: C.2 header field representation examples") {
  SECTION("C.2.1 literal with indexing") {
    HpackDecoder decoder;
    runSteps(decoder,
             {{kC21, {{"custom-key", "custom-header"}}, {{"custom-key", "custom-header"}}, 55}});
  }
  SECTION("C.2.2 literal without indexing") {
    HpackDecoder decoder;
    runSteps(decoder, {{kC22, {{":path", "/sample/path"}}, {}, 0}});
  }
  SECTION("C.2.3 literal never indexed") {
    HpackDecoder decoder;
    runSteps(decoder, {{kC23, {{"password", "secret"}}, {}, 0}});
  }
  SECTION("C.2.4 indexed") {
    HpackDecoder decoder;
    runSteps(decoder, {{"82", {{":method", "GET"}}, {}, 0}});
  }
}

TEST_CASE("hpack: C.3 requests without Huffman share one dynamic table") {
  HpackDecoder decoder;
  runSteps(decoder, {{kC31, kRequest1, kRequestTable1, 57},
                     {kC32, kRequest2, kRequestTable2, 110},
                     {kC33, kRequest3, kRequestTable3, 164}});
}

TEST_CASE("hpack: C.4 requests with Huffman share one dynamic table") {
  HpackDecoder decoder;
  runSteps(decoder, {{kC41, kRequest1, kRequestTable1, 57},
                     {kC42, kRequest2, kRequestTable2, 110},
                     {kC43, kRequest3, kRequestTable3, 164}});
}

TEST_CASE("hpack: C.5 responses without Huffman evict with a 256-byte table") {
  HpackDecoder decoder = withTable(256);
  runSteps(decoder, {{kC51, kResponse1, kResponseTable1, 222},
                     {kC52, kResponse2, kResponseTable2, 222},
                     {kC53, kResponse3, kResponseTable3, 215}});
}

TEST_CASE("hpack: C.6 responses with Huffman evict with a 256-byte table") {
  HpackDecoder decoder = withTable(256);
  runSteps(decoder, {{kC61, kResponse1, kResponseTable1, 222},
                     {kC62, kResponse2, kResponseTable2, 222},
                     {kC63, kResponse3, kResponseTable3, 215}});
}

TEST_CASE("hpack: the test's Huffman code is complete, canonical and matches Appendix B") {
  // Kraft sum exactly 1: a complete prefix code, so every bit string decodes somewhere.
  uint64_t kraft = 0;
  for (const uint8_t length : kHuffmanLengths) {
    kraft += uint64_t{1} << (30 - length);
  }
  CHECK(kraft == uint64_t{1} << 30);
  // Spot checks against the RFC's printed codes.
  CHECK(huffmanCodes()[0] == 0x1ff8);
  CHECK(huffmanCodes()[' '] == 0x14);
  CHECK(huffmanCodes()['0'] == 0x0);
  CHECK(huffmanCodes()['a'] == 0x3);
  CHECK(huffmanCodes()['\n'] == 0x3ffffffc);
  CHECK(huffmanCodes()[255] == 0x3ffffee);
  CHECK(huffmanCodes()[256] == 0x3fffffff);
  // And the RFC's encoded strings (C.4 and C.6).
  CHECK(huffmanEncode("www.example.com") == unhex("f1e3 c2e5 f23a 6ba0 ab90 f4ff"));
  CHECK(huffmanEncode("no-cache") == unhex("a8eb 1064 9cbf"));
  CHECK(huffmanEncode("custom-key") == unhex("25a8 49e9 5ba9 7d7f"));
  CHECK(huffmanEncode("custom-value") == unhex("25a8 49e9 5bb8 e8b4 bf"));
  CHECK(huffmanEncode("302") == unhex("6402"));
  CHECK(huffmanEncode("307") == unhex("640e ff"));
  CHECK(huffmanEncode("private") == unhex("aec3 771a 4b"));
  CHECK(huffmanEncode(kDate1) == unhex("d07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff"));
  CHECK(huffmanEncode(kLocation) == unhex("9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3"));
  CHECK(huffmanEncode("gzip") == unhex("9bd9 ab"));
}

TEST_CASE("hpack: Huffman round trip over every byte value") {
  HpackDecoder decoder;
  // Each symbol alone exercises every padding length the code can produce.
  for (int b = 0; b < 256; ++b) {
    const std::string s(1, static_cast<char>(b));
    Result r = run(decoder, fieldWithHuffmanBytes(huffmanEncode(s)));
    INFO("byte " << b);
    REQUIRE(r.status.ok());
    REQUIRE(r.fields == Fields{{"x", s}});
  }
  std::string all;
  for (int b = 0; b < 256; ++b) {
    all.push_back(static_cast<char>(b));
  }
  std::string reversed(all.rbegin(), all.rend());
  for (const std::string& s : {all, reversed, all + all + all}) {
    std::string block = unhex("40");  // with indexing, so names are Huffman too
    block += huffmanLiteral(s.substr(0, 100)) + huffmanLiteral(s);
    Result r = run(decoder, block);
    REQUIRE(r.status.ok());
    CHECK(r.fields == Fields{{s.substr(0, 100), s}});
  }
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; ++i) {
    std::string s(rng() % 64, '\0');
    for (char& c : s) {
      c = static_cast<char>(rng());
    }
    Result r = run(decoder, fieldWithHuffmanBytes(huffmanEncode(s)));
    REQUIRE(r.status.ok());
    REQUIRE(r.fields == Fields{{"x", s}});
  }
}

TEST_CASE("hpack: the static table matches Appendix A") {
  HpackDecoder decoder;
  for (uint32_t i = 1; i <= 61; ++i) {
    std::string block;
    hpackAppendIndexed(block, i);
    hpackAppendLiteralIndexedName(block, i, "v");
    Result r = run(decoder, block);
    INFO("index " << i);
    REQUIRE(r.status.ok());
    CHECK(r.fields == Fields{kStatic[i - 1], {kStatic[i - 1].first, "v"}});
  }
  CHECK(decoder.tableEntries() == 0);
}

TEST_CASE("hpack: malformed blocks are rejected with InvalidArgument") {
  struct Case {
    const char* what;
    std::string block;
  };
  const std::string x_name = unhex("00 01 78");  // without indexing, literal name "x"
  const std::vector<Case> cases = {
      {"truncated integer", unhex("ff")},
      {"truncated multi-byte integer", unhex("ff 80 80")},
      {"integer above 2^32-1", unhex("ff ff ff ff ff 0f")},
      {"too many continuation bytes", unhex("ff 80 80 80 80 80 00")},
      {"indexed field with index 0", unhex("80")},
      {"index past the static table with an empty dynamic table", unhex("be")},
      {"index far out of range", unhex("ff ff ff ff 7f")},
      {"literal name index out of range", unhex("7e 01 76")},
      {"never-indexed name index out of range", unhex("1f 2f 01 76")},
      {"truncated name", unhex("00")},
      {"truncated value", x_name},
      {"name longer than the block", unhex("40 05 61 62")},
      {"value longer than the block", x_name + unhex("05 61 62")},
      {"Huffman value longer than the block", x_name + unhex("85 1f")},
      {"Huffman EOS", fieldWithHuffmanBytes(unhex("ff ff ff ff"))},
      {"Huffman EOS then a symbol", fieldWithHuffmanBytes(unhex("ff ff ff ff fc"))},
      {"Huffman padding of 8 ones", fieldWithHuffmanBytes(unhex("ff"))},
      {"Huffman 'a' then a whole byte of padding", fieldWithHuffmanBytes(unhex("1f ff"))},
      {"Huffman 'a' then 29 bits of padding", fieldWithHuffmanBytes(unhex("ff 9f ff ff ff"))},
      {"Huffman padding not all ones", fieldWithHuffmanBytes(unhex("18"))},
      {"Huffman '0' with zero padding", fieldWithHuffmanBytes(unhex("00"))},
      {"Huffman padding ends inside a symbol",
       fieldWithHuffmanBytes(unhex("52 bc 30 ff ff ff ff"))},
      {"table size update after a field", unhex("82 20")},
      {"table size update after a literal", unhex("82") + x_name + unhex("00 3f e1 1f")},
      {"table size update above the advertised size", unhex("3f e2 1f")},
      {"second update above the advertised size", unhex("20 3f e2 1f 82")},
      {"truncated table size update", unhex("3f")},
  };
  for (const Case& c : cases) {
    HpackDecoder decoder;
    Result r = run(decoder, c.block);
    INFO(c.what << ": " << r.status.ToString());
    CHECK(r.status.code() == absl::StatusCode::kInvalidArgument);
  }
}

TEST_CASE("hpack: table size updates") {
  HpackDecoder decoder;
  SECTION("several at the start of a block, up to the advertised size") {
    Result r = run(decoder, unhex("20 3f e1 1f 3f 11 82"));  // 0, 4096, 48, then a field
    REQUIRE(r.status.ok());
    CHECK(r.fields == Fields{{":method", "GET"}});
    // The last update (48) rules: a 48-byte entry fits, then a 49-byte one empties the table.
    REQUIRE(run(decoder, unhex("40 01 61 0f") + std::string(15, 'b')).status.ok());
    CHECK(decoder.tableSize() == 48);
    REQUIRE(run(decoder, unhex("40 01 61 10") + std::string(16, 'b')).status.ok());
    CHECK(decoder.tableEntries() == 0);
  }
  SECTION("shrinking evicts the oldest entries; zero empties; growing again works") {
    for (const char* hex : {kC31, kC32, kC33}) {
      REQUIRE(run(decoder, unhex(hex)).status.ok());
    }
    REQUIRE(decoder.tableSize() == 164);
    REQUIRE(run(decoder, unhex("3f 4f")).status.ok());  // 110
    CHECK(decoder.tableSize() == 107);
    CHECK(dynamicTable(decoder) == Fields(kRequestTable3.begin(), kRequestTable3.begin() + 2));
    REQUIRE(run(decoder, unhex("20")).status.ok());
    CHECK(decoder.tableEntries() == 0);
    CHECK(decoder.tableSize() == 0);
    REQUIRE(run(decoder, unhex("3f e1 1f") + unhex(kC21)).status.ok());
    CHECK(decoder.tableSize() == 55);
  }
  SECTION("an empty block is fine and a lone update is fine") {
    CHECK(run(decoder, "").status.ok());
    CHECK(run(decoder, unhex("3f e1 1f")).status.ok());
  }
}

TEST_CASE("hpack: dynamic table edge cases") {
  SECTION("an entry larger than the table empties it but is still emitted") {
    HpackDecoder decoder = withTable(256);
    REQUIRE(run(decoder, unhex(kC21)).status.ok());
    REQUIRE(decoder.tableEntries() == 1);
    std::string block = unhex("40 01 6e");
    hpackAppendInteger(block, 300, 7, 0x00);
    block.append(300, 'v');
    Result r = run(decoder, block);
    REQUIRE(r.status.ok());
    CHECK(r.fields == Fields{{"n", std::string(300, 'v')}});
    CHECK(decoder.tableEntries() == 0);
    CHECK(decoder.tableSize() == 0);
  }
  SECTION("a new entry may take its name from the entry its insertion evicts (§4.4)") {
    HpackDecoder decoder = withTable(100);
    REQUIRE(run(decoder, unhex("40 04 61616161 04 62626262")).status.ok());  // aaaa: bbbb, 40
    std::string block = unhex("7e");  // with indexing, name = dynamic index 62 (aaaa)
    hpackAppendInteger(block, 30, 7, 0x00);
    block.append(30, 'c');
    Result r = run(decoder, block);
    REQUIRE(r.status.ok());
    CHECK(r.fields == Fields{{"aaaa", std::string(30, 'c')}});
    CHECK(dynamicTable(decoder) == Fields{{"aaaa", std::string(30, 'c')}});
    CHECK(decoder.tableSize() == 66);
  }
  SECTION("an entry of exactly the table size fits") {
    HpackDecoder decoder = withTable(64);
    std::string block = unhex("40 10") + std::string(16, 'n') + unhex("10") + std::string(16, 'v');
    REQUIRE(run(decoder, block).status.ok());
    CHECK(decoder.tableSize() == 64);
    CHECK(decoder.tableEntries() == 1);
  }
  SECTION("the decoder itself stays small") {
    // Thousands of connections each hold one; nghttp2's state is allocated on first use.
    CHECK(sizeof(HpackDecoder) <= 16);
  }
  SECTION("nghttp2's state per connection, measured") {
    const size_t before = mallinfo2().uordblks;
    {
      std::vector<HpackDecoder> decoders(100);
      for (HpackDecoder& d : decoders) {
        REQUIRE(run(d, unhex("82 86 84")).status.ok());  // :method GET, :scheme http, :path /
      }
      const size_t per = (mallinfo2().uordblks - before) / decoders.size();
      std::printf("hpack: %zu bytes of heap per connection after its first header block\n", per);
      CHECK(per <= 4096);
    }
  }
  SECTION("a field over nghttp2's 64 KiB limit is refused") {
    HpackDecoder decoder(1u << 20);
    std::string block = unhex("3f e1 ff 3f");  // table size update to 1 MiB
    block += unhex("00 01 6e");  // without indexing, literal name "n"
    hpackAppendInteger(block, 70000, 7, 0x00);
    block.append(70000, 'v');
    CHECK(run(decoder, block, SIZE_MAX).status.code() == absl::StatusCode::kInvalidArgument);
  }
}

TEST_CASE("hpack: dynamic table matches a reference model under churn") {
  std::mt19937 rng(12345);
  for (const uint32_t table_size : {64u, 256u, 4096u}) {
    HpackDecoder decoder = withTable(table_size);
    std::deque<std::pair<std::string, std::string>> model;  // newest first
    uint32_t model_max = table_size;
    size_t model_size = 0;
    auto evict = [&](size_t limit) {
      while (model_size > limit) {
        model_size -= model.back().first.size() + model.back().second.size() + 32;
        model.pop_back();
      }
    };
    for (int i = 0; i < 3000; ++i) {
      std::string block;
      Fields expected;
      if (rng() % 20 == 0) {
        model_max = rng() % (table_size + 1);
        hpackAppendInteger(block, model_max, 5, 0x20);
        evict(model_max);
      }
      const int fields = 1 + static_cast<int>(rng() % 4);
      for (int f = 0; f < fields; ++f) {
        std::string name;
        const bool dynamic_name = !model.empty() && rng() % 3 == 0;
        if (dynamic_name) {
          const size_t k = rng() % model.size();
          name = model[k].first;
          hpackAppendInteger(block, 62 + k, 6, 0x40);
        } else {
          name = std::string(rng() % 20, static_cast<char>('a' + rng() % 26));
          block += unhex("40");
          block += rng() % 2 ? huffmanLiteral(name) : [&] {
            std::string s;
            hpackAppendInteger(s, name.size(), 7, 0x00);
            return s + name;
          }();
        }
        const std::string value(rng() % (table_size / 2), static_cast<char>('A' + rng() % 26));
        block += huffmanLiteral(value);
        expected.emplace_back(name, value);
        const size_t entry = name.size() + value.size() + 32;
        if (entry > model_max) {
          model.clear();
          model_size = 0;
        } else {
          evict(model_max - entry);
          model.emplace_front(name, value);
          model_size += entry;
        }
      }
      Result r = run(decoder, block, SIZE_MAX);
      REQUIRE(r.status.ok());
      REQUIRE(r.fields == expected);
      REQUIRE(decoder.tableSize() == model_size);
      REQUIRE(dynamicTable(decoder) == Fields(model.begin(), model.end()));
    }
  }
}

TEST_CASE("hpack: header list size limit gives ResourceExhausted") {
  HpackDecoder decoder;
  // :method GET costs 7 + 3 + 32 = 42.
  CHECK(run(decoder, unhex("82"), 42).status.ok());
  Result r = run(decoder, unhex("82"), 41);
  CHECK(r.status.code() == absl::StatusCode::kResourceExhausted);
  CHECK(r.fields.empty());
  r = run(decoder, unhex(kC31), 100);  // 42 + 43 + 38 > 100 at the third field
  CHECK(r.status.code() == absl::StatusCode::kResourceExhausted);
  CHECK(r.fields.size() == 2);
}

TEST_CASE("hpack: encoder helpers round-trip through the decoder") {
  HpackDecoder decoder;
  std::string block;
  hpackAppendIndexed(block, 8);
  hpackAppendLiteralIndexedName(block, 31, "application/grpc");  // content-type: 2-byte index
  hpackAppendLiteral(block, "grpc-status", "0");
  hpackAppendLiteral(block, "grpc-message", "");
  hpackAppendLiteral(block, "", "");
  hpackAppendLiteralIndexedName(block, 1, "");
  Result r = run(decoder, block);
  REQUIRE(r.status.ok());
  CHECK(r.fields == Fields{{":status", "200"},
                           {"content-type", "application/grpc"},
                           {"grpc-status", "0"},
                           {"grpc-message", ""},
                           {"", ""},
                           {":authority", ""}});
  CHECK(block.substr(0, 1) == unhex("88"));
  CHECK(decoder.tableEntries() == 0);  // nothing we encode touches the peer's table

  // String lengths around each integer boundary of the 7-bit prefix, up to a field near
  // nghttp2's 64 KiB limit (a header block is at most 64 KiB here anyway).
  for (const size_t length : {0, 1, 126, 127, 128, 129, 255, 16383, 16384, 16385, 65000}) {
    block.clear();
    const std::string value(length, 'v');
    hpackAppendLiteral(block, std::string(length % 300, 'n'), value);
    hpackAppendLiteralIndexedName(block, 58, value);
    r = run(decoder, block, SIZE_MAX);
    INFO("length " << length);
    REQUIRE(r.status.ok());
    CHECK(r.fields == Fields{{std::string(length % 300, 'n'), value}, {"user-agent", value}});
  }
  CHECK(decoder.tableEntries() == 0);

  // Integers through a 5-bit prefix, read back as table size updates: an entry of exactly the
  // new size fits and one byte more empties the table.
  for (const uint64_t size : {32, 33, 62, 63, 64, 158, 159, 160, 4095, 4096, 16414, 65000}) {
    HpackDecoder big(1u << 20);
    for (const uint64_t entry : {size, size + 1}) {
      block.clear();
      hpackAppendInteger(block, size, 5, 0x20);
      block += unhex("40 00");  // with indexing, empty literal name
      hpackAppendInteger(block, entry - 32, 7, 0x00);
      block.append(entry - 32, 'v');
      INFO("size " << size << " entry " << entry);
      REQUIRE(run(big, block, SIZE_MAX).status.ok());
      CHECK(big.tableEntries() == (entry == size ? 1u : 0u));
    }
  }

  // The largest accepted integer and the first rejected one.
  HpackDecoder huge(UINT32_MAX);
  block.clear();
  hpackAppendInteger(block, UINT32_MAX, 5, 0x20);
  CHECK(run(huge, block).status.ok());
  block.clear();
  hpackAppendInteger(block, uint64_t{UINT32_MAX} + 1, 5, 0x20);
  CHECK(run(huge, block).status.code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("hpack: random and mutated blocks never crash and emit bounded output") {
  std::vector<std::string> corpus;
  for (const char* hex :
       {kC21, kC22, kC23, kC31, kC32, kC33, kC41, kC42, kC43, kC51, kC52, kC53, kC61, kC62, kC63}) {
    corpus.push_back(unhex(hex));
  }
  corpus.push_back(unhex("3f e1 1f 20 82"));
  corpus.push_back(fieldWithHuffmanBytes(huffmanEncode(kCookie)));
  std::string encoded;
  hpackAppendLiteralIndexedName(encoded, 31, "application/grpc");
  hpackAppendLiteral(encoded, "grpc-message", std::string(200, 'm'));
  corpus.push_back(encoded);

  std::mt19937 rng(20240531);
  constexpr size_t kMaxList = 4096;
  constexpr uint32_t kTable = 256;
  HpackDecoder persistent = withTable(kTable);  // carries state (and bad state) across blocks
  size_t ok_blocks = 0;
  for (int i = 0; i < 300000; ++i) {
    std::string block = corpus[rng() % corpus.size()];
    const int mutations = 1 + static_cast<int>(rng() % 4);
    for (int m = 0; m < mutations; ++m) {
      const size_t pos = block.empty() ? 0 : rng() % block.size();
      switch (rng() % 7) {
        case 0:
          if (!block.empty()) {
            block[pos] = static_cast<char>(block[pos] ^ (1 << (rng() % 8)));
          }
          break;
        case 1:
          if (!block.empty()) {
            block[pos] = static_cast<char>(rng());
          }
          break;
        case 2:
          block.insert(pos, 1, static_cast<char>(rng()));
          break;
        case 3:
          if (!block.empty()) {
            block.erase(pos, 1 + rng() % 4);
          }
          break;
        case 4:
          block.resize(pos);
          break;
        case 5:
          block += corpus[rng() % corpus.size()];
          break;
        default: {
          block.resize(rng() % 64);
          for (char& c : block) {
            c = static_cast<char>(rng());
          }
          break;
        }
      }
    }
    HpackDecoder fresh = withTable(kTable);
    HpackDecoder& decoder = rng() % 2 ? persistent : fresh;
    size_t emitted = 0;
    const absl::Status status = decoder.decode(
        block, [&](std::string_view n, std::string_view v) { emitted += n.size() + v.size() + 32; },
        kMaxList);
    ok_blocks += status.ok();
    REQUIRE(emitted <= kMaxList);
    REQUIRE(decoder.tableSize() <= kTable);
    REQUIRE(decoder.tableEntries() * 32 <= decoder.tableSize());
    if (!status.ok()) {
      REQUIRE((status.code() == absl::StatusCode::kInvalidArgument ||
               status.code() == absl::StatusCode::kResourceExhausted));
      if (&decoder == &persistent) {
        persistent = withTable(kTable);  // a real connection would be closed here
      }
    }
  }
  // The mutations must leave some blocks valid, or the run only exercised the error paths.
  CHECK(ok_blocks > 10000);
}

}  // namespace
}  // namespace portico::cp::wire
