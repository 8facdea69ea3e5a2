// The Admin API's endpoint table: which handler answers which path, and for which methods.
// Endpoint families (endpoints.h) append their entries once, at AdminApi construction; a
// request takes the first entry whose pattern matches its path. The same entries serve the
// root and, unless root-only, every /control-planes/{id}/ prefix. Immutable once built, so
// worker threads read it without a lock.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "control_plane/admin_api/admin_api.h"

namespace portico::cp::admin {

// The methods an endpoint serves, as a bit set. HEAD is not served (Kong maps it to GET).
enum Method : uint8_t {
  kGet = 1 << 0,
  kPost = 1 << 1,
  kPut = 1 << 2,
  kPatch = 1 << 3,
  kDelete = 1 << 4,
};
using Methods = uint8_t;

// The bit of an upper-case method name; 0 for any other (HEAD, OPTIONS, unknown).
Methods methodBit(std::string_view method);
// Kong's Allow header for a preflight: the methods and OPTIONS, alphabetical
// ("DELETE, GET, OPTIONS, PATCH, PUT").
std::string allowHeader(Methods methods);

// Where an entry is reachable: kAnyGroup at the root and under /control-planes/{id}/;
// kRootOnly with the request's whole path only (process-wide endpoints, and those that
// name a control plane themselves).
enum class Scope { kAnyGroup, kRootOnly };

// Who answers a method outside the entry's set: the table (405 "Method not allowed"), or the
// handler, for endpoints whose other checks (a missing parent, a Konnect-shaped error) have
// always come first. The set still tells a preflight what is allowed.
enum class MethodCheck { kTable, kHandler };

// One request as its handler sees it.
struct EndpointCall {
  const ApiRequest& request;
  const std::vector<std::string>& segments;  // decoded, after any /control-planes/{id}
  const std::map<std::string, std::string>& query;
  std::vector<std::string> params;  // what the pattern's {...} segments matched, in order
  std::string group;                // the control plane's name ("default" at the root)
  std::string prefix;               // links start with it: "" or "/control-planes/{id}"

  const std::string& method() const { return request.method; }
};

using EndpointHandler = std::function<ApiResponse(const EndpointCall&)>;

struct Endpoint {
  Methods methods = 0;
  std::vector<std::string> pattern;  // literal segments; "" stands for a {...} segment
  EndpointHandler handler;
  Scope scope = Scope::kAnyGroup;
  MethodCheck method_check = MethodCheck::kTable;
};

class EndpointTable {
 public:
  // Appends an entry; the first match wins, so a literal path goes before a pattern that
  // would also match it. `pattern` is '/'-separated segments, "{name}" matching any one
  // ("services/{service}/routes"); "" is the root path.
  void add(Methods methods, std::string_view pattern, EndpointHandler handler,
           Scope scope = Scope::kAnyGroup, MethodCheck check = MethodCheck::kTable);

  // The first entry matching `segments` and reachable there (`root`: not under a
  // /control-planes/{id}/ prefix), with *params filled; nullptr when none does.
  const Endpoint* find(const std::vector<std::string>& segments, bool root,
                       std::vector<std::string>* params) const;

  size_t size() const { return endpoints_.size(); }

 private:
  std::vector<Endpoint> endpoints_;
};

// The answer of the matched `endpoint` to `call`: its handler's, or 405 when the table
// checks methods and the call's is not in the set.
ApiResponse dispatch(const Endpoint& endpoint, const EndpointCall& call);

}  // namespace portico::cp::admin
