// Kong's route regex dialect mapped onto RE2: shared by config validation (CP write, DP apply)
// and the data-plane router, so what validation accepts is exactly what the router compiles.
#pragma once

#include <string>
#include <string_view>

namespace portico::config {

// The RE2 pattern for a Kong regex path (the text after "~"): Kong/PCRE named groups
// "(?<name>...)" become RE2's "(?P<name>...)" (lookbehinds "(?<=" / "(?<!" are left alone, so
// RE2 still rejects them), and the pattern is anchored at the start only, as Kong matches it.
std::string translateRouteRegex(std::string_view kong_regex);

}  // namespace portico::config
