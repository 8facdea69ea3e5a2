// The Dev Portal against a real portico-cp (its --portal_listen listener and the Admin API's
// /portal/... endpoints) on PostgreSQL, and, for keys, a real portico-dp proxy: pages and
// their security headers, published APIs and their documents, sign-up, approval, login and
// sessions, CSRF refusals, rate limits, hostile names returned as text, and an approved
// registration's key working at the proxy until it is revoked.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/support/e2e_cluster.h"
#include "tests/support/test_support.h"

namespace portico::testing {
namespace {

using nlohmann::json;

constexpr char kXss[] = "<img src=x onerror=alert(1)><script>alert(2)</script>\"'&";

const json kSpec = json::parse(R"j({
  "openapi": "3.0.3",
  "info": {"title": "Orders API", "version": "1.0.0",
           "description": "<script>alert('spec')</script> Orders."},
  "paths": {"/orders/{id}": {"get": {"operationId": "getOrder", "summary": "One order",
    "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
    "responses": {"200": {"description": "the order"}}}}}
})j");

// A browser-like client of the portal: keeps its cookies and the CSRF token that applies.
struct PortalClient {
  int port = 0;
  std::map<std::string, std::string> cookies;
  std::string csrf;

  HttpResponse call(const std::string& method, const std::string& path,
                    const json& body = json(), bool with_csrf = true,
                    std::map<std::string, std::string> headers = {}) {
    std::string cookie;
    for (const auto& [k, v] : cookies) {
      cookie += (cookie.empty() ? "" : "; ") + k + "=" + v;
    }
    if (!cookie.empty() && headers.count("Cookie") == 0) headers["Cookie"] = cookie;
    if (with_csrf && !csrf.empty()) headers["X-CSRF-Token"] = csrf;
    HttpResponse r = httpRequest("127.0.0.1", port, method, path,
                                 body.is_null() ? "" : body.dump(), headers);
    auto it = r.headers.find("set-cookie");
    if (it != r.headers.end()) {
      const std::string& c = it->second;
      const size_t eq = c.find('='), semi = c.find(';');
      const std::string value = c.substr(eq + 1, semi - eq - 1);
      if (value.empty() || c.find("Max-Age=0") != std::string::npos) {
        cookies.erase(c.substr(0, eq));
      } else {
        cookies[c.substr(0, eq)] = value;
      }
    }
    return r;
  }
  json callJson(const std::string& method, const std::string& path, const json& body,
                int expected) {
    HttpResponse r = call(method, path, body);
    INFO(method << " " << path << " -> " << r.status << " " << r.body);
    REQUIRE(r.status == expected);
    return r.body.empty() ? json() : json::parse(r.body);
  }
  void fetchCsrf() { csrf = callJson("GET", "/api/csrf", json(), 200)["csrf_token"]; }
  json signup(const std::string& email, const std::string& password, const std::string& name,
              int expected = 201) {
    return callJson("POST", "/api/signup",
                    {{"email", email}, {"password", password}, {"name", name}}, expected);
  }
  void login(const std::string& email, const std::string& password) {
    json me = callJson("POST", "/api/login", {{"email", email}, {"password", password}}, 200);
    csrf = me["csrf_token"];
  }
};

struct PortalFixture {
  TestPostgres pg;
  int portal_port = freePort();
  std::unique_ptr<Cp> cp;
  EchoUpstream echo;

