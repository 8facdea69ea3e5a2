#include "cli/validate.h"

#include <iostream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/declarative/declarative.h"

namespace portico::cli {
namespace {

std::string summary(const config::v1::Snapshot& s) {
  std::string out;
  const auto add = [&out](int n, const char* what) {
    if (n > 0) {
      absl::StrAppend(&out, out.empty() ? "" : ", ", n, " ", what);
    }
  };
  add(s.services_size(), "services");
  add(s.routes_size(), "routes");
  add(s.consumers_size(), "consumers");
  add(s.plugins_size(), "plugins");
  add(s.upstreams_size(), "upstreams");
  add(s.targets_size(), "targets");
  add(s.certificates_size(), "certificates");
  add(s.snis_size(), "snis");
  add(s.ca_certificates_size(), "ca_certificates");
  add(s.keyauth_credentials_size() + s.basicauth_credentials_size() + s.jwt_secrets_size() +
          s.hmacauth_credentials_size() + s.acls_size(),
      "credentials");
  return out.empty() ? "no entities" : out;
}

// A loaded file is not freed: the process exits right after (as compilers skip freeing
// their trees), and freeing a file's JSON trees and snapshot was ~14% of a validate. Held
// through a never-destroyed static, so leak checkers see it reachable.
void keepUntilExit(declarative::LoadResult result) {
  static auto* const kept = new std::vector<std::shared_ptr<declarative::LoadResult>>;
  kept->push_back(std::make_shared<declarative::LoadResult>(std::move(result)));
}

}  // namespace

int runValidate(const ValidateOptions& options, FILE* out, FILE* err) {
  if (options.states.empty()) {
    std::fprintf(err, "porticoctl validate: give at least one file with -s/--state\n");
    return 1;
  }
  int status = 0;
  declarative::LoadOptions load_options;
  load_options.keep_scratch = true;
  for (const std::string& state : options.states) {
    declarative::LoadResult r;
    std::string name = state;
    if (state == "-") {
      name = "<stdin>";
      std::string text;
      text.reserve(1 << 16);
      char buf[1 << 16];
      size_t n;
      // Read at most the limit plus one byte, so a huge stream is refused without holding it.
      while ((n = std::fread(buf, 1, sizeof(buf), stdin)) > 0 &&
             text.size() <= declarative::kMaxFileBytes) {
        text.append(buf, n);
      }
      r = declarative::loadDeclarative(text, load_options);
    } else {
      r = declarative::loadDeclarativeFile(state, load_options);
    }
    if (r.ok()) {
      if (!options.quiet) {
        std::fprintf(out, "%s: valid (_format_version %s; %s)\n", name.c_str(),
                     r.format_version.c_str(), summary(r.snapshot).c_str());
      }
      keepUntilExit(std::move(r));
      continue;
    }
    status = 1;
    if (options.json) {
      std::fprintf(out, "%s\n", r.errorBody().dump(2).c_str());
    } else {
      std::fputs(r.describe(name, 200).c_str(), err);
    }
  }
  return status;
}

}  // namespace portico::cli
