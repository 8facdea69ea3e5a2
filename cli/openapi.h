// `porticoctl openapi2config`: an OpenAPI 3 document (YAML or JSON) to a Kong declarative
// file, with the rules of Inso's `generate config` (Kong/insomnia's openapi-2-kong):
//  - one service from the first server (top-level `servers`, then path-level ones), its URL's
//    variables filled with their defaults; named by `x-kong-name`, else info.title, else
//    "openapi", slugified as openapi-2-kong does (slugify with '_');
//  - one route per operation: the path as an anchored regex whose `{param}`s are named
//    captures `(?<param>[^/]+)` (3.0: `~` prefix and '-' in names made '_'), its method,
//    strip_path false, named "<service>-<x-kong-name or operationId>" or
//    "<service>-<path slug>-<method>";
//  - tags OAS3_import, OAS3file_<spec file name>, then the caller's, on every entity;
//  - `x-kong-plugin-<name>` on the document (service plugins), path items and operations
//    (route plugins; the operation's win over the path's by name), `x-kong-plugin-request-
//    validator` generated from parameters and the JSON request body, security requirements to
//    key-auth / basic-auth / openid-connect, `x-kong-service-defaults`,
//    `x-kong-route-defaults` (operation, else path, else document), and
//    `x-kong-upstream-defaults` or several servers: an upstream "<service>.upstream" with a
//    target per server, which the service's host names.
// Only local `$ref`s ("#/...") are followed, a bounded number of values deep; a cycle among the
// parts read here (a recursive request-body schema under request-validator) is refused.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "cli/document.h"

namespace portico::cli {

struct OpenApiOptions {
  std::string format_version = "3.0";  // "3.0" or "1.1" (openapi-2-kong's legacy output)
  std::string file_tag;                // spec file name for the OAS3file_ tag; "" for none
  std::vector<std::string> tags;       // more tags for every entity
};

// The declarative config, or an error of one line naming the spec's file, line and place.
absl::StatusOr<declarative::Json> openApiToKong(const Document& spec,
                                                const OpenApiOptions& options);

// openapi-2-kong's names: the npm `slugify` package with '_' as the replacement. Latin-1
// letters are transliterated as slugify's table does; other non-ASCII characters are dropped
// (slugify also transliterates Greek, Cyrillic and a few more scripts).
std::string slugify(std::string_view text);
// openapi-2-kong's pathVariablesToRegex: "/pets/{id}" -> "~/pets/(?<id>[^/]+)$" (kong3) or
// "/pets/(?<id>[^/]+)$".
std::string pathToRegex(std::string_view path, bool kong3);

struct OpenApi2ConfigOptions {
  std::string spec;            // "-" reads stdin
  std::string output = "-";    // "-" writes stdout; *.json is written as JSON, else YAML
  std::string format_version = "3.0";
  std::vector<std::string> tags;
};

// The command: converts, checks the result with the declarative loader (a problem there is a
// warning: the file may use plugins Portico lacks), writes it. Returns the exit code.
int runOpenApi2Config(const OpenApi2ConfigOptions& options, FILE* err);

// `SPEC -o FILE [--format 3.0|1.1] [--select-tag TAG]... [--tags a,b]` (--tags is Inso's
// comma-separated form). An error is the line to print before the usage text.
absl::StatusOr<OpenApi2ConfigOptions> parseOpenApi2ConfigArgs(
    const std::vector<std::string_view>& args);

}  // namespace portico::cli
