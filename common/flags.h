// Command-line handling shared by every binary: each Abseil flag can also be set from the
// environment as PORTICO_<FLAG_IN_UPPER_CASE>; the command line wins over the environment.
#pragma once

#include <string>
#include <vector>

namespace portico {

inline constexpr char kPorticoVersion[] = "0.1.0";
// The Kong API the Admin API, the entities and the declarative format follow.
inline constexpr char kKongApiVersion[] = "the Kong Gateway 3.x Admin API";

// "<program> <version> (commit <git commit at configure time>); follows <Kong API>".
std::string versionString(const char* program);

// Applies PORTICO_* environment variables, then parses argv. On a bad value prints one line
// naming the flag and exits with status 2. Returns the positional arguments (argv[0] first).
// --help lists the binary's own flags (those of its main.cc and the cluster-TLS flags) with
// their environment names;
// --version prints versionString(). Both exit 0.
std::vector<std::string> parseFlagsWithEnv(int argc, char** argv, const char* usage);

}  // namespace portico
