// Helpers shared by the plugin tests.
#pragma once

#include <string>

#include "common/config/entities.h"

namespace portico::dp::testing {

// "<field>: <reason>" of the first schema error for a plugin entity, "" when it is valid.
inline std::string pluginSchemaError(const config::Json& plugin) {
  config::Json out;
  config::FieldErrors errors = config::processEntityJson("plugins", plugin, &out);
  return errors.empty() ? "" : errors.front().field + ": " + errors.front().reason;
}

// The plugin entity with the schema's defaults filled.
inline config::Json pluginDefaults(const config::Json& plugin) {
  config::Json out;
  config::processEntityJson("plugins", plugin, &out);
  return out;
}

inline std::string base64(const std::string& in) {
  static const char* kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  int val = 0, bits = -6;
  for (unsigned char c : in) {
    val = (val << 8) + c;
    bits += 8;
    while (bits >= 0) {
      out.push_back(kAlphabet[(val >> bits) & 0x3F]);
      bits -= 6;
    }
  }
  if (bits > -6) out.push_back(kAlphabet[((val << 8) >> (bits + 8)) & 0x3F]);
  while (out.size() % 4) out.push_back('=');
  return out;
}

}  // namespace portico::dp::testing
