// porticoctl's commands that talk to a control plane's Admin API, with decK 1.x's habits:
// `ping`, `dump`, `reset`, `diff` and `sync`. The desired state comes from declarative files
// through the offline loader (common/declarative), so both sides of a comparison are in the
// Admin API's stored form (the same schema code filled the defaults); the current state from
// paginated GETs. `sync` applies a plan (PUT by id, parents first; deletes children first)
// with bounded concurrency over keep-alive connections (cli/http_client.h).
#pragma once

#include <cstdio>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace portico::cli {

struct OnlineOptions {
  std::vector<std::string> states;       // -s/--state; "-" = stdin
  std::string kong_addr;                 // --kong-addr, else $PORTICO_ADDR, else the default
  std::vector<std::pair<std::string, std::string>> headers;  // --headers 'K:V'
  std::vector<std::string> select_tags;  // --select-tag
  std::string control_plane;             // --control-plane NAME ("" = the default group)
  std::string output = "kong.yaml";      // dump -o/--output-file ("-" = stdout)
  bool non_zero_exit_code = false;       // diff: exit 2 when there is drift
  bool force = false;                    // reset: no question
  int parallelism = 10;
  int timeout_s = 60;                    // per network wait
};

inline constexpr char kDefaultKongAddr[] = "http://127.0.0.1:8001";

// Reads `args` (after the command word) into `out`; returns an error line, or "" when fine.
std::string parseOnlineArgs(std::string_view command, const std::vector<std::string_view>& args,
                            OnlineOptions* out);

// Each returns the exit code: 0 success, 1 error; runDiff 2 on drift with non_zero_exit_code.
int runPing(const OnlineOptions& options, FILE* out, FILE* err);
int runDump(const OnlineOptions& options, FILE* out, FILE* err);
int runReset(const OnlineOptions& options, FILE* out, FILE* err);
int runDiff(const OnlineOptions& options, FILE* out, FILE* err);
int runSync(const OnlineOptions& options, FILE* out, FILE* err);

}  // namespace portico::cli
