// Schema pieces the four *-log plugins share (linked into portico_plugin_schemas: CP and DP).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/config/entities.h"

namespace portico::dp::plugins::logging {

// custom_fields_by_lua (Kong's typedefs.lua_code, a map of field -> Lua expression). Portico
// runs no Lua, so a non-empty map is refused rather than ignored (a log line missing fields
// the operator asked for would pass unnoticed).
config::Field luaCodeField();
inline constexpr const char* kLuaRefused =
    "Lua code is not supported by Portico: custom_fields_by_lua must be empty or null";

// A logging plugin's schema: Kong's typedefs.protocols (any protocol, the HTTP ones by default;
// this DP proxies HTTP only, so a stream protocol has nothing to log).
config::PluginSchema logPluginSchema(std::string name, int32_t priority,
                                     std::vector<config::Field> fields);

// socket.url's parse of http-log's endpoint, with Kong's typedefs.url messages ("missing host
// in url", "missing scheme in url"); Portico sends over http and https only, so another
// scheme is refused here too. Returns "" when valid.
struct Url {
  std::string scheme;
  std::string userinfo;  // "" for none
  std::string host;      // without brackets for IPv6
  uint16_t port = 0;     // the scheme's default when absent
  std::string path;      // "/" when absent; the query is not part of it
};
std::string parseUrl(const std::string& text, Url* out);

}  // namespace portico::dp::plugins::logging