  explicit PortalFixture(std::vector<std::string> extra = {}) {
    migrate(pg.dsn());
    extra.insert(extra.begin(), {"--cluster_insecure",
                                 "--portal_listen=127.0.0.1:" + std::to_string(portal_port)});
    cp = std::make_unique<Cp>(pg.dsn(), extra);
    // The portal listener opens right after the Admin listener Cp waited for.
    REQUIRE(waitFor([&] {
      return httpRequest("127.0.0.1", portal_port, "GET", "/api/apis").status == 200;
    }, 10s));
  }
  PortalClient client() {
    PortalClient c;
    c.port = portal_port;
    c.fetchCsrf();
    return c;
  }
  json admin(const std::string& method, const std::string& path, const json& body,
             int expected) {
    HttpResponse r = cp->admin(method, path, body.is_null() ? "" : body.dump());
    INFO(method << " " << path << " -> " << r.status << " " << r.body);
    REQUIRE(r.status == expected);
    return r.body.empty() ? json() : json::parse(r.body);
  }
  // A gateway service with a route /orders to the echo upstream, and a catalog version of it.
  std::string publishOrders(const std::string& state = "published") {
    admin("POST", "/services",
          {{"name", "orders"}, {"url", "http://127.0.0.1:" + std::to_string(echo.port())}}, 201);
    admin("POST", "/services/orders/routes", {{"name", "orders"}, {"paths", {"/orders"}}}, 201);
    admin("POST", "/service-catalog/services",
          {{"name", "orders"}, {"display_name", "Orders"}, {"description", "Order book"}}, 201);
    json v = admin("POST", "/service-catalog/services/orders/versions",
                   {{"version", "v1"},
                    {"state", state},
                    {"spec", kSpec},
                    {"gateway_services", {{{"control_plane_id", "default"}, {"service_id", "orders"}}}}},
                   201);
    return v["id"];
  }
  // An approved developer, logged in.
  PortalClient developer(const std::string& email) {
    PortalClient c = client();
    json d = c.signup(email, "correct horse battery", "Dev");
    if (d["status"] != "approved") {
      admin("PATCH", "/portal/developers/" + d["id"].get<std::string>(),
            {{"status", "approved"}}, 200);
    }
    c.login(email, "correct horse battery");
    return c;
  }
};

bool hasHeader(const HttpResponse& r, const std::string& name, const std::string& part) {
  auto it = r.headers.find(name);
  return it != r.headers.end() && it->second.find(part) != std::string::npos;
}

TEST_CASE("portal: pages and assets are embedded, served with a strict CSP") {
  PortalFixture f;
  PortalClient c = f.client();
  HttpResponse index = c.call("GET", "/");
  CHECK(index.status == 200);
  CHECK(hasHeader(index, "content-type", "text/html"));
  CHECK(hasHeader(index, "content-security-policy", "script-src 'self';"));
  CHECK(hasHeader(index, "x-content-type-options", "nosniff"));
  CHECK(hasHeader(index, "x-frame-options", "DENY"));
  CHECK(index.body.find("/assets/portal.js") != std::string::npos);
  // No CORS on the portal: other origins get nothing to read with the developer's cookies.
  CHECK(index.headers.count("access-control-allow-origin") == 0);
  HttpResponse redoc = c.call("GET", "/assets/redoc.standalone.js");
  CHECK(redoc.status == 200);
  CHECK(hasHeader(redoc, "content-type", "text/javascript"));
  CHECK(redoc.body.size() > 500000);  // the vendored renderer, not a loader of one
  HttpResponse docs = c.call("GET", "/docs/orders/v1");
  CHECK(docs.status == 200);
  CHECK(docs.body.find("/assets/redoc.standalone.js") != std::string::npos);
  CHECK(c.call("GET", "/assets/nope.js").status == 404);
  CHECK(c.call("GET", "/assets/../index.html").status == 404);
  CHECK(c.call("GET", "/api/nope").status == 404);
}

TEST_CASE("portal: published versions are listed with their documents, others are not") {
  PortalFixture f;
  PortalClient c = f.client();
  CHECK(c.callJson("GET", "/api/apis", json(), 200)["data"] == json::array());
  const std::string v1 = f.publishOrders();
  f.admin("POST", "/service-catalog/services/orders/versions",
          {{"version", "v2-draft"}, {"spec", kSpec}}, 201);
  json list = c.callJson("GET", "/api/apis", json(), 200)["data"];
  REQUIRE(list.size() == 1);
  CHECK(list[0]["service"]["name"] == "orders");
  CHECK(list[0]["version"]["id"] == v1);
  CHECK(list[0]["version"]["state"] == "published");
  CHECK(list[0]["has_spec"] == true);
  HttpResponse spec = c.call("GET", "/api/apis/orders/v1/spec");
  CHECK(spec.status == 200);
  CHECK(hasHeader(spec, "content-type", "application/json"));
  CHECK(json::parse(spec.body) == kSpec);
  // As the docs page renders it: HTML in descriptions (Markdown) made text, the rest as is.
  HttpResponse docs = c.call("GET", "/api/apis/orders/v1/spec?render=docs");
  CHECK(docs.status == 200);
  json rendered = json::parse(docs.body);
  CHECK(rendered["info"]["description"] == "&lt;script>alert('spec')&lt;/script> Orders.");
  CHECK(rendered["paths"] == kSpec["paths"]);
  CHECK(c.call("GET", "/api/apis/orders/v2-draft/spec").status == 404);
  CHECK(c.call("GET", "/api/apis/orders/v2-draft").status == 404);
  CHECK(c.callJson("GET", "/api/apis/orders/" + v1, json(), 200)["version"]["version"] == "v1");

  // Publishing made the gateway service portal-only: key-auth plus an acl for the version.
  json plugins = f.admin("GET", "/services/orders/plugins", json(), 200)["data"];
  std::vector<std::string> names;
  for (const json& p : plugins) names.push_back(p["name"]);
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"acl", "key-auth"});
  for (const json& p : plugins) {
    if (p["name"] == "acl") CHECK(p["config"]["allow"] == json{"portal-version-" + v1});
  }
}

