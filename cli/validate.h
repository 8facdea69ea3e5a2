// `porticoctl validate`: checks declarative files offline with the loader the data plane runs
// (common/declarative), so a file that validates here is a file portico-dp and the control
// plane accept. decK's habits: -s/--state FILE (repeatable, "-" = stdin), YAML or JSON.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

namespace portico::cli {

struct ValidateOptions {
  std::vector<std::string> states;  // files; "-" reads stdin
  bool json = false;                // print Kong's code-14 error body instead of lines
  bool quiet = false;               // nothing on success
};

// Validates every file (each on its own). Writes a summary per valid file to `out` and the
// errors, one line each with the file's line number, to `err`. Returns the exit code: 0 when
// all are valid, 1 otherwise.
int runValidate(const ValidateOptions& options, FILE* out, FILE* err);

}  // namespace portico::cli
