// The HTTP router: Kong 3.x `traditional_compatible` semantics (hosts incl. wildcards and
// ports, methods, headers, SNIs, prefix and RE2 regex paths, Kong's 64-bit priority and UUID
// tie-break; see shared/reference/kong-admin-api-and-router.md §3). Built once per snapshot on
// the config thread, immutable afterwards, and matched concurrently by every worker with no
// locking and no heap allocation once the caller's scratch buffer has grown.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "common/http/http_parser.h"
#include "portico/config/v1/config.pb.h"

namespace re2 {
class RE2;
}

namespace portico::dp::router {

// What the router looks at; every view points into the request's buffer.
struct RequestView {
  std::string_view method;
  std::string_view host;   // Host header value as received ("h", "h:p", "[v6]:p"); empty if none
  std::string_view path;   // raw path without the query, not yet normalized
  uint16_t server_port = 0;  // the listener's port, used when Host carries none
  bool https = false;       // the connection is TLS
  // X-Forwarded-Proto: https from a trusted peer: counts as https for the https-only check
  // (426 / redirect), not for SNI matching.
  bool forwarded_https = false;
  std::string_view sni;    // TLS SNI; only consulted when https
  const http::Header* headers = nullptr;
  uint32_t num_headers = 0;
};

// Per-worker (or per-connection) scratch space reused across matches.
struct MatchScratch {
  std::string normalized;
};

struct Match {
  const config::v1::Route* route = nullptr;
  int32_t route_index = -1;                      // index in Snapshot::config().routes()
  const config::v1::Service* service = nullptr;  // nullptr: serviceless route (answer 503)
  int32_t service_index = -1;                    // index in Snapshot::config().services()
  std::string_view normalized_path;              // view into MatchScratch::normalized
  size_t strip_len = 0;  // leading bytes of normalized_path to strip upstream (0 = none)
  // The regex path that matched (start-anchored on normalized_path), for Kong's uri_captures;
  // null for a prefix or path-less match.
  const re2::RE2* regex = nullptr;
  // The route's protocols allow https but not http, and the request is not https: Kong
  // answers 426 or redirects (route.https_redirect_status_code) instead of proxying.
  bool https_required = false;
};

class Router {
 public:
  ~Router();

  // Compiles every HTTP route whose service is enabled (serviceless routes included). `config`
  // must outlive the router: matches point into it. Fails (kInvalidArgument, naming the route)
  // on a regex RE2 cannot compile or a route naming an unknown service.
  static absl::StatusOr<std::unique_ptr<const Router>> build(const config::v1::Snapshot& config);

  // Thread-safe. Returns false when no route matches (answer 404).
  bool match(const RequestView& request, MatchScratch* scratch, Match* out) const;

  // Number of compiled match entries (routes with several path lengths count once per group).
  size_t size() const;

 private:
  struct Entry;
  Router() = default;
  bool matchEntry(const Entry& e, const RequestView& request, std::string_view host,
                  uint32_t port, std::string_view path, Match* out) const;

  std::vector<Entry> entries_;  // sorted: priority desc, then UUID desc (Kong's order)
  // Candidate lists, each of ascending indexes into entries_ (so a merged walk keeps Kong's
  // order): entries with an exact (plain) host, by host; entries that need no specific host
  // (no hosts, or a wildcard host) whose every path starts with a known first segment
  // ("/svc/..." -> "svc"), by that segment; and the rest of the host-agnostic entries.
  absl::flat_hash_map<std::string, std::vector<uint32_t>> by_host_;
  absl::flat_hash_map<std::string, std::vector<uint32_t>> by_segment_;
  std::vector<uint32_t> any_host_;
};

// Kong's traditional_compatible priority for one (split) route; exposed for tests.
uint64_t computePriority(const config::v1::Route& route, size_t num_paths_in_group,
                         bool regex_group, size_t prefix_len);

// UUIDv5 in Kong's namespace for the index-th path group of a split route ("<id>#<index>").
std::string splitRouteUuid(std::string_view route_id, int index);

}  // namespace portico::dp::router