TEST_CASE("portal: sign-up, approval by an admin, login, session and logout") {
  PortalFixture f;
  PortalClient c = f.client();
  json d = c.signup("Ada@Example.com", "correct horse battery", "Ada");
  CHECK(d["email"] == "ada@example.com");
  CHECK(d["status"] == "pending");
  CHECK(d.count("password_hash") == 0);
  // The password is stored as a salted scrypt hash, never as given.
  const std::string stored =
      f.pg.psql("SELECT password_hash FROM portal_developers WHERE email = 'ada@example.com'");
  CHECK(stored.find("scrypt$32768$8$1$") != std::string::npos);
  CHECK(stored.find("correct horse") == std::string::npos);

  c.signup("ada@example.com", "another password", "Ada 2", 409);
  c.signup("not-an-email", "correct horse battery", "x", 400);
  c.signup("bob@example.com", "short", "x", 400);
  CHECK(c.call("POST", "/api/signup", json::array()).status == 400);
  CHECK(c.call("POST", "/api/signup", json(), true, {{"Content-Type", "text/plain"}}).status ==
        415);

  // Pending: the right password is not enough yet.
  CHECK(c.call("POST", "/api/login",
               {{"email", "ada@example.com"}, {"password", "correct horse battery"}})
            .status == 403);
  json pending = f.admin("GET", "/portal/developers?status=pending", json(), 200);
  REQUIRE(pending["data"].size() == 1);
  CHECK(pending["meta"]["page"]["total"] == 1);
  const std::string id = pending["data"][0]["id"];
  // Kong's error bodies for bad input on the admin side.
  json bad = f.admin("PATCH", "/portal/developers/" + id, {{"status", "maybe"}}, 400);
  CHECK(bad["code"] == 2);
  CHECK(bad["name"] == "schema violation");
  CHECK(bad["fields"]["status"] ==
        "expected one of: approved, pending, rejected, revoked");
  CHECK(f.admin("PATCH", "/portal/developers/" + id, {{"color", "red"}}, 400)["fields"]["color"] ==
        "unknown field");
  CHECK(f.admin("GET", "/portal/developers?status=odd", json(), 400)["fields"]["status"]
            .is_string());
  f.admin("GET", "/portal/developers/00000000-0000-4000-8000-000000000000", json(), 404);
  CHECK(f.admin("PATCH", "/portal/developers/" + id, {{"status", "approved"}}, 200)["status"] ==
        "approved");

  CHECK(c.call("POST", "/api/login",
               {{"email", "ada@example.com"}, {"password", "wrong password"}})
            .status == 401);
  CHECK(c.call("POST", "/api/login",
               {{"email", "nobody@example.com"}, {"password", "wrong password"}})
            .status == 401);
  HttpResponse login = c.call(
      "POST", "/api/login", {{"email", "ADA@example.com"}, {"password", "correct horse battery"}});
  REQUIRE(login.status == 200);
  const std::string cookie = login.headers["set-cookie"];
  CHECK(cookie.find("portico_portal_session=") == 0);
  CHECK(cookie.find("HttpOnly") != std::string::npos);
  CHECK(cookie.find("SameSite=Strict") != std::string::npos);
  CHECK(cookie.find("Secure") == std::string::npos);  // plain HTTP here
  c.csrf = json::parse(login.body)["csrf_token"];
  // The server keeps a hash of the session token, never the token.
  const std::string token = c.cookies["portico_portal_session"];
  CHECK(f.pg.psql("SELECT count(*) FROM portal_sessions WHERE token_hash = '" + token + "'")
            .find('0') != std::string::npos);
  CHECK(c.callJson("GET", "/api/me", json(), 200)["email"] == "ada@example.com");
  json csrf = c.callJson("GET", "/api/csrf", json(), 200);
  CHECK(csrf["csrf_token"] == c.csrf);  // the session's, not the anonymous cookie's
  CHECK(csrf["developer"]["email"] == "ada@example.com");

  // Revoking the developer ends the session at once.
  f.admin("PATCH", "/portal/developers/" + id, {{"status", "revoked"}}, 200);
  CHECK(c.call("GET", "/api/me").status == 401);
  f.admin("PATCH", "/portal/developers/" + id, {{"status", "approved"}}, 200);
  c.fetchCsrf();
  c.login("ada@example.com", "correct horse battery");
  CHECK(c.call("POST", "/api/logout").status == 204);
  CHECK(c.cookies.count("portico_portal_session") == 0);
  CHECK(c.call("GET", "/api/me", json(), true,
               {{"Cookie", "portico_portal_session=" + token}})
            .status == 401);

  // Automatic approval, per portal setting.
  CHECK(f.admin("PATCH", "/portal/settings", {{"auto_approve_developers", "yes"}}, 400)["fields"]
                ["auto_approve_developers"] == "expected a boolean");
  CHECK(f.admin("PATCH", "/portal/settings", {{"auto_approve_developers", true}}, 200)
            ["auto_approve_developers"] == true);
  PortalClient other = f.client();
  CHECK(other.signup("grace@example.com", "correct horse battery", "Grace")["status"] ==
        "approved");
  other.login("grace@example.com", "correct horse battery");
}

