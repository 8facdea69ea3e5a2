// Wire-level tests for the HTTP/1.1 head parser: valid heads, every smuggling vector we reject,
// limits, and the same bytes fed one byte at a time.
#include "common/http/http_parser.h"

#include <deque>
#include <string>

#include <catch2/catch.hpp>

namespace portico::http {
namespace {

using Status = HeadParser::Status;

// Feeds `wire` to a fresh parser in one piece.
// The parsed views point into the wire bytes, so they are kept alive for the whole test run.
Status parseReq(const std::string& wire, RequestHead* out, Limits limits = Limits()) {
  static std::deque<std::string> keep;
  keep.push_back(wire);
  HeadParser p(limits);
  return p.parseRequest(keep.back(), out);
}

ParseError reqError(const std::string& wire, Limits limits = Limits()) {
  HeadParser p(limits);
  RequestHead h;
  Status s = p.parseRequest(wire, &h);
  if (s == Status::kComplete) {
    return ParseError::kNone;
  }
  REQUIRE(s == Status::kError);
  return p.error();
}

TEST_CASE("http: parses a simple GET") {
  RequestHead h;
  const std::string wire =
      "GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: example.com:8000\r\nUser-Agent: t\r\n"
      "X-Empty:\r\nX-Pad: \t v a l \t\r\n\r\nBODY";
  REQUIRE(parseReq(wire, &h) == Status::kComplete);
  CHECK(h.method == "GET");
  CHECK(h.target == "/a/b?x=1&y=2");
  CHECK(h.path == "/a/b");
  CHECK(h.query == "x=1&y=2");
  CHECK(h.has_query);
  CHECK(h.host == "example.com:8000");
  CHECK(h.version == Version::kHttp11);
  CHECK(h.keep_alive);
  CHECK(h.body == BodyKind::kNone);
  REQUIRE(h.num_headers == 4);
  CHECK(h.headers[2].name == "X-Empty");
  CHECK(h.headers[2].value.empty());
  CHECK(h.headers[3].value == "v a l");
  CHECK(wire.substr(h.head_bytes) == "BODY");
  std::string_view ua;
  CHECK(h.find("user-agent", &ua));
  CHECK(ua == "t");
}

TEST_CASE("http: framing and connection semantics") {
  RequestHead h;
  REQUIRE(parseReq("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n", &h) ==
          Status::kComplete);
  CHECK(h.body == BodyKind::kContentLength);
  CHECK(h.content_length == 12);
  REQUIRE(parseReq("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n", &h) ==
          Status::kComplete);
  CHECK(h.body == BodyKind::kChunked);
  REQUIRE(parseReq("GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, Close\r\n\r\n", &h) ==
          Status::kComplete);
  CHECK_FALSE(h.keep_alive);
  REQUIRE(parseReq("GET / HTTP/1.0\r\n\r\n", &h) == Status::kComplete);
  CHECK_FALSE(h.keep_alive);
  CHECK(h.host.empty());
  REQUIRE(parseReq("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &h) == Status::kComplete);
  CHECK(h.keep_alive);
  REQUIRE(parseReq("PUT /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
                   &h) == Status::kComplete);
  CHECK(h.expect_continue);
  REQUIRE(parseReq("GET http://up.test:81/p?q HTTP/1.1\r\nHost: ignored\r\n\r\n", &h) ==
          Status::kComplete);
  CHECK(h.host == "up.test:81");
  CHECK(h.path == "/p");
  CHECK(h.query == "q");
  REQUIRE(parseReq("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", &h) == Status::kComplete);
  CHECK(h.method == "GET");
}

TEST_CASE("http: rejects request smuggling vectors") {
  // CL + TE together.
  CHECK(reqError("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n") ==
        ParseError::kBadRequest);
  CHECK(reqError("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n") ==
        ParseError::kBadRequest);
  // Duplicate / bad Content-Length.
  CHECK(reqError("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\n") ==
        ParseError::kBadRequest);
  CHECK(reqError("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4, 4\r\n\r\n") == ParseError::kBadRequest);
  CHECK(reqError("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +4\r\n\r\n") == ParseError::kBadRequest);
  CHECK(reqError("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n") == ParseError::kBadRequest);
  CHECK(reqError("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n") == ParseError::kBadRequest);
  CHECK(reqError("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n") ==
        ParseError::kBadRequest);
  CHECK(reqError("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n") == ParseError::kBadRequest);
  // Transfer-Encoding variants.
  CHECK(reqError("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n") ==
        ParseError::kNotImplemented);
  CHECK(reqError("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n") ==
        ParseError::kNotImplemented);
  CHECK(reqError("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n") ==
        ParseError::kNotImplemented);
  CHECK(reqError("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n") ==
        ParseError::kBadRequest);
  CHECK(reqError("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n") == ParseError::kBadRequest);
  // Whitespace before the colon, obs-fold, bad name characters.
  CHECK(reqError("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n") ==
        ParseError::kBadRequest);
  CHECK(reqError("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n") == ParseError::kBadRequest);
  CHECK(reqError("GET / HTTP/1.1\r\n Host: a\r\n\r\n") == ParseError::kBadRequest);
  CHECK(reqError("GET / HTTP/1.1\r\nHost: a\r\nX(A): b\r\n\r\n") == ParseError::kBadRequest);
  CHECK(reqError("GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n") == ParseError::kBadRequest);
  // Bare CR / bare LF / NUL / CTL.
  CHECK(reqError("GET / HTTP/1.1\nHost: a\r\n\r\n") == ParseError::kBadRequest);
  CHECK(reqError("GET / HTTP/1.1\r\nHost: a\n\r\n") == ParseError::kBadRequest);
  CHECK(reqError("GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n") == ParseError::kBadRequest);
  CHECK(reqError(std::string("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", 35)) ==
        ParseError::kBadRequest);
  CHECK(reqError("GET / HTTP/1.1\r\nHost: a\r\nX: a\x01" "b\r\n\r\n") == ParseError::kBadRequest);
  // Host: missing or duplicate in 1.1; junk in Host.
  CHECK(reqError("GET / HTTP/1.1\r\n\r\n") == ParseError::kBadRequest);
  CHECK(reqError("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n") == ParseError::kBadRequest);
  CHECK(reqError("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n") == ParseError::kBadRequest);
  // Request line.
  CHECK(reqError("GET  / HTTP/1.1\r\nHost: a\r\n\r\n") == ParseError::kBadRequest);
  CHECK(reqError("GET / HTTP/1.1 \r\nHost: a\r\n\r\n") == ParseError::kBadRequest);
  CHECK(reqError("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n") == ParseError::kBadRequest);
  CHECK(reqError("G(T / HTTP/1.1\r\nHost: a\r\n\r\n") == ParseError::kBadRequest);
  CHECK(reqError("GET / HTTX/1.1\r\nHost: a\r\n\r\n") == ParseError::kBadRequest);
  CHECK(reqError("GET / HTTP/2.0\r\nHost: a\r\n\r\n") == ParseError::kVersionNotSupported);
  CHECK(reqError("GET foo HTTP/1.1\r\nHost: a\r\n\r\n") == ParseError::kBadRequest);
  CHECK(reqError("GET * HTTP/1.1\r\nHost: a\r\n\r\n") == ParseError::kBadRequest);
  CHECK(reqError("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n") == ParseError::kNone);
}

TEST_CASE("http: limits") {
  Limits limits;
  limits.max_head_bytes = 256;
  limits.max_headers = 4;
  limits.max_uri_bytes = 64;
  std::string many = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (int i = 0; i < 4; ++i) {
    many += "X-" + std::to_string(i) + ": v\r\n";
  }
  CHECK(reqError(many + "\r\n", limits) == ParseError::kHeaderTooLarge);
  std::string big = "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(300, 'a') + "\r\n\r\n";
  CHECK(reqError(big, limits) == ParseError::kHeaderTooLarge);
  // Too large is reported before the head ends.
  CHECK(reqError(big.substr(0, 280), limits) == ParseError::kHeaderTooLarge);
  std::string long_uri = "GET /" + std::string(100, 'u') + " HTTP/1.1\r\nHost: a\r\n\r\n";
  CHECK(reqError(long_uri, limits) == ParseError::kUriTooLong);
  CHECK(reqError(long_uri.substr(0, 100), limits) == ParseError::kUriTooLong);
  CHECK(statusFor(ParseError::kHeaderTooLarge) == 431);
  CHECK(statusFor(ParseError::kUriTooLong) == 414);
}

TEST_CASE("http: every split point gives the same result") {
  const std::string wires[] = {
      "POST /upload?id=7 HTTP/1.1\r\nHost: up.test\r\nContent-Type: text/plain\r\n"
      "Content-Length: 5\r\nX-Forwarded-For: 1.2.3.4\r\n\r\nhello",
      "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
      "\r\nGET /x HTTP/1.0\r\n\r\n",
  };
  for (const std::string& wire : wires) {
    RequestHead whole;
    REQUIRE(parseReq(wire, &whole) == Status::kComplete);
    for (size_t split = 0; split <= wire.size(); ++split) {
      HeadParser p;
      RequestHead h;
      Status s = Status::kIncomplete;
      // Grow the buffer one byte at a time up to `split`, then hand over the rest at once.
      for (size_t n = 1; n <= split && s == Status::kIncomplete; ++n) {
        s = p.parseRequest(std::string_view(wire).substr(0, n), &h);
      }
      if (s == Status::kIncomplete) {
        s = p.parseRequest(wire, &h);
      }
      REQUIRE(s == Status::kComplete);
      CHECK(h.head_bytes == whole.head_bytes);
      CHECK(h.method == whole.method);
      CHECK(h.target == whole.target);
      CHECK(h.num_headers == whole.num_headers);
      CHECK(h.body == whole.body);
    }
  }
  // A rejected head is rejected wherever it is split.
  const std::string bad = "GET / HTTP/1.1\r\nHost: a\r\nX: 1\nY: 2\r\n\r\n";
  for (size_t n = 1; n <= bad.size(); ++n) {
    HeadParser p;
    RequestHead h;
    Status s = Status::kIncomplete;
    for (size_t k = 1; k <= n && s == Status::kIncomplete; ++k) {
      s = p.parseRequest(std::string_view(bad).substr(0, k), &h);
    }
    if (n == bad.size()) {
      CHECK(s == Status::kError);
    } else {
      CHECK(s != Status::kComplete);
    }
  }
}

TEST_CASE("http: parses responses") {
  HeadParser p;
  ResponseHead r;
  const std::string wire = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nServer: x\r\n\r\nabc";
  REQUIRE(p.parseResponse(wire, false, &r) == Status::kComplete);
  CHECK(r.status == 200);
  CHECK(r.reason == "OK");
  CHECK(r.body == BodyKind::kContentLength);
  CHECK(r.content_length == 3);
  CHECK(wire.substr(r.head_bytes) == "abc");

  p.reset();
  REQUIRE(p.parseResponse("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", true, &r) ==
          Status::kComplete);
  CHECK(r.body == BodyKind::kNone);  // response to HEAD
  p.reset();
  REQUIRE(p.parseResponse("HTTP/1.1 204 No Content\r\n\r\n", false, &r) == Status::kComplete);
  CHECK(r.body == BodyKind::kNone);
  p.reset();
  REQUIRE(p.parseResponse("HTTP/1.0 200 OK\r\n\r\n", false, &r) == Status::kComplete);
  CHECK(r.body == BodyKind::kUntilClose);
  CHECK_FALSE(r.keep_alive);
  p.reset();
  REQUIRE(p.parseResponse("HTTP/1.1 404\r\nTransfer-Encoding: chunked\r\n\r\n", false, &r) ==
          Status::kComplete);
  CHECK(r.status == 404);
  CHECK(r.body == BodyKind::kChunked);
  p.reset();
  CHECK(p.parseResponse("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                        false, &r) == Status::kError);
  p.reset();
  CHECK(p.parseResponse("HTTP/1.1 2000 OK\r\n\r\n", false, &r) == Status::kError);
  p.reset();
  CHECK(p.parseResponse("ICY 200 OK\r\n\r\n", false, &r) == Status::kError);
}

TEST_CASE("http: an HTTP/0.9 request line is refused at once, not waited on") {
  HeadParser p;
  RequestHead h;
  CHECK(p.parseRequest("GET /index.html\r\n", &h) == Status::kError);
  CHECK(p.error() == ParseError::kBadRequest);
  HeadParser q;
  CHECK(q.parseRequest("GET /index.html HTTP/1.1\r\nHost: a\r\n", &h) == Status::kIncomplete);
  HeadParser r;
  CHECK(r.parseRequest("GET /x HTTP/1.1\r\n", &h) == Status::kIncomplete);
}

}  // namespace
}  // namespace portico::http
