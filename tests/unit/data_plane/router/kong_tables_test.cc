// Table-driven checks of Kong 3.x traditional_compatible semantics, one row per rule:
//  - every priority rule of the compat bit layout (reference §3.2) and its tie-breaks;
//  - every strip_path × path_handling row of Kong's path-handling fixture, in the 3.x version
//    the conformance file cites (re-expressed here as data, v0 column; under
//    traditional_compatible path_handling v1 behaves as v0, which is checked too);
//  - SNI, https-only and the header/host edge cases the conformance sample leaves out.
#include <catch2/catch.hpp>

#include "data_plane/router/path.h"
#include "data_plane/router/router.h"

namespace portico::dp::router {
namespace {

struct Rt {
  std::string name;
  std::string id;  // "" = generated, ascending with the row index
  std::vector<std::string> hosts, paths, methods, snis;
  std::vector<std::pair<std::string, std::vector<std::string>>> headers;
  int regex_priority = 0;
  std::vector<std::string> protocols = {"http", "https"};
};

struct Rq {
  std::string method = "GET", host = "any.test", path = "/";
  std::vector<std::pair<std::string, std::string>> headers;
  bool https = false;
  std::string sni;
};

config::v1::Snapshot build(const std::vector<Rt>& routes) {
  config::v1::Snapshot s;
  auto* svc = s.add_services();
  svc->set_id("svc");
  svc->set_host("upstream.test");
  svc->set_port(80);
  svc->set_enabled(true);
  int i = 0;
  for (const Rt& r : routes) {
    auto* route = s.add_routes();
    char id[40];
    std::snprintf(id, sizeof(id), "00000000-0000-4000-8000-%012d", ++i);
    route->set_id(r.id.empty() ? std::string(id) : r.id);
    route->set_name(r.name);
    for (auto& p : r.protocols) route->add_protocols(p);
    for (auto& h : r.hosts) route->add_hosts(h);
    for (auto& p : r.paths) route->add_paths(p);
    for (auto& m : r.methods) route->add_methods(m);
    for (auto& n : r.snis) route->add_snis(n);
    for (auto& [n, vs] : r.headers) {
      auto* hm = route->add_headers();
      hm->set_name(n);
      for (auto& v : vs) hm->add_values(v);
    }
    route->set_regex_priority(r.regex_priority);
    route->set_strip_path(true);
    route->set_https_redirect_status_code(426);
    route->set_service_id("svc");
  }
  return s;
}

std::string winner(const std::vector<Rt>& routes, const Rq& q, Match* out = nullptr) {
  config::v1::Snapshot cfg = build(routes);
  auto router = Router::build(cfg);
  REQUIRE(router.ok());
  std::vector<http::Header> hs;
  for (auto& [n, v] : q.headers) hs.push_back({n, v});
  RequestView v;
  v.method = q.method;
  v.host = q.host;
  v.path = q.path;
  v.server_port = 8000;
  v.https = q.https;
  v.sni = q.sni;
  v.headers = hs.data();
  v.num_headers = static_cast<uint32_t>(hs.size());
  MatchScratch scratch;
  Match m;
  if (!(*router)->match(v, &scratch, &m)) return "<none>";
  if (out != nullptr) {
    out->https_required = m.https_required;
    out->strip_len = m.strip_len;
  }
  return m.route->name();
}

struct PriorityRow {
  const char* rule;
  std::vector<Rt> routes;
  Rq request;
  const char* expect;
};

TEST_CASE("router: every compat priority rule, table-driven") {
  // Row order of ids: a route listed later gets a greater generated UUID, so rows where the
  // expected winner is listed FIRST prove the priority (not the UUID tie-break) decided.
  const std::vector<PriorityRow> rows = {
      {"more fields beat fewer (hosts+methods > hosts)",
       {{.name = "hm", .hosts = {"a.test"}, .methods = {"GET"}}, {.name = "h", .hosts = {"a.test"}}},
       {.host = "a.test"}, "hm"},
      {"more fields beat a longer path (paths+methods > longer paths)",
       {{.name = "pm", .paths = {"/a"}, .methods = {"GET"}}, {.name = "p", .paths = {"/a/very/long"}}},
       {.path = "/a/very/long/x"}, "pm"},
      {"more fields beat more headers (hosts+headers > headers x2)",
       {{.name = "hh", .hosts = {"a.test"}, .headers = {{"x", {"1"}}}},
        {.name = "h2", .headers = {{"x", {"1"}}, {"y", {"1"}}}}},
       {.host = "a.test", .headers = {{"x", "1"}, {"y", "1"}}}, "hh"},
      {"plain host beats wildcard host",
       {{.name = "plain", .hosts = {"a.test"}}, {.name = "wild", .hosts = {"*.test"}}},
       {.host = "a.test"}, "plain"},
      {"plain host beats rightmost wildcard host",
       {{.name = "plain", .hosts = {"a.test"}}, {.name = "wild", .hosts = {"a.*"}}},
       {.host = "a.test"}, "plain"},
      {"a route mixing plain and wildcard hosts has no plain-host bit",
       {{.name = "plain", .hosts = {"a.test"}, .paths = {"/"}},
        {.name = "mixed", .hosts = {"a.test", "*.b.test"}, .paths = {"/x"}}},
       {.host = "a.test", .path = "/x"}, "plain"},
      {"wildcard host ranks like no host: then the longer prefix decides",
       {{.name = "path", .paths = {"/abc"}, .methods = {"GET"}},
        {.name = "wild", .hosts = {"*.test"}, .paths = {"/a"}}},
       {.host = "x.test", .path = "/abcd"}, "path"},
      {"more header names beat fewer at equal weight",
       {{.name = "two", .headers = {{"x", {"1"}}, {"y", {"2"}}}}, {.name = "one", .headers = {{"x", {"1"}}}}},
       {.headers = {{"x", "1"}, {"y", "2"}}}, "two"},
      {"header count beats regex and path length at equal weight",
       {{.name = "hdr2", .paths = {"/"}, .headers = {{"x", {"1"}}, {"y", {"1"}}}},
        {.name = "hdr1re", .paths = {"~/a/b/c"}, .headers = {{"x", {"1"}}}}},
       {.path = "/a/b/c", .headers = {{"x", "1"}, {"y", "1"}}}, "hdr2"},
      {"regex beats prefix, even an equal prefix",
       {{.name = "regex", .paths = {"~/foo"}}, {.name = "prefix", .paths = {"/foo"}}},
       {.path = "/foo"}, "regex"},
      {"regex beats a much longer prefix",
       {{.name = "regex", .paths = {"~/f"}}, {.name = "prefix", .paths = {"/foo/bar/baz"}}},
       {.path = "/foo/bar/baz"}, "regex"},
      {"higher regex_priority wins among regexes",
       {{.name = "rp9", .paths = {"~/a"}, .regex_priority = 9}, {.name = "rp1", .paths = {"~/a/b"}, .regex_priority = 1}},
       {.path = "/a/b"}, "rp9"},
      {"regex_priority is ignored for prefix paths",
       {{.name = "long", .paths = {"/v1"}}, {.name = "root_rp5", .paths = {"/"}, .regex_priority = 5}},
       {.path = "/v1"}, "long"},
      {"longer prefix wins among prefixes",
       {{.name = "long", .paths = {"/a/b"}}, {.name = "short", .paths = {"/a"}}},
       {.path = "/a/b/c"}, "long"},
      {"prefix match is a plain byte prefix, not segment based",
       {{.name = "p", .paths = {"/my-route"}}},
       {.path = "/my-routeX"}, "p"},
      {"equal priority: the greater UUID wins",
       {{.name = "low", .id = "00000000-0000-4000-8000-00000000000a", .hosts = {"a.test"}},
        {.name = "high", .id = "00000000-0000-4000-8000-00000000000b", .hosts = {"a.test"}}},
       {.host = "a.test"}, "high"},
      {"equal priority: the greater UUID wins whatever the order given",
       {{.name = "high", .id = "ffffffff-0000-4000-8000-000000000000", .hosts = {"a.test"}},
        {.name = "low", .id = "00000000-0000-4000-8000-00000000000f", .hosts = {"a.test"}}},
       {.host = "a.test"}, "high"},
      {"a port in a host entry adds no priority (UUID decides)",
       {{.name = "port", .id = "00000000-0000-4000-8000-000000000001", .hosts = {"a.test:8000"}},
        {.name = "noport", .id = "00000000-0000-4000-8000-000000000002", .hosts = {"a.test"}}},
       {.host = "a.test:8000"}, "noport"},
      {"methods-only vs wildcard-host-only tie (UUID decides)",
       {{.name = "wild", .id = "00000000-0000-4000-8000-000000000009", .hosts = {"*.test"}},
        {.name = "meth", .id = "00000000-0000-4000-8000-000000000001", .methods = {"GET"}}},
       {.host = "a.test"}, "wild"},
      {"host port must equal the Host port, else the listener port",
       {{.name = "p80", .hosts = {"a.test:80"}}, {.name = "p8000", .hosts = {"a.test:8000"}}},
       {.host = "a.test"}, "p8000"},
      {"split multi-path route: its long path ranks on its own",
       {{.name = "split", .paths = {"/foo", "/foo/bar/baz"}}, {.name = "mid", .paths = {"/foo/bar"}}},
       {.path = "/foo/bar/baz/x"}, "split"},
      {"split multi-path route: its short path ranks on its own",
       {{.name = "split", .paths = {"/a", "/bbbbbbb"}}, {.name = "mid", .paths = {"/a/bb"}}},
       {.path = "/a/bb/x"}, "mid"},
      {"regex group of a mixed route outranks prefixes",
       {{.name = "mixed", .paths = {"/x", "~/y/\\d+"}}, {.name = "prefix", .paths = {"/y/1"}}},
       {.path = "/y/12"}, "mixed"},
      {"snis count as a field only over https",
       {{.name = "sni", .paths = {"/"}, .snis = {"s.test"}}, {.name = "path", .paths = {"/a"}}},
       {.path = "/a", .https = true, .sni = "s.test"}, "sni"},
      {"snis are ignored over plain http",
       {{.name = "sni", .paths = {"/a"}, .snis = {"s.test"}}},
       {.path = "/a"}, "sni"},
      {"wildcard sni",
       {{.name = "sni", .paths = {"/"}, .snis = {"*.s.test"}}, {.name = "other", .paths = {"/"}, .snis = {"o.test"}}},
       {.path = "/", .https = true, .sni = "a.s.test."}, "sni"},
      {"header names compare with - == _ and any case",
       {{.name = "h", .headers = {{"x-my_hdr", {"v"}}}}},
       {.headers = {{"X_MY-HDR", "V"}}}, "h"},
      {"~* header value is a case-insensitive unanchored regex",
       {{.name = "h", .headers = {{"ua", {"~*linux"}}}}},
       {.headers = {{"UA", "X11; LINUX x86"}}}, "h"},
      {"hosts are case sensitive (compat compares bytes)",
       {{.name = "h", .hosts = {"a.test"}}},
       {.host = "A.test"}, "<none>"},
      {"*.x does not match x itself",
       {{.name = "w", .hosts = {"*.x.test"}}},
       {.host = "x.test"}, "<none>"},
      {"regex paths are anchored at the start only",
       {{.name = "r", .paths = {"~/a/\\d+"}}},
       {.path = "/a/12/tail"}, "r"},
      {"regex paths do not match in the middle",
       {{.name = "r", .paths = {"~/a/\\d+"}}},
       {.path = "/x/a/12"}, "<none>"},
      {"named captures in Kong's (?<name>) syntax compile",
       {{.name = "r", .paths = {"~/u/(?<id>\\d+)$"}}},
       {.path = "/u/42"}, "r"},
  };
  for (const PriorityRow& row : rows) {
    INFO(row.rule);
    CHECK(winner(row.routes, row.request) == row.expect);
  }
}

TEST_CASE("router: https-only routes are flagged over http, not over https") {
  std::vector<Rt> routes = {{.name = "s", .paths = {"/s"}, .protocols = {"https"}}};
  Match m;
  CHECK(winner(routes, {.path = "/s"}, &m) == "s");
  CHECK(m.https_required);
  CHECK(winner(routes, {.path = "/s", .https = true}, &m) == "s");
  CHECK_FALSE(m.https_required);
}

// One row of Kong's path-handling fixture: service.path, route path ("" = the route matches
// on host only), strip_path, request path, and the v0 upstream path.
struct PathRow {
  const char* service_path;
  const char* route_path;
  bool strip;
  const char* request;
  const char* expected;
};

TEST_CASE("router: every strip_path x path_handling row (v0; v1 behaves as v0 under compat)") {
  const std::vector<PathRow> rows = {
      {"/", "/", false, "/", "/"},
      {"/", "/", true, "/", "/"},
      {"/", "/", false, "/route", "/route"},
      {"/", "/", true, "/route", "/route"},
      {"/", "/", false, "/route/", "/route/"},
      {"/", "/", true, "/route/", "/route/"},
      {"/", "/", false, "/routereq", "/routereq"},
      {"/", "/", true, "/routereq", "/routereq"},
      {"/", "/", false, "/route/req", "/route/req"},
      {"/", "/", true, "/route/req", "/route/req"},
      {"/", "/route", false, "/route", "/route"},
      {"/", "/route", false, "/route/", "/route/"},
      {"/", "/route", false, "/routereq", "/routereq"},
      {"/", "/route", true, "/route", "/"},
      {"/", "/route", true, "/route/", "/"},
      {"/", "/route", true, "/routereq", "/req"},
      {"/", "/route/", false, "/route/", "/route/"},
      {"/", "/route/", false, "/route/req", "/route/req"},
      {"/", "/route/", true, "/route/", "/"},
      {"/", "/route/", true, "/route/req", "/req"},
      {"/srv", "/rou", false, "/roureq", "/srv/roureq"},
      {"/srv", "/rou", true, "/roureq", "/srv/req"},
      {"/srv/", "/rou", false, "/rou", "/srv/rou"},
      {"/srv/", "/rou", true, "/rou", "/srv"},
      {"/service", "/", false, "/", "/service"},
      {"/service", "/", true, "/", "/service"},
      {"/service", "/", false, "/route", "/service/route"},
      {"/service", "/", true, "/route", "/service/route"},
      {"/service", "/", false, "/route/", "/service/route/"},
      {"/service", "/", true, "/route/", "/service/route/"},
      {"/service", "/", false, "/routereq", "/service/routereq"},
      {"/service", "/", true, "/routereq", "/service/routereq"},
      {"/service", "/", false, "/route/req", "/service/route/req"},
      {"/service", "/", true, "/route/req", "/service/route/req"},
      {"/service", "/route", false, "/route", "/service/route"},
      {"/service", "/route", false, "/route/", "/service/route/"},
      {"/service", "/route", false, "/routereq", "/service/routereq"},
      {"/service", "/route", true, "/route", "/service"},
      {"/service", "/route", true, "/route/", "/service/"},
      {"/service", "/route", true, "/routereq", "/service/req"},
      {"/service", "/route/", false, "/route/", "/service/route/"},
      {"/service", "/route/", false, "/route/req", "/service/route/req"},
      {"/service", "/route/", true, "/route/", "/service/"},
      {"/service", "/route/", true, "/route/req", "/service/req"},
      {"/service/", "/", false, "/route/", "/service/route/"},
      {"/service/", "/", true, "/route/", "/service/route/"},
      {"/service/", "/", false, "/", "/service/"},
      {"/service/", "/", true, "/", "/service/"},
      {"/service/", "/", false, "/route", "/service/route"},
      {"/service/", "/", true, "/route", "/service/route"},
      {"/service/", "/", false, "/routereq", "/service/routereq"},
      {"/service/", "/", true, "/routereq", "/service/routereq"},
      {"/service/", "/", false, "/route/req", "/service/route/req"},
      {"/service/", "/", true, "/route/req", "/service/route/req"},
      {"/service/", "/route", false, "/route", "/service/route"},
      {"/service/", "/route", false, "/route/", "/service/route/"},
      {"/service/", "/route", false, "/routereq", "/service/routereq"},
      {"/service/", "/route", true, "/route", "/service"},
      {"/service/", "/route", true, "/route/", "/service/"},
      {"/service/", "/route", true, "/routereq", "/service/req"},
      {"/service/", "/route/", false, "/route/", "/service/route/"},
      {"/service/", "/route/", false, "/route/req", "/service/route/req"},
      {"/service/", "/route/", true, "/route/", "/service/"},
      {"/service/", "/route/", true, "/route/req", "/service/req"},
      {"/", "", false, "/", "/"},
      {"/", "", true, "/", "/"},
      {"/", "", false, "/route", "/route"},
      {"/", "", true, "/route", "/route"},
      {"/", "", false, "/route/", "/route/"},
      {"/", "", true, "/route/", "/route/"},
      {"/service", "", false, "/", "/service"},
      {"/service", "", true, "/", "/service"},
      {"/service", "", false, "/route", "/service/route"},
      {"/service", "", true, "/route", "/service/route"},
      {"/service", "", false, "/route/", "/service/route/"},
      {"/service", "", true, "/route/", "/service/route/"},
      {"/service/", "", false, "/", "/service/"},
      {"/service/", "", true, "/", "/service/"},
      {"/service/", "", false, "/route", "/service/route"},
      {"/service/", "", true, "/route", "/service/route"},
      {"/service/", "", false, "/route/", "/service/route/"},
      {"/service/", "", true, "/route/", "/service/route/"},
  };
  for (const PathRow& row : rows) {
    for (const char* handling : {"v0", "v1"}) {
      config::v1::Snapshot cfg;
      auto* svc = cfg.add_services();
      svc->set_id("svc");
      svc->set_host("upstream.test");
      svc->set_port(80);
      svc->set_enabled(true);
      svc->set_path(row.service_path);
      auto* route = cfg.add_routes();
      route->set_id("00000000-0000-4000-8000-000000000001");
      route->add_protocols("http");
      if (*row.route_path != '\0') {
        route->add_paths(row.route_path);
      } else {
        route->add_hosts("host.test");
      }
      route->set_strip_path(row.strip);
      route->set_path_handling(handling);
      route->set_service_id("svc");
      auto router = Router::build(cfg);
      REQUIRE(router.ok());
      RequestView v;
      v.method = "GET";
      v.host = "host.test";
      v.path = row.request;
      v.server_port = 8000;
      MatchScratch scratch;
      Match m;
      INFO(row.service_path << " + " << row.route_path << " strip=" << row.strip << " "
                            << handling << " " << row.request);
      REQUIRE((*router)->match(v, &scratch, &m));
      std::string upstream;
      appendUpstreamPath(svc->path(), m.normalized_path, m.strip_len, &upstream);
      CHECK(upstream == row.expected);
    }
  }
}

TEST_CASE("router: regex strip removes the whole regex match") {
  config::v1::Snapshot cfg = build({{.name = "r", .paths = {"~/users/\\d+"}}});
  auto router = Router::build(cfg);
  REQUIRE(router.ok());
  RequestView v;
  v.method = "GET";
  v.path = "/users/42/profile";
  MatchScratch scratch;
  Match m;
  REQUIRE((*router)->match(v, &scratch, &m));
  CHECK(m.strip_len == std::string("/users/42").size());
}

}  // namespace
}  // namespace portico::dp::router