TEST_CASE("portal: a state-changing request without the valid CSRF token is refused") {
  PortalFixture f;
  PortalClient c = f.client();
  const json body = {{"email", "eve@example.com"}, {"password", "correct horse battery"}};
  CHECK(c.call("POST", "/api/signup", body, false).status == 403);  // no header
  CHECK(c.call("POST", "/api/signup", body, false,
               {{"X-CSRF-Token", std::string(64, 'a')}})
            .status == 403);  // not the cookie's
  PortalClient no_cookie;  // the header alone, without the cookie it must match
  no_cookie.port = f.portal_port;
  no_cookie.csrf = c.csrf;
  CHECK(no_cookie.call("POST", "/api/signup", body).status == 403);
  CHECK(c.call("POST", "/api/nowhere", json(), false).status == 403);
  CHECK(f.pg.psql("SELECT count(*) FROM portal_developers").find('0') != std::string::npos);

  PortalClient d = f.developer("dev@example.com");
  const std::string session_token = d.csrf;
  // Logged in, the session's own token counts, not the anonymous cookie's.
  std::string anonymous = d.cookies["portico_portal_csrf"];
  d.csrf = anonymous;
  CHECK(d.call("POST", "/api/applications", {{"name", "app"}}).status == 403);
  d.csrf = "";
  CHECK(d.call("POST", "/api/applications", {{"name", "app"}}).status == 403);
  d.csrf = session_token;
  json app = d.callJson("POST", "/api/applications", {{"name", "app"}}, 201);
  d.csrf = "";
  CHECK(d.call("DELETE", "/api/applications/" + app["id"].get<std::string>()).status == 403);
  CHECK(d.call("POST", "/api/logout").status == 403);
  d.csrf = session_token;
  CHECK(d.call("GET", "/api/applications/" + app["id"].get<std::string>()).status == 200);
  CHECK(d.call("DELETE", "/api/applications/" + app["id"].get<std::string>()).status == 204);
}

