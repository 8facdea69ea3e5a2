// Runs tests/conformance/router_cases.yaml (Kong traditional_compatible acceptance cases)
// against the router and the v0 upstream path join, and reports pass / fail / skip counts.
// Requests whose expectation needs something the router does not do yet are skipped with
// the reason printed.
#include <yaml-cpp/yaml.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

#include <catch2/catch.hpp>

#include "data_plane/router/path.h"
#include "data_plane/router/router.h"

namespace portico::dp::router {
namespace {

std::string casesPath() {
  const char* src = std::getenv("PORTICO_SOURCE_DIR");
  return std::string(src ? src : ".") + "/tests/conformance/router_cases.yaml";
}

std::vector<std::string> strings(const YAML::Node& n) {
  std::vector<std::string> out;
  if (n && n.IsSequence()) {
    for (const auto& v : n) out.push_back(v.as<std::string>());
  } else if (n && n.IsScalar()) {
    out.push_back(n.as<std::string>());
  }
  return out;
}

bool boolOr(const YAML::Node& n, bool d) { return n && !n.IsNull() ? n.as<bool>() : d; }

TEST_CASE("router conformance: Kong traditional_compatible cases") {
  YAML::Node doc = YAML::LoadFile(casesPath());
  const YAML::Node defaults = doc["defaults"];
  int pass = 0, fail = 0, skip = 0;
  std::map<std::string, int> skip_reasons;

  for (const YAML::Node& c : doc["cases"]) {
    const std::string case_id = c["id"].as<std::string>();
    config::v1::Snapshot snap;
    std::map<std::string, std::string> service_path_by_route;  // route name -> base path
    std::map<std::string, bool> preserve_by_route;
    int n = 0;
    for (const YAML::Node& r : c["routes"]) {
      ++n;
      auto* route = snap.add_routes();
      const std::string name = r["name"].as<std::string>();
      char id[40];
      std::snprintf(id, sizeof(id), "00000000-0000-4000-8000-%012d", n);
      route->set_id(r["id"] ? r["id"].as<std::string>() : std::string(id));
      route->set_name(name);
      for (auto& p : strings(r["protocols"] ? r["protocols"] : defaults["route"]["protocols"]))
        route->add_protocols(p);
      for (auto& m : strings(r["methods"])) route->add_methods(m);
      for (auto& h : strings(r["hosts"])) route->add_hosts(h);
      for (auto& p : strings(r["paths"])) route->add_paths(p);
      for (auto& s : strings(r["snis"])) route->add_snis(s);
      if (r["headers"]) {
        for (const auto& kv : r["headers"]) {
          auto* hm = route->add_headers();
          hm->set_name(kv.first.as<std::string>());
          for (auto& v : strings(kv.second)) hm->add_values(v);
        }
      }
      route->set_strip_path(boolOr(r["strip_path"], defaults["route"]["strip_path"].as<bool>()));
      route->set_preserve_host(boolOr(r["preserve_host"], false));
      route->set_https_redirect_status_code(
          r["https_redirect_status_code"] ? r["https_redirect_status_code"].as<int>() : 426);
      preserve_by_route[name] = route->preserve_host();
      if (r["regex_priority"] && !r["regex_priority"].IsNull()) {
        route->set_regex_priority(r["regex_priority"].as<int>());
      }
      const YAML::Node svc = r["service"];
      if (svc && svc.IsNull()) {
        continue;  // serviceless route
      }
      auto* s = snap.add_services();
      s->set_id(std::string(id) + "-svc");
      s->set_host(defaults["service"]["host"].as<std::string>());
      s->set_port(80);
      s->set_enabled(svc && svc["enabled"] ? svc["enabled"].as<bool>() : true);
      std::string base = "/";
      if (svc && svc["path"] && !svc["path"].IsNull()) {
        base = svc["path"].as<std::string>();
        s->set_path(base);
      }
      service_path_by_route[name] = base;
      route->set_service_id(s->id());
    }
    auto built = Router::build(snap);
    if (!built.ok()) {
      FAIL_CHECK(case_id << ": build failed: " << built.status().ToString());
      ++fail;
      continue;
    }
    const Router& router = **built;

    int req_index = 0;
    for (const YAML::Node& q : c["requests"]) {
      ++req_index;
      const YAML::Node expect = q["expect"];
      const int status = expect["status"] ? expect["status"].as<int>() : 0;
      const bool https_answer =
          status == 426 || status == 301 || status == 302 || status == 307 || status == 308;
      const std::string scheme = q["scheme"] ? q["scheme"].as<std::string>() : "http";
      std::string method = q["method"] ? q["method"].as<std::string>() : "GET";
      std::string host = q["host"] ? q["host"].as<std::string>() : "";
      std::string target = q["path"].as<std::string>();
      std::string sni = q["sni"] ? q["sni"].as<std::string>() : "";
      const uint16_t port = q["server_port"] ? q["server_port"].as<uint16_t>() : 8000;
      std::vector<std::pair<std::string, std::string>> header_store;
      if (q["headers"]) {
        for (const auto& kv : q["headers"]) {
          for (auto& v : strings(kv.second)) header_store.emplace_back(kv.first.as<std::string>(), v);
        }
      }
      std::vector<http::Header> headers;
      for (auto& [k, v] : header_store) headers.push_back({k, v});
      const size_t qpos = target.find('?');
      const std::string path = target.substr(0, qpos);

      RequestView view;
      view.method = method;
      view.host = host;
      view.path = path;
      view.server_port = port;
      view.https = scheme == "https";
      view.sni = sni;
      view.headers = headers.data();
      view.num_headers = static_cast<uint32_t>(headers.size());
      MatchScratch scratch;
      Match m;
      const bool matched = router.match(view, &scratch, &m);
      const std::string got = matched ? m.route->name() : "<none>";
      const std::string want =
          expect["route"] && !expect["route"].IsNull() ? expect["route"].as<std::string>() : "<none>";
      bool ok = got == want;
      std::string why = "route: got " + got + ", want " + want;
      if (ok && https_answer) {
        // The session answers these (data_plane/proxy/session.cc) from the match flags.
        ok = m.https_required && (status == 426 ? (m.route->https_redirect_status_code() == 426)
                                                : m.route->https_redirect_status_code() == status);
        why = "expected an https-required answer " + std::to_string(status);
        if (ok && expect["location"]) {
          std::string h = host.substr(0, host.rfind(':') == std::string::npos ? host.size()
                                                                                : host.rfind(':'));
          ok = "https://" + h + target == expect["location"].as<std::string>();
          why = "location";
        }
      } else if (ok && matched && m.https_required) {
        ok = false;
        why = "unexpected https-required answer";
      }
      if (ok && status == 503) {
        ok = m.service == nullptr;
        why = "expected a serviceless match (503)";
      }
      if (ok && matched && expect["upstream_path"]) {
        std::string up;
        appendUpstreamPath(service_path_by_route[got], m.normalized_path, m.strip_len, &up);
        ok = up == expect["upstream_path"].as<std::string>();
        why = "upstream_path: got " + up + ", want " + expect["upstream_path"].as<std::string>();
      }
      if (ok && matched && expect["upstream_host"]) {
        ok = preserve_by_route[got] && host == expect["upstream_host"].as<std::string>();
        why = "upstream_host";
      }
      if (ok) {
        ++pass;
      } else if (q["tie_break"]) {
        ++skip;
        ++skip_reasons["UUID tie-break differs (soft per the file's format notes)"];
        WARN(case_id << " request " << req_index << " (soft tie-break): " << why);
      } else {
        ++fail;
        FAIL_CHECK(case_id << " request " << req_index << " " << method << " " << host << " "
                           << target << ": " << why);
      }
    }
  }
  std::printf("router conformance: %d passed, %d failed, %d skipped\n", pass, fail, skip);
  for (auto& [reason, count] : skip_reasons) {
    std::printf("  skipped %d: %s\n", count, reason.c_str());
  }
  CHECK(pass > 0);
}

}  // namespace
}  // namespace portico::dp::router
