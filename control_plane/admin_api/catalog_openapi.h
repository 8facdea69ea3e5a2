// The OpenAPI documents ServiceHub's catalog versions hold: reading one from a request (a JSON
// object, or JSON or YAML text), the structural checks of OpenAPI 3.x that a renderer and the
// portal rely on (each problem named by its JSON Pointer in the document, and its line when
// the document came as text), and the words full-text search indexes from its operations.
// Pure functions, no I/O; the catalog endpoints (catalog_endpoints.cc) call them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/config/schema.h"

namespace portico::cp::catalog {

using config::Json;

// The largest document a version takes, as stored (its text, or an object's compact JSON).
inline constexpr uint64_t kMaxSpecBytes = 10ull << 20;
// The most words of a document kept for search (the service's search document is capped too).
inline constexpr size_t kMaxSpecTermBytes = 64 << 10;

struct OpenApiIssue {
  std::string pointer;  // RFC 6901 JSON Pointer into the document ("" = the whole document)
  std::string reason;
  int line = 0;  // 1-based, when the document was text; 0 otherwise

  // "at /paths/~1pets/get/responses: must be an object (line 12)"
  std::string describe() const;
};

// OpenAPI 3.0/3.1's structure, as far as readers of the catalog depend on it: `openapi` 3.x,
// `info` with title and version, `paths` (an object of path items whose keys start with
// '/'), operations as objects with string operationId/summary/description, string tags,
// unique operationIds, parameters with a name and a valid `in`, responses an object (required
// in 3.0), `servers` and `tags` arrays of objects. At most `max_issues`, in document order.
std::vector<OpenApiIssue> validateOpenApi(const Json& doc, size_t max_issues = 10);

// The document's searchable text: info.title, and per operation its path (split at
// punctuation, `{param}` braces dropped), operationId (also split at camelCase and
// punctuation), summary and tags (as written). At most kMaxSpecTermBytes, whole items.
std::string openApiSearchTerms(const Json& doc);

struct SpecRead {
  bool too_large = false;            // over kMaxSpecBytes: nothing else is set
  uint64_t bytes = 0;                // the stored size
  std::string text;                  // what is stored: the text given, or an object's compact JSON
  std::string format;                // "json" or "yaml"
  std::string terms;                 // openApiSearchTerms
  std::vector<OpenApiIssue> issues;  // parse error or validateOpenApi's; empty = valid
};

// A version's `spec` field: an OpenAPI document as a JSON object, or its text (JSON or
// YAML, parsed with common/declarative's limits). Any other JSON type is an issue at "".
SpecRead readSpec(const Json& value);

}  // namespace portico::cp::catalog
