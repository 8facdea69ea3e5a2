// Runs Kong's bundled-plugin behaviour cases (tests/conformance/plugin_cases.yaml, format
// portico-plugin-cases/v1, documented at the top of that file) against the real portico-cp,
// portico-dp and PostgreSQL, with the echo upstream the file describes. Every case starts from
// an empty configuration. A case that configures a plugin this build does not ship (per
// GET /plugins/enabled) is skipped with a printed reason; every other case must pass.
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include "tests/support/conformance_support.h"
#include "tests/support/e2e_cluster.h"
#include "tests/support/test_support.h"

namespace portico::testing {
namespace {

using nlohmann::json;

std::string lowerCase(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// A response as read off the wire: repeated headers keep every value.
struct WireResponse {
  int status = 0;
  std::map<std::string, std::vector<std::string>> headers;  // lower-cased names
  std::string body;
  std::string error;  // why no response could be read
};

bool readMore(int fd, std::string* buf) {
  char tmp[16384];
  const ssize_t n = ::recv(fd, tmp, sizeof(tmp), 0);
  if (n <= 0) return false;
  buf->append(tmp, static_cast<size_t>(n));
  return true;
}

// Sends `request` verbatim on a fresh connection and reads one response, framed by its
// Content-Length, chunked encoding or the connection's end. The request carries no
// Connection header of its own (the cases fix the exact header set).
WireResponse exchange(int port, const std::string& request, bool head_request) {
  WireResponse r;
  const int fd = connectLoopback(port, 15);
  if (fd < 0) {
    r.error = "connect failed";
    return r;
  }
  size_t off = 0;
  while (off < request.size()) {
    const ssize_t n = ::send(fd, request.data() + off, request.size() - off, MSG_NOSIGNAL);
    if (n <= 0) break;  // the proxy may answer (413) before reading everything
    off += static_cast<size_t>(n);
  }
  std::string buf;
  size_t head_end;
  while ((head_end = buf.find("\r\n\r\n")) == std::string::npos) {
    if (!readMore(fd, &buf)) {
      ::close(fd);
      r.error = "no response head";
      return r;
    }
  }
  std::istringstream head(buf.substr(0, head_end));
  std::string line;
  std::getline(head, line);
  if (line.size() > 12) r.status = std::atoi(line.c_str() + 9);
  while (std::getline(head, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.pop_back();
    r.headers[lowerCase(line.substr(0, colon))].push_back(value);
  }
  std::string rest = buf.substr(head_end + 4);
  auto header = [&](const std::string& n) {
    auto it = r.headers.find(n);
    return it == r.headers.end() ? std::string() : lowerCase(it->second.front());
  };
  const bool bodiless = head_request || r.status == 204 || r.status == 304 || r.status < 200;
  if (bodiless) {
  } else if (!header("content-length").empty()) {
    const size_t len = std::strtoul(header("content-length").c_str(), nullptr, 10);
    while (rest.size() < len && readMore(fd, &rest)) {
    }
    r.body = rest.substr(0, len);
  } else if (header("transfer-encoding").find("chunked") != std::string::npos) {
    size_t pos = 0;
    while (true) {
      size_t eol;
      while ((eol = rest.find("\r\n", pos)) == std::string::npos) {
        if (!readMore(fd, &rest)) break;
      }
      if (eol == std::string::npos) break;
      const size_t size = std::strtoul(rest.substr(pos, eol - pos).c_str(), nullptr, 16);
      pos = eol + 2;
      if (size == 0) break;
      while (rest.size() < pos + size + 2 && readMore(fd, &rest)) {
      }
      r.body += rest.substr(pos, size);
      pos += size + 2;
    }
  } else {
    while (readMore(fd, &rest)) {
    }
    r.body = rest;
  }
  ::close(fd);
  return r;
}

std::string formEncode(const json& form) {
  std::string out;
  auto add = [&](const std::string& k, const json& v) {
    out += (out.empty() ? "" : "&") + uriEscape(k) + "=" +
           uriEscape(v.is_string() ? v.get<std::string>() : v.dump());
  };
  for (auto& [k, v] : form.items()) {
    if (v.is_array()) {
      for (const auto& e : v) add(k, e);
    } else {
      add(k, v);
    }
  }
  return out;
}

std::string urlDecode(const std::string& in) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '+') {
      out.push_back(' ');
    } else if (in[i] == '%' && i + 2 < in.size()) {
      out.push_back(static_cast<char>(std::stoi(in.substr(i + 1, 2), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(in[i]);
    }
  }
  return out;
}

// a=1&b=2&b=3 -> {"a":"1","b":["2","3"]}
json decodeForm(const std::string& body) {
  json out = json::object();
  std::stringstream ss(body);
  std::string part;
  while (std::getline(ss, part, '&')) {
    if (part.empty()) continue;
    const size_t eq = part.find('=');
    const std::string k = urlDecode(part.substr(0, eq));
    const json v = eq == std::string::npos ? json(true) : json(urlDecode(part.substr(eq + 1)));
    if (!out.contains(k)) {
      out[k] = v;
    } else {
      if (!out[k].is_array()) out[k] = json::array({out[k]});
      out[k].push_back(v);
    }
  }
  return out;
}

// Expected values come from YAML (typed scalars); what the echo saw is strings.
bool looseEqual(const json& expected, const json& actual) {
  if (expected.is_array()) {
    if (!actual.is_array() || actual.size() != expected.size()) return false;
    for (size_t i = 0; i < expected.size(); ++i) {
      if (!looseEqual(expected[i], actual[i])) return false;
    }
    return true;
  }
  if (actual.is_string() && !expected.is_string() && !expected.is_structured()) {
    return expected.dump() == actual.get<std::string>();
  }
  return expected == actual;
}

// Every key of `expected` (recursively) equals; lists compare element by element.
bool subset(const json& expected, const json& actual) {
  if (expected.is_object()) {
    if (!actual.is_object()) return false;
    for (auto& [k, v] : expected.items()) {
      if (!actual.contains(k) || !subset(v, actual[k])) return false;
    }
    return true;
  }
  if (expected.is_array()) {
    if (!actual.is_array() || actual.size() != expected.size()) return false;
    for (size_t i = 0; i < expected.size(); ++i) {
      if (!subset(expected[i], actual[i])) return false;
    }
    return true;
  }
  return expected == actual;
}

json headerJson(const std::vector<std::string>& values) {
  return values.size() == 1 ? json(values[0]) : json(values);
}

std::vector<std::string> stringList(const json& v) {
  std::vector<std::string> out;
  if (v.is_array()) {
    for (const auto& e : v) out.push_back(e.is_string() ? e.get<std::string>() : e.dump());
  } else {
    out.push_back(v.is_string() ? v.get<std::string>() : v.dump());
  }
  return out;
}

bool regexFind(const std::string& pattern, const std::string& text) {
  return std::regex_search(text, std::regex(pattern));
}

// The processes the cases run against: one for the whole file, reset between cases.
struct Cluster {
  TestPostgres pg;
  EchoUpstream echo{0, /*record=*/true};
  TempDir dir;
  std::unique_ptr<Cp> cp;
  std::unique_ptr<Dp> dp;
  std::set<std::string> enabled;

  Cluster() {
    migrate(pg.dsn());
    cp = std::make_unique<Cp>(pg.dsn());
    dp = std::make_unique<Dp>(cp->cluster_port, dir.path + "/dp.cache");
    const HttpResponse r = cp->admin("GET", "/plugins/enabled");
    INFO("GET /plugins/enabled -> " << r.status << " " << r.body);
    REQUIRE(r.status == 200);
    const json body = json::parse(r.body);
    for (const auto& p : body["enabled_plugins"]) enabled.insert(p.get<std::string>());
    REQUIRE(!enabled.empty());
  }

  std::string echoUrl() const { return "http://127.0.0.1:" + std::to_string(echo.port()); }

  // Waits until the DP runs the CP's newest generation.
  bool awaitApplied() {
    const HttpResponse s = cp->admin("GET", "/status");
    const json j = json::parse(s.body, nullptr, false);
    const json* g = lookup(j, "configuration.generation");
    if (g == nullptr || !g->is_number()) return false;
    const uint64_t want = g->get<uint64_t>();
    return waitFor([&] { return dp->generation() >= want; }, std::chrono::seconds(20));
  }

  // Deletes every entity, dependants first, so the next case starts from an empty config.
  void reset() {
    for (const char* collection : {"plugins", "consumers", "routes", "services", "upstreams",
                                   "snis", "certificates", "ca_certificates"}) {
      for (int round = 0; round < 20; ++round) {
        const HttpResponse page = cp->admin("GET", std::string("/") + collection + "?size=1000");
        const json j = json::parse(page.body, nullptr, false);
        if (!j.is_object() || !j.contains("data") || j["data"].empty()) break;
        for (const auto& e : j["data"]) {
          cp->admin("DELETE", std::string("/") + collection + "/" + e["id"].get<std::string>());
        }
      }
    }
  }
};

struct CaseRun {
  Cluster& cl;
  std::string id;
  Vars vars;
  std::vector<std::string> failures;
  bool admin_pending = false;

  void fail(const std::string& step, const std::string& what) {
    failures.push_back(id + " " + step + ": " + what);
  }

  void adminStep(const std::string& where, const YAML::Node& step) {
    const YAML::Node& a = step["admin"];
    const std::string method = a["method"].as<std::string>();
    const std::string path = substitute(a["path"].as<std::string>(), vars);
    const std::string body = a["json"] ? substitute(toJson(a["json"]), vars).dump() : "";
    const HttpResponse r = cl.cp->admin(method, path, body);
    admin_pending = true;
    const json actual = json::parse(r.body, nullptr, false);
    const std::string ctx = method + " " + path + " " + body + " -> " + std::to_string(r.status) +
                            " " + r.body;
    if (const YAML::Node ex = step["expect"]) {
      if (ex["status"] && r.status != ex["status"].as<int>()) fail(where, "status: " + ctx);
      if (ex["body_subset"] && !subset(substitute(toJson(ex["body_subset"]), vars), actual)) {
        fail(where, "body_subset " + toJson(ex["body_subset"]).dump() + ": " + ctx);
      }
      if (ex["body_types"]) {
        for (const auto& kv : ex["body_types"]) {
          const json* v = lookup(actual, kv.first.as<std::string>());
          const std::string type = kv.second.as<std::string>();
          static const std::regex kUuid(
              "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}");
          const bool ok = v != nullptr &&
                          (type == "uuid"     ? v->is_string() &&
                                                std::regex_match(v->get<std::string>(), kUuid)
                           : type == "string" ? v->is_string()
                           : type == "number" ? v->is_number()
                           : type == "integer" ? v->is_number_integer()
                           : type == "array"  ? v->is_array()
                           : type == "object" ? v->is_object()
                           : type == "boolean" ? v->is_boolean()
                                               : v->is_null());
          if (!ok) fail(where, "body_types " + kv.first.as<std::string>() + ": " + ctx);
        }
      }
    }
    if (const YAML::Node save = step["save"]) {
      for (const auto& kv : save) {
        const json* v = lookup(actual, kv.second.as<std::string>());
        if (v == nullptr) {
          fail(where, "cannot save " + kv.second.as<std::string>() + ": " + ctx);
          continue;
        }
        vars[kv.first.as<std::string>()] = v->is_string() ? v->get<std::string>() : v->dump();
      }
    }
  }

  void syncIfNeeded(const std::string& where) {
    if (admin_pending) {
      if (!cl.awaitApplied()) fail(where, "the DP did not apply the config within 20 s");
      admin_pending = false;
    }
  }

  void proxyStep(const std::string& where, const YAML::Node& step) {
    syncIfNeeded(where);
    const YAML::Node& p = step["proxy"];
    const std::string method = p["method"].as<std::string>();
    const std::string target = substitute(p["path"].as<std::string>(), vars);
    std::vector<std::pair<std::string, std::string>> headers;
    bool has_host = false, has_ct = false;
    if (p["headers"]) {
      for (const auto& kv : p["headers"]) {
        const std::string name = kv.first.as<std::string>();
        for (const auto& v : stringList(substitute(toJson(kv.second), vars))) {
          headers.emplace_back(name, v);
        }
        has_host |= lowerCase(name) == "host";
        has_ct |= lowerCase(name) == "content-type";
      }
    }
    std::string body;
    std::optional<std::string> content_type;
    if (p["json"]) {
      body = substitute(toJson(p["json"]), vars).dump();
      content_type = "application/json";
    } else if (p["form"]) {
      body = formEncode(substitute(toJson(p["form"]), vars));
      content_type = "application/x-www-form-urlencoded";
    } else if (p["raw_body"]) {
      body = substitute(p["raw_body"].as<std::string>(), vars);
    } else if (p["body_repeat"]) {
      body.assign(p["body_repeat"]["count"].as<size_t>(),
                  p["body_repeat"]["char"].as<std::string>().at(0));
    }
    std::string request = method + " " + target + " HTTP/1.1\r\n";
    if (!has_host) request += "Host: localhost\r\n";
    for (const auto& [k, v] : headers) request += k + ": " + v + "\r\n";
    if (content_type && !has_ct) request += "Content-Type: " + *content_type + "\r\n";
    const bool sends_body = p["json"] || p["form"] || p["raw_body"] || p["body_repeat"];
    if (sends_body) request += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    request += "\r\n" + body;

    const size_t seen_before = cl.echo.received().size();
    const WireResponse r = exchange(cl.dp->proxy_port, request, method == "HEAD");
    const auto received = cl.echo.received();
    const bool reached = received.size() > seen_before;
    const json upstream =
        reached ? json::parse(received.back().echo, nullptr, false) : json::object();
    std::string shown_headers;
    for (const auto& [k, vs] : r.headers) {
      for (const auto& v : vs) shown_headers += "\n    " + k + ": " + v;
    }
    const std::string ctx = "\n  request: " + request.substr(0, 600) +
                            "\n  -> " + std::to_string(r.status) + " " + r.error + shown_headers +
                            "\n  " + r.body.substr(0, 600) +
                            (reached ? "\n  upstream saw: " + received.back().echo : "");
    checkProxy(where, step["expect"], r, reached, upstream, ctx);
    if (const YAML::Node save = step["save"]) {
      for (const auto& kv : save) {
        const std::string from = kv.second.as<std::string>();
        std::string value;
        if (from == "body") {
          value = r.body;
        } else if (from.rfind("header:", 0) == 0) {
          auto it = r.headers.find(lowerCase(from.substr(7)));
          if (it != r.headers.end()) value = it->second.front();
        } else if (from.rfind("upstream_header:", 0) == 0) {
          const json* v = lookup(upstream, "headers." + lowerCase(from.substr(16)));
          if (v != nullptr) value = v->is_string() ? v->get<std::string>() : v->dump();
        }
        vars[kv.first.as<std::string>()] = value;
      }
    }
  }

  void checkProxy(const std::string& where, const YAML::Node& ex, const WireResponse& r,
                  bool reached, const json& up, const std::string& ctx) {
    if (!ex) return;
    auto bad = [&](const std::string& what) { fail(where, what + ctx); };
    const json body_json = json::parse(r.body, nullptr, false);
    auto expect = [&](const char* key) { return substitute(toJson(ex[key]), vars); };
    if (ex["status"] && r.status != ex["status"].as<int>()) {
      bad("status: want " + ex["status"].as<std::string>());
    }
    if (ex["body"] && body_json != expect("body")) bad("body: want " + expect("body").dump());
    if (ex["body_raw"] && r.body != substitute(ex["body_raw"].as<std::string>(), vars)) {
      bad("body_raw: want " + ex["body_raw"].as<std::string>());
    }
    if (ex["body_subset"] && !subset(expect("body_subset"), body_json)) {
      bad("body_subset: want " + expect("body_subset").dump());
    }
    if (ex["body_contains"]) {
      for (const auto& s : stringList(expect("body_contains"))) {
        if (r.body.find(s) == std::string::npos) bad("body_contains: " + s);
      }
    }
    if (ex["body_not_contains"]) {
      for (const auto& s : stringList(expect("body_not_contains"))) {
        if (r.body.find(s) != std::string::npos) bad("body_not_contains: " + s);
      }
    }
    if (ex["body_lines_match"]) {
      const std::string re = ex["body_lines_match"].as<std::string>();
      std::stringstream ss(r.body);
      std::string line;
      while (std::getline(ss, line)) {
        if (!line.empty() && !regexFind(re, line)) bad("body_lines_match " + re + ": " + line);
      }
    }
    if (ex["body_absent_keys"]) {
      for (const auto& k : stringList(expect("body_absent_keys"))) {
        if (body_json.is_object() && body_json.contains(k)) bad("body_absent_keys: " + k);
      }
    }
    auto response_header = [&](const std::string& name) -> std::optional<json> {
      auto it = r.headers.find(lowerCase(name));
      if (it == r.headers.end()) return std::nullopt;
      return headerJson(it->second);
    };
    if (ex["headers"]) {
      const json want1 = expect("headers");
      for (auto& [name, want] : want1.items()) {
        const auto got = response_header(name);
        if (!got || !looseEqual(want, *got)) bad("header " + name + ": want " + want.dump());
      }
    }
    if (ex["headers_present"]) {
      for (const auto& n : stringList(expect("headers_present"))) {
        if (!response_header(n)) bad("header present: " + n);
      }
    }
    if (ex["headers_absent"]) {
      for (const auto& n : stringList(expect("headers_absent"))) {
        if (response_header(n)) bad("header absent: " + n);
      }
    }
    if (ex["headers_match"]) {
      const json want2 = expect("headers_match");
      for (auto& [name, re] : want2.items()) {
        const auto got = response_header(name);
        if (!got || !got->is_string() || !regexFind(re.get<std::string>(), got->get<std::string>())) {
          bad("header " + name + " matching " + re.get<std::string>());
        }
      }
    }
    if (ex["headers_int_range"]) {
      const json want3 = expect("headers_int_range");
      for (auto& [name, range] : want3.items()) {
        const auto got = response_header(name);
        const long v = got && got->is_string() ? std::atol(got->get<std::string>().c_str()) : -1;
        if (!got || v < range[0].get<long>() || v > range[1].get<long>()) {
          bad("header " + name + " in " + range.dump());
        }
      }
    }
    if (ex["headers_equal_upstream"]) {
      for (const auto& n : stringList(expect("headers_equal_upstream"))) {
        const auto got = response_header(n);
        const json* u = lookup(up, "headers." + lowerCase(n));
        if (!got || u == nullptr || *got != *u) bad("header equal upstream: " + n);
      }
    }
    if (ex["upstream_reached"] && ex["upstream_reached"].as<bool>() != reached) {
      bad(std::string("upstream_reached: want ") + (reached ? "false" : "true"));
    }
    const bool wants_upstream = [&] {
      for (const auto& kv : ex) {
        const std::string k = kv.first.as<std::string>();
        if (k.rfind("upstream_", 0) == 0 && k != "upstream_reached") return true;
      }
      return false;
    }();
    if (!wants_upstream) return;
    if (!reached) {
      bad("upstream expectations, but the upstream saw no request");
      return;
    }
    const json query = up.value("query", json::object());
    const json uheaders = up.value("headers", json::object());
    const std::string ubody = up.value("body", "");
    if (ex["upstream_method"] && up.value("method", "") != ex["upstream_method"].as<std::string>()) {
      bad("upstream_method");
    }
    if (ex["upstream_path"] && up.value("path", "") != expect("upstream_path").get<std::string>()) {
      bad("upstream_path: want " + expect("upstream_path").dump());
    }
    if (ex["upstream_query_string"]) {
      const std::string uri = up.value("uri", "");
      const size_t q = uri.find('?');
      if ((q == std::string::npos ? "" : uri.substr(q + 1)) !=
          expect("upstream_query_string").get<std::string>()) {
        bad("upstream_query_string: want " + expect("upstream_query_string").dump());
      }
    }
    auto subsetOf = [&](const char* key, const json& actual) {
      if (!ex[key]) return;
      const json want4 = expect(key);
      for (auto& [k, v] : want4.items()) {
        const std::string lk = std::string(key) == "upstream_headers" ? lowerCase(k) : k;
        if (!actual.contains(lk) || !looseEqual(v, actual[lk])) {
          bad(std::string(key) + " " + k + ": want " + v.dump());
        }
      }
    };
    auto absentFrom = [&](const char* key, const json& actual, bool lower) {
      if (!ex[key]) return;
      for (const auto& k : stringList(expect(key))) {
        if (actual.is_object() && actual.contains(lower ? lowerCase(k) : k)) {
          bad(std::string(key) + ": " + k);
        }
      }
    };
    subsetOf("upstream_query", query);
    absentFrom("upstream_query_absent", query, false);
    subsetOf("upstream_headers", uheaders);
    absentFrom("upstream_headers_absent", uheaders, true);
    if (ex["upstream_headers_present"]) {
      for (const auto& n : stringList(expect("upstream_headers_present"))) {
        if (!uheaders.contains(lowerCase(n))) bad("upstream_headers_present: " + n);
      }
    }
    if (ex["upstream_headers_match"]) {
      const json want5 = expect("upstream_headers_match");
      for (auto& [name, re] : want5.items()) {
        const json* v = lookup(uheaders, lowerCase(name));
        if (v == nullptr || !v->is_string() ||
            !regexFind(re.get<std::string>(), v->get<std::string>())) {
          bad("upstream_headers_match " + name + " " + re.get<std::string>());
        }
      }
    }
    if (ex["upstream_headers_not"]) {
      const json want6 = expect("upstream_headers_not");
      for (auto& [name, v] : want6.items()) {
        const json* got = lookup(uheaders, lowerCase(name));
        if (got != nullptr && looseEqual(v, *got)) bad("upstream_headers_not " + name);
      }
    }
    const json form = decodeForm(ubody);
    subsetOf("upstream_body_form", form);
    absentFrom("upstream_body_form_absent", form, false);
    const json ujson = json::parse(ubody, nullptr, false);
    if (ex["upstream_body_json_subset"] && !subset(expect("upstream_body_json_subset"), ujson)) {
      bad("upstream_body_json_subset: want " + expect("upstream_body_json_subset").dump());
    }
    absentFrom("upstream_body_json_absent_keys", ujson, false);
    if (ex["upstream_body_contains"] &&
        ubody.find(expect("upstream_body_contains").get<std::string>()) == std::string::npos) {
      bad("upstream_body_contains");
    }
  }

  void statusStep(const std::string& where, const YAML::Node& step) {
    syncIfNeeded(where);
    const YAML::Node& s = step["status_api"];
    const std::string path = substitute(s["path"].as<std::string>(), vars);
    const int eventually = step["eventually_s"] ? step["eventually_s"].as<int>() : 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(eventually);
    while (true) {
      const size_t before = failures.size();
      const std::string request = s["method"].as<std::string>() + " " + path +
                                  " HTTP/1.1\r\nHost: localhost\r\n\r\n";
      const WireResponse r = exchange(cl.dp->status_port, request, false);
      checkProxy(where, step["expect"], r, false, json::object(),
                 "\n  -> " + std::to_string(r.status) + " " + r.body.substr(0, 2000));
      if (failures.size() == before || std::chrono::steady_clock::now() > deadline) return;
      failures.resize(before);
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }

  void run(const YAML::Node& c) {
    int n = 0;
    for (const auto& step : c["steps"]) {
      const std::string where = "step " + std::to_string(++n);
      if (step["admin"]) {
        adminStep(where, step);
      } else if (step["proxy"]) {
        proxyStep(where, step);
      } else if (step["status_api"]) {
        statusStep(where, step);
      }
    }
  }
};

// Why a case cannot run on this build: it configures a plugin we do not ship.
std::string unsupportedReason(const YAML::Node& c, const std::set<std::string>& enabled) {
  for (const auto& step : c["steps"]) {
    const YAML::Node a = step["admin"];
    if (!a || !a["json"] || !a["json"]["name"]) continue;
    const std::string path = a["path"].as<std::string>();
    if (path.find("/plugins") == std::string::npos) continue;
    const std::string name = a["json"]["name"].as<std::string>();
    if (enabled.count(name) == 0) return "plugin '" + name + "' is not built yet";
  }
  return "";
}

int utcMinute() { return static_cast<int>(std::time(nullptr) / 60); }

TEST_CASE("conformance: Kong bundled-plugin behaviour through the real proxy") {
  const YAML::Node doc = YAML::LoadFile(conformanceCasesPath("plugin_cases.yaml"));
  REQUIRE(doc["format"].as<std::string>() == "portico-plugin-cases/v1");
  Cluster cluster;
  const char* only = std::getenv("PORTICO_CONFORMANCE_ONLY");  // e.g. "PK001" while debugging
  int run = 0, skipped = 0;
  std::vector<std::string> failures;
  for (const auto& c : doc["cases"]) {
    const std::string id = c["id"].as<std::string>();
    if (only != nullptr && id != only) continue;
    if (const std::string reason = unsupportedReason(c, cluster.enabled); !reason.empty()) {
      std::printf("conformance: skipped %s: %s\n", id.c_str(), reason.c_str());
      ++skipped;
      continue;
    }
    const bool retry_on_flip = c["retry_on_window_flip"] && c["retry_on_window_flip"].as<bool>();
    for (int attempt = 0; attempt < 2; ++attempt) {
      cluster.reset();
      REQUIRE(cluster.awaitApplied());
      CaseRun cr{cluster, id, {{"echo_url", cluster.echoUrl()}}, {}};
      const int minute = utcMinute();
      cr.run(c);
      if (!cr.failures.empty() && retry_on_flip && attempt == 0 && utcMinute() != minute) {
        continue;
      }
      failures.insert(failures.end(), cr.failures.begin(), cr.failures.end());
      break;
    }
    ++run;
  }
  std::printf("conformance: plugin cases run: %d, skipped: %d, failed checks: %zu\n", run,
              skipped, failures.size());
  for (const auto& f : failures) {
    UNSCOPED_INFO(f);
  }
  CHECK(failures.empty());
  CHECK(run > 0);
}

}  // namespace
}  // namespace portico::testing
