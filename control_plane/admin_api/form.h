// Kong's Admin API form bodies (application/x-www-form-urlencoded) and URL decoding: dotted
// keys build records ("config.minute=5"), "a[]" appends, "a[2]" indexes, a repeated plain key
// becomes an array. Bounded: nesting as JSON bodies (config::kMaxJsonDepth), array indexes
// up to kMaxFormIndex.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/config/schema.h"

namespace portico::cp {

// "a[N]" indexes beyond this are refused: each would otherwise allocate N slots.
constexpr size_t kMaxFormIndex = 10000;

// %XX-decodes `in` (a malformed escape stays as is); '+' is a space when `plus_is_space`.
std::string urlDecode(std::string_view in, bool plus_is_space);

// The form as JSON, or nullopt with *error saying why: it nests deeper than
// config::kMaxJsonDepth, or indexes past kMaxFormIndex.
std::optional<config::Json> parseKongForm(const std::string& body, std::string* error);

}  // namespace portico::cp
