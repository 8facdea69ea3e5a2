// Responses the proxy produces itself (Kong's kong.response.error bodies). Every message is a
// named constant; nothing from an upstream error ever reaches the client verbatim.
#pragma once

#include <string>
#include <string_view>

namespace portico::dp {

inline constexpr std::string_view kMsgNoRoute = "no Route matched with those values";
inline constexpr std::string_view kMsgNoService = "no Service found with those values";
inline constexpr std::string_view kMsgBadGateway =
    "An invalid response was received from the upstream server";
inline constexpr std::string_view kMsgTimeout = "The upstream server is timed out";
inline constexpr std::string_view kMsgNameResolution = "name resolution failed";
inline constexpr std::string_view kMsgBadRequest = "Bad request";
inline constexpr std::string_view kMsgUseHttps = "Please use HTTPS protocol";
inline constexpr std::string_view kMsgHeaderTooLarge = "Request header or cookie too large";
inline constexpr std::string_view kMsgUriTooLong = "Request-URI too large";
inline constexpr std::string_view kMsgNotImplemented = "Not implemented";
inline constexpr std::string_view kMsgMethodNotAllowed = "Method not allowed";
inline constexpr std::string_view kMsgBodyTooLarge = "Request size limit exceeded";
inline constexpr std::string_view kMsgVersion = "HTTP version not supported";
inline constexpr std::string_view kServerHeader = "portico/0.1.0";
inline constexpr std::string_view kViaValue = "1.1 portico/0.1.0";

std::string_view reasonPhrase(int status);

// Appends a complete JSON error response `{"message":"<message>"}` to *out (the message is
// JSON-escaped).
// `date` is an IMF-fixdate (the worker caches one per second).
// `extra_headers` ("Name: value\r\n" lines) go before the body; with a Connection field among
// them, pass keep_alive=false and close after writing.
void appendLocalReply(int status, std::string_view message, bool keep_alive,
                      std::string_view date, std::string* out,
                      std::string_view extra_headers = {});

// `{"message":"<message>"}` alone, and its Content-Type.
std::string localReplyBody(std::string_view message);
inline constexpr std::string_view kLocalReplyType = "application/json; charset=utf-8";

// The same with an exact body (Kong's kong.response.exit); no Content-Type when
// `content_type` is empty.
void appendLocalBody(int status, std::string_view body, std::string_view content_type,
                     bool keep_alive, std::string_view date, std::string* out,
                     std::string_view extra_headers = {});

// Appends `in` JSON-escaped (no quotes).
void appendJsonEscaped(std::string_view in, std::string* out);

// Formats now as an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT").
std::string httpDateNow();

}  // namespace portico::dp