TEST_CASE("portal: login attempts and sign-ups are rate limited per address and per email") {
  PortalFixture f({"--portal_login_attempts_per_minute=3", "--portal_signups_per_hour=5"});
  PortalClient c = f.client();
  c.signup("target@example.com", "correct horse battery", "T");
  json id = f.admin("GET", "/portal/developers", json(), 200)["data"][0]["id"];
  f.admin("PATCH", "/portal/developers/" + id.get<std::string>(), {{"status", "approved"}}, 200);
  const json wrong = {{"email", "target@example.com"}, {"password", "guess guess"}};
  for (int i = 0; i < 3; ++i) {
    CHECK(c.call("POST", "/api/login", wrong).status == 401);
  }
  HttpResponse limited = c.call("POST", "/api/login", wrong);
  CHECK(limited.status == 429);
  CHECK(limited.headers.count("retry-after") == 1);
  // Even the right password: the email's budget is spent.
  CHECK(c.call("POST", "/api/login",
               {{"email", "target@example.com"}, {"password", "correct horse battery"}})
            .status == 429);
  // Per address: 4 x 3 attempts in all, whatever the emails; 5 were made above.
  int refused = 0;
  for (int i = 0; i < 8; ++i) {
    const int status = c.call("POST", "/api/login",
                              {{"email", "user" + std::to_string(i) + "@example.com"},
                               {"password", "guess guess"}})
                           .status;
    refused += status == 429 ? 1 : 0;
    CHECK((status == 401 || status == 429));
  }
  CHECK(refused == 1);

  // Sign-ups: 3 per email (the first took one), 5 per address.
  CHECK(c.call("POST", "/api/signup",
               {{"email", "target@example.com"}, {"password", "correct horse battery"}})
            .status == 409);
  CHECK(c.call("POST", "/api/signup",
               {{"email", "target@example.com"}, {"password", "correct horse battery"}})
            .status == 409);
  CHECK(c.call("POST", "/api/signup",
               {{"email", "target@example.com"}, {"password", "correct horse battery"}})
            .status == 429);
  CHECK(c.signup("new1@example.com", "correct horse battery", "N")["status"] == "pending");
  c.signup("new2@example.com", "correct horse battery", "N", 429);
}

TEST_CASE("portal: hostile names come back as JSON text; pages never embed them") {
  PortalFixture f;
  const std::string version_id = f.publishOrders();
  PortalClient c = f.client();
  json d = c.signup("mallory@example.com", "correct horse battery", kXss);
  CHECK(d["name"] == kXss);
  f.admin("PATCH", "/portal/developers/" + d["id"].get<std::string>(), {{"status", "approved"}},
          200);
  c.login("mallory@example.com", "correct horse battery");
  HttpResponse created = c.call("POST", "/api/applications",
                                {{"name", kXss}, {"description", std::string(kXss) + "\nline 2"}});
  REQUIRE(created.status == 201);
  CHECK(hasHeader(created, "content-type", "application/json"));
  CHECK(hasHeader(created, "x-content-type-options", "nosniff"));
  json app = json::parse(created.body);
  CHECK(app["name"] == kXss);
  CHECK(c.call("POST", "/api/applications", {{"name", "tab\there"}}).status == 400);
  CHECK(c.call("POST", "/api/applications", {{"name", std::string(256, 'n')}}).status == 400);
  // The admin sees the same text, JSON-escaped.
  json listed = f.admin("GET", "/portal/applications", json(), 200)["data"];
  REQUIRE(listed.size() == 1);
  CHECK(listed[0]["name"] == kXss);
  CHECK(listed[0].count("key") == 0);  // the key is its developer's to see
  // Pages are static: no request's data is ever interpolated into HTML.
  for (const char* page : {"/", "/docs/orders/v1", "/assets/portal.js"}) {
    HttpResponse r = c.call("GET", page);
    CHECK(r.status == 200);
    CHECK(r.body.find("onerror=alert") == std::string::npos);
  }
  // The portal's script inserts text only.
  HttpResponse js = c.call("GET", "/assets/portal.js");
  CHECK(js.body.find("innerHTML") == std::string::npos);
  CHECK(js.body.find("createTextNode") != std::string::npos);
  // The spec's own markup stays data, rendered by Redoc with untrustedSpec.
  HttpResponse docs_js = c.call("GET", "/assets/docs.js");
  CHECK(docs_js.body.find("untrustedSpec: true") != std::string::npos);
  (void)version_id;
}

