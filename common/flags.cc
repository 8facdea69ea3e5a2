#include "common/flags.h"

#include <cstdio>
#include <cstdlib>

#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"

namespace portico {

std::vector<std::string> parseFlagsWithEnv(int argc, char** argv, const char* usage) {
  absl::SetProgramUsageMessage(usage);
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    const std::string env_name = "PORTICO_" + absl::AsciiStrToUpper(name);
    const char* value = std::getenv(env_name.c_str());
    if (value == nullptr) {
      continue;
    }
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      std::fprintf(stderr, "error: invalid value for %s (from %s): %s\n", std::string(name).c_str(),
                   env_name.c_str(), error.c_str());
      std::exit(2);
    }
  }
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  return std::vector<std::string>(positional.begin(), positional.end());
}

}  // namespace portico
