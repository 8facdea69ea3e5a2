// HTTP/2 frame vocabulary (RFC 9113 §4, §6, §7) shared by the cluster transport and its tests:
// frame types, flags, error codes, the connection preface, and the byte-order helpers that
// read and write frame headers.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace portico::cp::wire::h2 {

inline constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
inline constexpr size_t kFrameHeaderBytes = 9;

enum FrameType : uint8_t {
  kData = 0,
  kHeaders = 1,
  kPriority = 2,
  kRstStream = 3,
  kSettings = 4,
  kPushPromise = 5,
  kPing = 6,
  kGoaway = 7,
  kWindowUpdate = 8,
  kContinuation = 9,
};

inline constexpr uint8_t kFlagEndStream = 0x1;
inline constexpr uint8_t kFlagAck = 0x1;
inline constexpr uint8_t kFlagEndHeaders = 0x4;
inline constexpr uint8_t kFlagPadded = 0x8;
inline constexpr uint8_t kFlagPriority = 0x20;

enum ErrorCode : uint32_t {
  kNoError = 0,
  kProtocolError = 1,
  kInternalError = 2,
  kFlowControlError = 3,
  kStreamClosed = 5,
  kFrameSizeError = 6,
  kRefusedStream = 7,
  kCancel = 8,
  kCompressionError = 9,
  kEnhanceYourCalm = 0xb,
};

enum SettingId : uint16_t {
  kSettingHeaderTableSize = 0x1,
  kSettingEnablePush = 0x2,
  kSettingMaxConcurrentStreams = 0x3,
  kSettingInitialWindowSize = 0x4,
  kSettingMaxFrameSize = 0x5,
  kSettingMaxHeaderListSize = 0x6,
};

inline uint32_t read24(const uint8_t* p) {
  return (uint32_t{p[0]} << 16) | (uint32_t{p[1]} << 8) | p[2];
}
inline uint32_t read32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}
inline void put24(char* p, uint32_t v) {
  p[0] = static_cast<char>(v >> 16);
  p[1] = static_cast<char>(v >> 8);
  p[2] = static_cast<char>(v);
}
inline void put32(char* p, uint32_t v) {
  p[0] = static_cast<char>(v >> 24);
  p[1] = static_cast<char>(v >> 16);
  p[2] = static_cast<char>(v >> 8);
  p[3] = static_cast<char>(v);
}
inline void append32(std::string& out, uint32_t v) {
  char b[4];
  put32(b, v);
  out.append(b, 4);
}

// Writes a frame header (the reserved bit of the stream id cleared) into `p` (9 bytes).
inline void putFrameHeader(char* p, uint32_t length, uint8_t type, uint8_t flags,
                           uint32_t stream) {
  put24(p, length);
  p[3] = static_cast<char>(type);
  p[4] = static_cast<char>(flags);
  put32(p + 5, stream & 0x7fffffff);
}
inline void appendFrameHeader(std::string& out, uint32_t length, uint8_t type, uint8_t flags,
                              uint32_t stream) {
  char h[kFrameHeaderBytes];
  putFrameHeader(h, length, type, flags, stream);
  out.append(h, kFrameHeaderBytes);
}
// A whole frame whose payload is one 32-bit value: WINDOW_UPDATE, RST_STREAM.
inline std::string frame32(uint8_t type, uint32_t stream, uint32_t value) {
  std::string s;
  appendFrameHeader(s, 4, type, 0, stream);
  append32(s, value);
  return s;
}

}  // namespace portico::cp::wire::h2
