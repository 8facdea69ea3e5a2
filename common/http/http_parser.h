// Strict, zero-copy, incremental HTTP/1.1 head parser (requests and responses) shared by the
// data plane's proxy and the status/admin listeners. Parsed fields are views into the caller's
// buffer; the parser never allocates. Anything that could be read two ways by two HTTP agents
// (request smuggling vectors: CL+TE, duplicate CL, obs-fold, bare CR/LF, whitespace before ':')
// is rejected rather than repaired.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace portico::http {

struct Header {
  std::string_view name;
  std::string_view value;
};

enum class Version : uint8_t { kHttp10, kHttp11 };

// Why a head was rejected; statusFor() gives the HTTP status to answer with.
enum class ParseError : uint8_t {
  kNone,
  kBadRequest,         // 400: malformed syntax, smuggling vector, bad framing
  kHeaderTooLarge,     // 431: head larger than Limits::max_head_bytes or too many fields
  kUriTooLong,         // 414
  kNotImplemented,     // 501: transfer-coding other than "chunked"
  kVersionNotSupported,// 505
};
int statusFor(ParseError error);
std::string_view describe(ParseError error);

// How the message body is delimited (RFC 9112 §6.3).
enum class BodyKind : uint8_t { kNone, kContentLength, kChunked, kUntilClose };

struct Limits {
  uint32_t max_head_bytes = 32 * 1024;  // request/status line + all fields + CRLFs
  uint32_t max_headers = 100;           // at most kMaxHeaders
  uint32_t max_uri_bytes = 8 * 1024;
};

inline constexpr uint32_t kMaxHeaders = 128;

// Fields common to requests and responses. Headers are in wire order.
struct MessageHead {
  Version version = Version::kHttp11;
  std::array<Header, kMaxHeaders> headers;
  uint32_t num_headers = 0;
  BodyKind body = BodyKind::kNone;
  uint64_t content_length = 0;  // when body == kContentLength
  bool keep_alive = true;       // after applying Connection and the version default
  bool connection_upgrade = false;
  uint32_t head_bytes = 0;      // bytes of the buffer the head used (incl. final CRLF)

  // First field with this name (case-insensitive), or empty view + false.
  bool find(std::string_view name, std::string_view* value) const;
};

struct RequestHead : MessageHead {
  std::string_view method;
  std::string_view target;  // as received
  std::string_view path;    // target without query (for absolute-form: the path part)
  std::string_view query;   // without '?'; empty if none
  bool has_query = false;
  std::string_view host;    // Host header (or authority of an absolute-form target)
  bool expect_continue = false;
};

struct ResponseHead : MessageHead {
  int status = 0;
  std::string_view reason;
};

// Parses one message head out of a buffer that grows as bytes arrive. Call parse*() again with
// the same (longer) buffer after each read; the parser remembers how far it has scanned for the
// end of the head, so total work is linear in the head size. reset() before the next message.
class HeadParser {
 public:
  enum class Status : uint8_t { kIncomplete, kComplete, kError };

  explicit HeadParser(const Limits& limits = Limits()) : limits_(limits) {}

  // `buf` starts at the first byte of the message (leading CRLFs between pipelined requests
  // are skipped). On kComplete `out` views into `buf` and out->head_bytes says where the body
  // starts.
  Status parseRequest(std::string_view buf, RequestHead* out);
  // `request_method_head`: the request was HEAD (no body follows whatever the fields say).
  Status parseResponse(std::string_view buf, bool request_method_head, ResponseHead* out);

  ParseError error() const { return error_; }
  void reset() {
    scanned_ = 0;
    error_ = ParseError::kNone;
  }

 private:
  // Returns the size of the head (through CRLFCRLF) once complete, 0 while incomplete.
  size_t findEnd(std::string_view buf, size_t skip);
  Status fail(ParseError e) {
    error_ = e;
    return Status::kError;
  }

  Limits limits_;
  size_t scanned_ = 0;
  ParseError error_ = ParseError::kNone;
};

// ASCII case-insensitive equality.
bool equalsIgnoreCase(std::string_view a, std::string_view b);

// `s` without leading and trailing optional whitespace (spaces and tabs, RFC 9110 OWS).
std::string_view trimOws(std::string_view s);

}  // namespace portico::http
