// Table-driven router tests: hosts (exact, wildcard, port), methods, headers, prefix and regex
// paths, and Kong's traditional_compatible priority order.
#include "data_plane/router/router.h"

#include <catch2/catch.hpp>

namespace portico::dp::router {
namespace {

struct R {
  std::string name;
  std::vector<std::string> hosts, paths, methods;
  std::vector<std::pair<std::string, std::vector<std::string>>> headers;
  int regex_priority = 0;
  bool strip = true;
};

config::v1::Snapshot makeConfig(const std::vector<R>& routes) {
  config::v1::Snapshot s;
  auto* svc = s.add_services();
  svc->set_id("svc");
  svc->set_host("upstream.test");
  svc->set_port(80);
  svc->set_enabled(true);
  int i = 0;
  for (const R& r : routes) {
    auto* route = s.add_routes();
    char id[40];
    std::snprintf(id, sizeof(id), "00000000-0000-4000-8000-%012d", ++i);
    route->set_id(id);
    route->set_name(r.name);
    route->add_protocols("http");
    route->add_protocols("https");
    for (auto& h : r.hosts) route->add_hosts(h);
    for (auto& p : r.paths) route->add_paths(p);
    for (auto& m : r.methods) route->add_methods(m);
    for (auto& [n, vs] : r.headers) {
      auto* hm = route->add_headers();
      hm->set_name(n);
      for (auto& v : vs) hm->add_values(v);
    }
    route->set_regex_priority(r.regex_priority);
    route->set_strip_path(r.strip);
    route->set_service_id("svc");
  }
  return s;
}

struct Req {
  std::string method = "GET", host, path;
  std::vector<http::Header> headers;
};

std::string matchName(const Router& router, const Req& q, size_t* strip = nullptr) {
  RequestView v;
  v.method = q.method;
  v.host = q.host;
  v.path = q.path;
  v.server_port = 8000;
  v.headers = q.headers.data();
  v.num_headers = static_cast<uint32_t>(q.headers.size());
  MatchScratch scratch;
  Match m;
  if (!router.match(v, &scratch, &m)) {
    return "<none>";
  }
  if (strip) *strip = m.strip_len;
  return m.route->name();
}

TEST_CASE("router: table") {
  const config::v1::Snapshot cfg = makeConfig({
      {.name = "host", .hosts = {"a.test"}},
      {.name = "host_port", .hosts = {"p.test:8443"}},
      {.name = "wild_left", .hosts = {"*.w.test"}},
      {.name = "wild_right", .hosts = {"w.*"}},
      {.name = "prefix", .paths = {"/api"}},
      {.name = "prefix_longer", .paths = {"/api/v2"}},
      {.name = "regex", .paths = {"~/api/users/\\d+$"}},
      {.name = "regex_hi", .paths = {"~/api/users/1"}, .regex_priority = 10},
      {.name = "methods", .paths = {"/m"}, .methods = {"POST"}},
      {.name = "header", .paths = {"/h"}, .headers = {{"X-Env", {"prod"}}}},
      {.name = "header_re", .paths = {"/h"}, .headers = {{"x-env", {"~*^stag"}}}},
      {.name = "host_and_path", .hosts = {"a.test"}, .paths = {"/only"}},
      {.name = "re_optional", .paths = {"~/opt/ab?c$"}},
      {.name = "re_alt", .paths = {"~/alt1|/alt2"}},
  });
  auto router = Router::build(cfg);
  REQUIRE(router.ok());
  const Router& r = **router;
  struct Case {
    Req req;
    std::string want;
  } cases[] = {
      {{.host = "a.test", .path = "/"}, "host"},
      {{.host = "a.test:9999", .path = "/"}, "host"},
      {{.host = "A.test", .path = "/"}, "<none>"},  // hosts are case-sensitive (Kong)
      {{.host = "p.test:8443", .path = "/"}, "host_port"},
      {{.host = "p.test", .path = "/"}, "<none>"},  // no port in Host -> listener port 8000
      {{.host = "x.w.test", .path = "/"}, "wild_left"},
      {{.host = "x.y.w.test", .path = "/"}, "wild_left"},
      {{.host = "w.test", .path = "/"}, "wild_right"},
      {{.host = "w.org:1", .path = "/"}, "wild_right"},
      {{.host = "z.test", .path = "/api"}, "prefix"},
      {{.host = "z.test", .path = "/apix"}, "prefix"},  // plain byte prefix, not segments
      {{.host = "z.test", .path = "/api/v2/x"}, "prefix_longer"},
      {{.host = "z.test", .path = "/api/users/42"}, "regex"},
      {{.host = "z.test", .path = "/api/users/1"}, "regex_hi"},
      {{.host = "z.test", .path = "/api/users/42/x"}, "prefix"},
      {{.host = "z.test", .path = "/a%70i/v2"}, "prefix_longer"},  // normalized first
      {{.method = "POST", .host = "z.test", .path = "/m"}, "methods"},
      {{.method = "GET", .host = "z.test", .path = "/m"}, "<none>"},
      {{.host = "z.test", .path = "/h", .headers = {{"x_env", "PROD"}}}, "header"},
      {{.host = "z.test", .path = "/h", .headers = {{"X-Env", "staging"}}}, "header_re"},
      {{.host = "z.test", .path = "/h", .headers = {{"X-Env", "dev"}}}, "<none>"},
      {{.host = "a.test", .path = "/only/x"}, "host_and_path"},
      {{.host = "", .path = "/x"}, "<none>"},
      {{.host = "z.test", .path = "/opt/ac"}, "re_optional"},  // literal prefilter is "/opt/a"
      {{.host = "z.test", .path = "/opt/abc"}, "re_optional"},
      {{.host = "z.test", .path = "/alt2"}, "re_alt"},  // alternation: no prefilter
  };
  for (const Case& c : cases) {
    INFO(c.req.method << " " << c.req.host << c.req.path);
    CHECK(matchName(r, c.req) == c.want);
  }
}

TEST_CASE("router: strip length and priority helpers") {
  // The router points into its config, which must outlive it.
  const config::v1::Snapshot cfg = makeConfig({{.name = "p", .paths = {"/p"}},
                                               {.name = "root", .paths = {"/"}},
                                               {.name = "nostrip", .paths = {"/n"}, .strip = false}});
  auto router = Router::build(cfg);
  REQUIRE(router.ok());
  size_t strip = 99;
  CHECK(matchName(**router, {.host = "h", .path = "/p/x"}, &strip) == "p");
  CHECK(strip == 2);
  CHECK(matchName(**router, {.host = "h", .path = "/x"}, &strip) == "root");
  CHECK(strip == 0);  // stripping "/" strips nothing
  CHECK(matchName(**router, {.host = "h", .path = "/n/x"}, &strip) == "nostrip");
  CHECK(strip == 0);

  config::v1::Route route;
  route.add_hosts("a.test");
  route.add_methods("GET");
  const uint64_t p = computePriority(route, 1, false, 4);
  CHECK((p >> 61) == 3);
  CHECK(((p >> 60) & 1) == 1);
  CHECK((p & ((1u << 19) - 1)) == 4);
  CHECK(splitRouteUuid("e8fb37f1-102d-461e-9c51-6608a6bb8101", 1).size() == 36);
  CHECK(splitRouteUuid("e8fb37f1-102d-461e-9c51-6608a6bb8101", 1)[14] == '5');
}

TEST_CASE("router: build errors and disabled services") {
  config::v1::Snapshot cfg = makeConfig({{.name = "bad", .paths = {"~/(unclosed"}}});
  auto bad = Router::build(cfg);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().code() == absl::StatusCode::kInvalidArgument);

  cfg = makeConfig({{.name = "r", .paths = {"/r"}}});
  cfg.mutable_services(0)->set_enabled(false);
  auto router = Router::build(cfg);
  REQUIRE(router.ok());
  CHECK((*router)->size() == 0);

  cfg = makeConfig({{.name = "r", .paths = {"/r"}}});
  cfg.mutable_routes(0)->set_service_id("missing");
  CHECK_FALSE(Router::build(cfg).ok());
}

}  // namespace
}  // namespace portico::dp::router