TEST_CASE("portal: an approved registration's key works at the proxy until revoked") {
  PortalFixture f({"--cluster_heartbeat_interval_ms=500"});
  TempDir dir;
  Dp dp(f.cp->cluster_port, dir.path + "/dp.cache");
  const std::string version_id = f.publishOrders();
  // Published: the route is closed to anyone without a registered key.
  REQUIRE(waitFor([&] { return dp.get("/orders/1") == 401; }, 20s));

  PortalClient c = f.developer("dev@example.com");
  json app = c.callJson("POST", "/api/applications", {{"name", "mobile"}}, 201);
  const std::string app_id = app["id"], key = app["key"];
  CHECK(key.size() == 64);
  json reg = c.callJson("POST", "/api/applications/" + app_id + "/registrations",
                        {{"version_id", version_id}}, 201);
  CHECK(reg["status"] == "pending");
  c.callJson("POST", "/api/applications/" + app_id + "/registrations",
             {{"version_id", version_id}}, 409);
  CHECK(c.call("POST", "/api/applications/" + app_id + "/registrations",
               {{"version_id", "00000000-0000-4000-8000-000000000000"}})
            .status == 400);
  const std::string reg_id = reg["id"];
  auto proxied = [&](const std::string& k) {
    return httpRequest("127.0.0.1", dp.proxy_port, "GET", "/orders/1", "", {{"apikey", k}});
  };
  CHECK(proxied(key).status == 401);  // pending: no consumer yet

  json pending = f.admin("GET", "/portal/registrations?status=pending", json(), 200);
  REQUIRE(pending["data"].size() == 1);
  CHECK(pending["data"][0]["application"]["id"] == app_id);
  CHECK(f.admin("PATCH", "/portal/registrations/" + reg_id, {{"status", "pending"}}, 400)["code"] ==
        2);

  const auto approved_at = std::chrono::steady_clock::now();
  CHECK(f.admin("PATCH", "/portal/registrations/" + reg_id, {{"status", "approved"}}, 200)
            ["status"] == "approved");
  REQUIRE(waitFor([&] { return proxied(key).status == 200; }, 10s));
  const double approve_ms = std::chrono::duration<double, std::milli>(
                                std::chrono::steady_clock::now() - approved_at)
                                .count();
  HttpResponse ok = proxied(key);
  CHECK(json::parse(ok.body)["headers"]["x-consumer-username"] == "portal-app-" + app_id);
  CHECK(proxied("not-a-key").status == 401);
  // The consumer, key and group are ordinary entities, tagged.
  json consumer = f.admin("GET", "/consumers/portal-app-" + app_id, json(), 200);
  CHECK(consumer["tags"] == json{"portico-portal"});
  CHECK(f.admin("GET", "/consumers/portal-app-" + app_id + "/acls", json(), 200)["data"][0]
            ["group"] == "portal-version-" + version_id);

  // Another developer's application, not registered: its key does not pass.
  PortalClient other = f.developer("other@example.com");
  json other_app = other.callJson("POST", "/api/applications", {{"name", "mobile"}}, 201);
  CHECK(proxied(other_app["key"].get<std::string>()).status == 401);
  // Not theirs to see or change.
  CHECK(other.call("GET", "/api/applications/" + app_id).status == 404);
  CHECK(other.call("DELETE", "/api/applications/" + app_id).status == 404);

  const auto revoked_at = std::chrono::steady_clock::now();
  f.admin("PATCH", "/portal/registrations/" + reg_id, {{"status", "revoked"}}, 200);
  REQUIRE(waitFor([&] { return proxied(key).status == 403; }, 10s));
  const double revoke_ms = std::chrono::duration<double, std::milli>(
                               std::chrono::steady_clock::now() - revoked_at)
                               .count();
  std::printf("portal key: usable at the proxy %.0f ms after approval, refused %.0f ms after "
              "revocation (20 ms polling)\n",
              approve_ms, revoke_ms);

  // Automatic approval: the registration is approved as it is made.
  f.admin("PATCH", "/portal/settings", {{"auto_approve_registrations", true}}, 200);
  json auto_reg = other.callJson("POST",
                                 "/api/applications/" + other_app["id"].get<std::string>() +
                                     "/registrations",
                                 {{"version_id", version_id}}, 201);
  CHECK(auto_reg["status"] == "approved");
  REQUIRE(waitFor([&] { return proxied(other_app["key"].get<std::string>()).status == 200; }, 10s));
  // The developer cancels it; then deletes the application: its consumer goes.
  const std::string other_id = other_app["id"];
  CHECK(other.call("DELETE", "/api/applications/" + other_id + "/registrations/" +
                                 auto_reg["id"].get<std::string>())
            .status == 204);
  REQUIRE(waitFor([&] { return proxied(other_app["key"].get<std::string>()).status == 403; }, 10s));
  CHECK(other.call("DELETE", "/api/applications/" + other_id).status == 204);
  f.admin("GET", "/consumers/portal-app-" + other_id, json(), 404);
  REQUIRE(waitFor([&] { return proxied(other_app["key"].get<std::string>()).status == 401; }, 10s));

  // Re-approved, then the developer revoked: every key of theirs stops.
  f.admin("PATCH", "/portal/registrations/" + reg_id, {{"status", "approved"}}, 200);
  REQUIRE(waitFor([&] { return proxied(key).status == 200; }, 10s));
  const std::string dev_id = reg["developer"]["id"];
  f.admin("PATCH", "/portal/developers/" + dev_id, {{"status", "revoked"}}, 200);
  CHECK(f.admin("GET", "/portal/registrations/" + reg_id, json(), 200)["status"] == "revoked");
  REQUIRE(waitFor([&] { return proxied(key).status == 403; }, 10s));
}

