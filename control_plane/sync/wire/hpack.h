// HPACK (RFC 7541) for the control plane's own gRPC-over-HTTP/2 server: a decoder for the
// request header blocks real grpc++ clients send (nghttp2's inflater: dynamic table, Huffman,
// table size updates) and a few append helpers that encode response headers and trailers
// without any indexing. One HpackDecoder lives in every DP connection: 16 bytes until the
// connection's first header block, then nghttp2's state (measured in hpack_test), and its
// table memory never exceeds the advertised table size.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

struct nghttp2_hd_inflater;

namespace portico::cp::wire {

// HPACK decoder of one HTTP/2 connection (RFC 7541): nghttp2's inflater, created on the first
// header block, with our header list limit and error mapping. Keeps the dynamic table across
// header blocks. Not thread-safe: it belongs to the connection's event loop.
class HpackDecoder {
 public:
  // `max_table_size`: the SETTINGS_HEADER_TABLE_SIZE we advertise (default 4096); a dynamic
  // table size update above it is a decoding error.
  explicit HpackDecoder(uint32_t max_table_size = 4096);

  // Decodes one complete header block (HEADERS payload + CONTINUATION payloads, concatenated,
  // padding/priority already removed). Calls emit(name, value) for each field in order; the
  // views are valid only during that call.
  // Fails with absl::InvalidArgumentError on malformed input (bad integer, index 0 or out of
  // range, bad Huffman including EOS or bad padding, string longer than the block, table size
  // update not at the start of a block or above the maximum, ...), and with
  // absl::ResourceExhaustedError when the decoded header list size (RFC 9113 §6.5.2:
  // name+value+32 per field) exceeds max_header_list_bytes. Fields emitted before a failure
  // stay emitted. After a failure the connection must be closed (COMPRESSION_ERROR); the
  // decoder's table may be out of sync with the peer's.
  absl::Status decode(
      std::string_view block,
      const std::function<void(std::string_view name, std::string_view value)>& emit,
      size_t max_header_list_bytes = 16384);

  // Bytes the dynamic table holds per RFC (sum of name+value+32), and its entry count; for tests.
  size_t tableSize() const;
  size_t tableEntries() const;

 private:
  struct InflaterDeleter {
    void operator()(nghttp2_hd_inflater* inflater) const;
  };
  absl::Status ensureInflater();

  std::unique_ptr<nghttp2_hd_inflater, InflaterDeleter> inflater_;  // null until first use
  uint32_t settings_max_;  // what we advertised; updates may not exceed it
};

// Encoder helpers for responses. We never index (so we keep no encoder table, and the peer's
// decoder table is never touched) and never Huffman-encode.

// Appends an HPACK integer with an N-bit prefix (1 <= prefix_bits <= 8); `first_byte` holds
// the pattern bits above the prefix (bits inside the prefix are ignored).
void hpackAppendInteger(std::string& out, uint64_t value, int prefix_bits, uint8_t first_byte);
// Appends "indexed header field" for a static-table index (e.g. 8 = ":status: 200").
void hpackAppendIndexed(std::string& out, uint32_t index);
// Appends a literal header field without indexing, with a literal (new) name.
void hpackAppendLiteral(std::string& out, std::string_view name, std::string_view value);
// Appends a literal header field without indexing whose name is static-table entry `name_index`.
void hpackAppendLiteralIndexedName(std::string& out, uint32_t name_index, std::string_view value);

}  // namespace portico::cp::wire
