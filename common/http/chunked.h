// Chunked transfer-coding (RFC 9112 §7.1): a strict incremental decoder that yields the body
// data as views into the input (no copies), and the encoder's chunk framing. The proxy decodes
// and re-encodes, so chunk extensions and trailers of one side never reach the other side
// verbatim (a smuggling vector when two parsers disagree on them).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace portico::http {

class ChunkedDecoder {
 public:
  enum class Result : uint8_t { kNeedMore, kDone, kError };

  struct Limits {
    uint32_t max_extension_bytes = 1024;  // per chunk header
    uint32_t max_trailer_bytes = 8 * 1024;
  };

  ChunkedDecoder() = default;
  explicit ChunkedDecoder(const Limits& limits) : limits_(limits) {}

  // Consumes a prefix of `in`, calling on_data(std::string_view) for each piece of body data
  // (views into `in`, valid only during the call). Returns kDone once the last chunk and the
  // trailer section are consumed; *consumed then tells where the next message starts.
  // kNeedMore: all of `in` was consumed. kError: malformed; the connection must be closed.
  template <class OnData>
  Result decode(std::string_view in, size_t* consumed, OnData&& on_data);

  bool done() const { return state_ == State::kDone; }
  void reset() { *this = ChunkedDecoder(limits_); }

 private:
  enum class State : uint8_t {
    kSize,         // hex digits
    kSizeBws,      // whitespace after the digits, before ';' or CR
    kExt,          // chunk extension, up to CR
    kSizeLf,       // LF after the size line's CR
    kData,
    kDataCr,
    kDataLf,
    kTrailerStart, // start of a trailer line, or CR of the final empty line
    kTrailer,      // inside a trailer field line
    kTrailerLf,    // LF of a trailer line
    kFinalLf,      // LF of the final empty line
    kDone,
  };

  Limits limits_;
  State state_ = State::kSize;
  uint64_t remaining_ = 0;  // data bytes left in the current chunk, or the size being parsed
  uint32_t digits_ = 0;
  uint32_t count_ = 0;      // extension / trailer bytes seen (limits)
};

// Writes "<hex size>\r\n" into out (at least 20 bytes); returns its length.
size_t formatChunkHeader(uint64_t size, char* out);
inline constexpr std::string_view kChunkEnd = "\r\n";
inline constexpr std::string_view kLastChunk = "0\r\n\r\n";

template <class OnData>
ChunkedDecoder::Result ChunkedDecoder::decode(std::string_view in, size_t* consumed,
                                              OnData&& on_data) {
  size_t i = 0;
  const size_t n = in.size();
  while (i < n) {
    const char c = in[i];
    switch (state_) {
      case State::kSize: {
        int d = (c >= '0' && c <= '9')   ? c - '0'
                : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                         : -1;
        if (d >= 0) {
          if (++digits_ > 15) {  // < 2^60: no overflow, and no sane body is larger
            return Result::kError;
          }
          remaining_ = remaining_ * 16 + static_cast<uint64_t>(d);
          ++i;
          break;
        }
        if (digits_ == 0) {
          return Result::kError;
        }
        if (c == '\r') {
          state_ = State::kSizeLf;
        } else if (c == ';') {
          state_ = State::kExt;
          count_ = 0;
        } else if (c == ' ' || c == '\t') {
          state_ = State::kSizeBws;
        } else {
          return Result::kError;
        }
        ++i;
        break;
      }
      case State::kSizeBws:
        if (c == ';') {
          state_ = State::kExt;
          count_ = 0;
        } else if (c != ' ' && c != '\t') {
          return Result::kError;  // "5 \r\n" or "5 x": whitespace only before an extension
        }
        ++i;
        break;
      case State::kExt:
        if (c == '\r') {
          state_ = State::kSizeLf;
        } else if (c == '\n' || c == '\0' || ++count_ > limits_.max_extension_bytes) {
          return Result::kError;
        }
        ++i;
        break;
      case State::kSizeLf:
        if (c != '\n') {
          return Result::kError;
        }
        ++i;
        digits_ = 0;
        if (remaining_ == 0) {
          state_ = State::kTrailerStart;
          count_ = 0;
        } else {
          state_ = State::kData;
        }
        break;
      case State::kData: {
        size_t take = n - i < remaining_ ? n - i : static_cast<size_t>(remaining_);
        on_data(in.substr(i, take));
        i += take;
        remaining_ -= take;
        if (remaining_ == 0) {
          state_ = State::kDataCr;
        }
        break;
      }
      case State::kDataCr:
        if (c != '\r') {
          return Result::kError;
        }
        state_ = State::kDataLf;
        ++i;
        break;
      case State::kDataLf:
        if (c != '\n') {
          return Result::kError;
        }
        state_ = State::kSize;
        ++i;
        break;
      case State::kTrailerStart:
        if (c == '\r') {
          state_ = State::kFinalLf;
        } else if (c == ' ' || c == '\t' || c == '\n' || c == ':') {
          return Result::kError;  // obs-fold, bare LF, empty field name
        } else {
          state_ = State::kTrailer;
          if (++count_ > limits_.max_trailer_bytes) {
            return Result::kError;
          }
        }
        ++i;
        break;
      case State::kTrailer:
        if (c == '\r') {
          state_ = State::kTrailerLf;
        } else if (c == '\n' || c == '\0' || ++count_ > limits_.max_trailer_bytes) {
          return Result::kError;
        }
        ++i;
        break;
      case State::kTrailerLf:
        if (c != '\n') {
          return Result::kError;
        }
        state_ = State::kTrailerStart;
        ++i;
        break;
      case State::kFinalLf:
        if (c != '\n') {
          return Result::kError;
        }
        state_ = State::kDone;
        *consumed = i + 1;
        return Result::kDone;
      case State::kDone:
        *consumed = i;
        return Result::kDone;
    }
  }
  *consumed = i;
  return state_ == State::kDone ? Result::kDone : Result::kNeedMore;
}

}  // namespace portico::http