// Not run by default (hidden tag): the key's latency over repeated approvals and
// revocations, polling the proxy every millisecond. `cp_portal_test "[.bench]"`.
TEST_CASE("portal: key issuance and revocation latency", "[.bench]") {
  PortalFixture f({"--cluster_heartbeat_interval_ms=500"});
  TempDir dir;
  Dp dp(f.cp->cluster_port, dir.path + "/dp.cache");
  const std::string version_id = f.publishOrders();
  REQUIRE(waitFor([&] { return dp.get("/orders/1") == 401; }, 20s));
  PortalClient c = f.developer("bench@example.com");
  std::vector<double> approve, revoke;
  auto untilStatus = [&](const std::string& key, int status) {
    const auto start = std::chrono::steady_clock::now();
    while (httpRequest("127.0.0.1", dp.proxy_port, "GET", "/orders/1", "", {{"apikey", key}})
               .status != status) {
      std::this_thread::sleep_for(1ms);
      REQUIRE(std::chrono::steady_clock::now() - start < 10s);
    }
  };
  for (int i = 0; i < 20; ++i) {
    json app =
        c.callJson("POST", "/api/applications", {{"name", "bench-" + std::to_string(i)}}, 201);
    json reg = c.callJson("POST", "/api/applications/" + app["id"].get<std::string>() +
                                      "/registrations",
                          {{"version_id", version_id}}, 201);
    auto t0 = std::chrono::steady_clock::now();
    f.admin("PATCH", "/portal/registrations/" + reg["id"].get<std::string>(),
            {{"status", "approved"}}, 200);
    untilStatus(app["key"].get<std::string>(), 200);
    approve.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    t0 = std::chrono::steady_clock::now();
    f.admin("PATCH", "/portal/registrations/" + reg["id"].get<std::string>(),
            {{"status", "revoked"}}, 200);
    untilStatus(app["key"].get<std::string>(), 403);
    revoke.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(approve.begin(), approve.end());
  std::sort(revoke.begin(), revoke.end());
  std::printf("approve -> key works: median %.0f ms, max %.0f ms; revoke -> refused: median %.0f "
              "ms, max %.0f ms (%zu runs)\n",
              approve[approve.size() / 2], approve.back(), revoke[revoke.size() / 2],
              revoke.back(), approve.size());
}

}  // namespace
}  // namespace portico::testing
