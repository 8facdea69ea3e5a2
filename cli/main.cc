// porticoctl: decK's workflow for Portico. Command-line habits follow decK's (-s/--state,
// exit 0 on success and 1 on error).

#include <malloc.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "cli/convert.h"
#include "cli/online.h"
#include "cli/openapi.h"
#include "cli/validate.h"
#include "common/flags.h"
#include "common/heap.h"

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
    "  openapi2config SPEC -o FILE [--format 3.0|1.1] [--select-tag TAG...] [--tags a,b]\n"
    "      Generate a Kong declarative file from an OpenAPI 3 spec (YAML or JSON) as Inso's\n"
    "      'generate config' (openapi-2-kong) does: one service, a regex route per operation,\n"
    "      x-kong-* extensions. -o FILE.json writes JSON, else YAML; '-' is stdin/stdout.\n"
    "  convert --from kong-gateway-2.x --to kong-gateway-3.x --input-file IN\n"
    "          [--output-file OUT] [--format yaml|json]\n"
    "      decK's convert: '~' before 2.x regex route paths, _format_version 3.0.\n"
    "  ping | dump [-o FILE] | reset [--force] | diff -s FILE... [--non-zero-exit-code]\n"
    "  | sync -s FILE...\n"
    "      decK's online commands against the Admin API (http:// only): ping prints the\n"
    "      version; dump writes the config as a _format_version 3.0 file (-o FILE, default\n"
    "      kong.yaml; FILE.json writes JSON; '-' stdout) that sync takes back unchanged;\n"
    "      diff prints the plan (creating/updating/deleting, changed fields, a Summary) and\n"
    "      with --non-zero-exit-code exits 2 on drift; sync applies it (parents first,\n"
    "      deletes last) and is idempotent; reset deletes every (selected) entity (--force\n"
    "      when not interactive). Common options: --kong-addr URL (default\n"
    "      http://127.0.0.1:8001, env PORTICO_ADDR), --headers 'K:V' (repeatable, e.g.\n"
    "      Kong-Admin-Token:...), --select-tag TAG (repeatable: only entities with all these\n"
    "      tags, and created ones get them), --control-plane NAME (a group other than the\n"
    "      default one), --parallelism N (default 10), --timeout SECONDS (default 60).\n"
    "      -s FILE is repeatable (files are merged), YAML or JSON, '-' stdin. Exit 0 on\n"
    "      success, 1 on error.\n"
    "  version\n"
    "      Print the version.\n";

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

// openapi2config and convert: files in, a file out (cli/openapi.h, cli/convert.h).
int fileCommand(std::string_view command, const std::vector<std::string_view>& args) {
  if (command == "convert") {
    absl::StatusOr<portico::cli::ConvertOptions> o = portico::cli::parseConvertArgs(args);
    return o.ok() ? portico::cli::runConvert(*o, stderr)
                  : usageError(std::string(o.status().message()));
  }
  absl::StatusOr<portico::cli::OpenApi2ConfigOptions> o =
      portico::cli::parseOpenApi2ConfigArgs(args);
  return o.ok() ? portico::cli::runOpenApi2Config(*o, stderr)
                : usageError(std::string(o.status().message()));
}

// ping, dump, reset, diff, sync: against the Admin API (cli/online.h).
int online(std::string_view command, const std::vector<std::string_view>& args) {
  portico::cli::OnlineOptions options;
  if (std::string problem = portico::cli::parseOnlineArgs(command, args, &options);
      !problem.empty()) {
    return usageError(problem);
  }
  if (command == "ping") {
    return portico::cli::runPing(options, stdout, stderr);
  }
  if (command == "dump") {
    return portico::cli::runDump(options, stdout, stderr);
  }
  if (command == "reset") {
    return portico::cli::runReset(options, stdout, stderr);
  }
  if (command == "diff") {
    return portico::cli::runDiff(options, stdout, stderr);
  }
  return portico::cli::runSync(options, stdout, stderr);
}

}  // namespace

int main(int argc, char** argv) {
  // A short-lived process that builds and drops a large tree of small objects: a heap
  // reserved ahead, backed by huge pages and never trimmed (page faults were a third of
  // `validate`'s time on burst.yml in our VM: 85 -> 55 ms of CPU with this).
  portico::reserveHugePageHeap(64 << 20);
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
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
  if (command == "openapi2config" || command == "convert") {
    return fileCommand(command, args);
  }
  if (command == "ping" || command == "dump" || command == "reset" || command == "diff" ||
      command == "sync") {
    return online(command, args);
  }
  return usageError("unknown command '" + std::string(command) + "'");
}
