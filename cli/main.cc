// porticoctl: decK's workflow for Portico. Command-line habits follow decK's (-s/--state,
// exit 0 on success and 1 on error); commands not built yet say so and exit 1.
#include <malloc.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "cli/validate.h"
#include "common/flags.h"

namespace {

constexpr char kUsage[] =
    "usage: porticoctl <command> [options]\n"
    "\n"
    "Commands:\n"
    "  validate -s FILE [-s FILE...] [--json] [--quiet]\n"
    "      Check Kong declarative files (kong.yml, decK files; YAML or JSON; _format_version\n"
    "      1.1, 2.1 or 3.0) offline with the schemas the data plane and the Admin API use.\n"
    "      '-s -' reads stdin. Errors name the file's line; --json prints Kong's code-14\n"
    "      error body. Exit 0 when every file is valid, 1 otherwise.\n"
    "  version\n"
    "      Print the version.\n"
    "\n"
    "Planned (issue 15): diff, sync, dump, reset, ping, convert, openapi2config.\n";

int usageError(const std::string& line) {
  std::fprintf(stderr, "porticoctl: %s\n%s", line.c_str(), kUsage);
  return 1;
}

int validate(const std::vector<std::string_view>& args) {
  portico::cli::ValidateOptions options;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string_view a = args[i];
    if (a == "-s" || a == "--state") {
      if (i + 1 == args.size()) {
        return usageError(std::string(a) + " needs a file");
      }
      options.states.emplace_back(args[++i]);
    } else if (a.rfind("--state=", 0) == 0) {
      options.states.emplace_back(a.substr(8));
    } else if (a == "--json") {
      options.json = true;
    } else if (a == "--quiet" || a == "-q") {
      options.quiet = true;
    } else {
      return usageError("validate: unknown option '" + std::string(a) + "'");
    }
  }
  return portico::cli::runValidate(options, stdout, stderr);
}

}  // namespace

int main(int argc, char** argv) {
  // A short-lived process that builds and drops a large tree of small objects: keep freed
  // memory instead of handing it back and faulting it in again (page faults were a fifth of
  // `validate`'s time on burst.yml in our VM).
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
  mallopt(M_TOP_PAD, 64 << 20);
  if (argc < 2) {
    return usageError("no command given");
  }
  const std::string_view command = argv[1];
  std::vector<std::string_view> args(argv + 2, argv + argc);
  if (command == "-h" || command == "--help" || command == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (command == "version" || command == "--version") {
    std::printf("%s\n", portico::versionString("porticoctl").c_str());
    return 0;
  }
  for (std::string_view a : args) {
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    }
  }
  if (command == "validate") {
    return validate(args);
  }
  for (const char* planned : {"diff", "sync", "dump", "reset", "ping", "convert",
                              "openapi2config"}) {
    if (command == planned) {
      std::fprintf(stderr, "porticoctl: '%s' is not implemented yet (issue 15)\n", planned);
      return 1;
    }
  }
  return usageError("unknown command '" + std::string(command) + "'");
}
