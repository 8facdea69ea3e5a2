#include "common/flags.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string_view>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"

namespace portico {

namespace {

// --help: this binary's own flags (those defined in files ending in main.cc, such as
// control_plane/control_plane_main.cc, and in *_flags.cc files such as
// common/sync/cluster_flags.cc), each with the environment
// variable that also sets it. Abseil's own --help lists flags by file name matching the
// program name, which for "portico-dp" matched none.
void printHelp(const char* usage) {
  std::printf("%s\n\nFlags (each can also be set in the environment; the command line wins):\n",
              usage);
  std::map<std::string, const absl::CommandLineFlag*> own;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    const std::string file = flag->Filename();
    auto endsWith = [&file](std::string_view tail) {
      return file.size() >= tail.size() &&
             file.compare(file.size() - tail.size(), tail.size(), tail) == 0;
    };
    if (endsWith("main.cc") || endsWith("_flags.cc")) {
      own.emplace(std::string(name), flag);
    }
  }
  for (const auto& [name, flag] : own) {
    std::printf("  --%s (env PORTICO_%s, default %s)\n      %s\n", name.c_str(),
                absl::AsciiStrToUpper(name).c_str(),
                flag->DefaultValue().empty() ? "\"\"" : flag->DefaultValue().c_str(),
                flag->Help().c_str());
  }
  std::printf("  --version\n      Print the version and exit.\n");
}

}  // namespace

// Defined in git_commit.cc, which CMake writes at configure time (common/CMakeLists.txt).
extern const char kGitCommit[];

std::string versionString(const char* program) {
  return std::string(program) + " " + kPorticoVersion + " (commit " + kGitCommit +
         "); follows " + kKongApiVersion;
}

std::vector<std::string> parseFlagsWithEnv(int argc, char** argv, const char* usage) {
  absl::SetProgramUsageMessage(usage);
  const char* slash = argc > 0 ? std::strrchr(argv[0], '/') : nullptr;
  const char* program = argc > 0 ? (slash != nullptr ? slash + 1 : argv[0]) : "portico";
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--") {
      break;
    }
    if (arg == "--help" || arg == "-help" || arg == "-h" || arg == "--helpshort") {
      printHelp(usage);
      std::exit(0);
    }
    if (arg == "--version" || arg == "-version") {
      std::printf("%s\n", versionString(program).c_str());
      std::exit(0);
    }
  }
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
