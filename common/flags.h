// Command-line handling shared by every binary: each Abseil flag can also be set from the
// environment as PORTICO_<FLAG_IN_UPPER_CASE>; the command line wins over the environment.
#pragma once

#include <string>
#include <vector>

namespace portico {

// Applies PORTICO_* environment variables, then parses argv. On a bad value prints one line
// naming the flag and exits with status 2. Returns the positional arguments (argv[0] first).
std::vector<std::string> parseFlagsWithEnv(int argc, char** argv, const char* usage);

}  // namespace portico
