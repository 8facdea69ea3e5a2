// Admin API security with the real binary: `portico-cp admins create|list|revoke`, tokens in
// Kong-Admin-Token with --admin_auth=on (401 without, 403 for read-only writes), tokens stored
// only hashed, and HTTPS on the Admin listener with a certificate made here by the openssl CLI.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <regex>

#include <nlohmann/json.hpp>

#include "control_plane/store/migrations.h"
#include "tests/support/test_support.h"

namespace portico::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// One HTTPS request (Connection: close) without certificate verification (self-signed).
HttpResponse httpsRequest(int port, const std::string& method, const std::string& target,
                          const std::string& body = "",
                          const std::map<std::string, std::string>& headers = {}) {
  HttpResponse out;
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return out;
  }
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  SSL_set_tlsext_host_name(ssl, "localhost");
  if (SSL_connect(ssl) == 1) {
    std::string req = method + " " + target + " HTTP/1.1\r\nHost: localhost\r\n"
                      "Connection: close\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
    for (const auto& [k, v] : headers) {
      req += k + ": " + v + "\r\n";
    }
    req += "\r\n" + body;
    SSL_write(ssl, req.data(), static_cast<int>(req.size()));
    std::string raw;
    char buf[4096];
    int n;
    while ((n = SSL_read(ssl, buf, sizeof(buf))) > 0) {
      raw.append(buf, static_cast<size_t>(n));
    }
    std::smatch m;
    if (std::regex_search(raw, m, std::regex("^HTTP/1\\.1 (\\d+)"))) {
      out.status = std::stoi(m[1]);
      const size_t sep = raw.find("\r\n\r\n");
      out.body = sep == std::string::npos ? "" : raw.substr(sep + 4);
    }
  }
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  close(fd);
  return out;
}

std::string tokenFrom(const std::string& log) {
  std::smatch m;
  REQUIRE(std::regex_search(log, m, std::regex("ptk_[0-9a-f]{16}_[0-9a-f]{64}")));
  return m[0];
}

TEST_CASE("admin auth + TLS: tokens, roles, revocation, hashed storage, HTTPS listener") {
  TestPostgres pg;
  REQUIRE(cp::migrateUp(pg.dsn()).ok());
  const std::string dsn = "--pg_dsn=" + pg.dsn();
  auto admins = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {dsn, "admins"});
    auto p = std::make_unique<Process>(binaryPath("portico-cp"), args);
    const int rc = p->wait(20s);
    return std::make_pair(rc, p->log());
  };
  auto [rc1, out1] = admins({"create", "alice", "admin"});
  REQUIRE(rc1 == 0);
  const std::string alice = tokenFrom(out1);
  auto [rc2, out2] = admins({"create", "reader", "read-only"});
  REQUIRE(rc2 == 0);
  const std::string reader = tokenFrom(out2);
  CHECK(admins({"create", "alice"}).first != 0);          // one active token per name
  CHECK(admins({"create", "bob", "root"}).first != 0);    // unknown role
  auto [rc3, listed] = admins({"list"});
  CHECK(rc3 == 0);
  CHECK(listed.find("alice\tadmin") != std::string::npos);
  CHECK(listed.find("reader\tread-only") != std::string::npos);
  CHECK(listed.find("ptk_") == std::string::npos);  // tokens are never shown again
  // Only a salted hash is stored: neither token appears anywhere in the table.
  CHECK(pg.psql("SELECT count(*) FROM admins WHERE position('" + alice.substr(21) +
                "' IN admins::text) > 0 OR position('" + reader.substr(21) +
                "' IN admins::text) > 0") == "0\n");

  // A certificate for the Admin listener, made now.
  char tmpl[] = "/tmp/portico-tls-XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  const std::string dir = tmpl;
  REQUIRE(std::system(("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
                       "-nodes -days 1 -subj /CN=localhost -keyout " + dir + "/key.pem -out " +
                       dir + "/cert.pem >/dev/null 2>&1")
                          .c_str()) == 0);
  const int port = freePort();
  Process cp(binaryPath("portico-cp"),
             {dsn, "--admin_listen=127.0.0.1:" + std::to_string(port),
              "--cluster_listen=127.0.0.1:" + std::to_string(freePort()), "--cluster_insecure",
              "--admin_auth=on", "--admin_ssl_cert=" + dir + "/cert.pem",
              "--admin_ssl_key=" + dir + "/key.pem"});
  REQUIRE(waitFor([&] { return httpsRequest(port, "GET", "/status").status != 0; }, 15s));

  // Nothing is readable without a (valid) token.
  for (const char* path : {"/", "/status", "/services", "/control-planes"}) {
    auto r = httpsRequest(port, "GET", path);
    CHECK(r.status == 401);
    CHECK(json::parse(r.body) ==
          json{{"message", "Invalid credentials. Token or User credentials required"}});
  }
  CHECK(httpsRequest(port, "GET", "/services", "", {{"Kong-Admin-Token", "nope"}}).status == 401);
  CHECK(httpsRequest(port, "GET", "/services", "",
                     {{"Kong-Admin-Token", alice.substr(0, alice.size() - 1) +
                                               (alice.back() == '0' ? "1" : "0")}})
            .status == 401);

  const std::map<std::string, std::string> as_alice = {{"Kong-Admin-Token", alice},
                                                        {"Content-Type", "application/json"}};
  const std::map<std::string, std::string> as_reader = {{"Kong-Admin-Token", reader},
                                                         {"Content-Type", "application/json"}};
  CHECK(httpsRequest(port, "POST", "/services", R"({"name":"s","host":"h"})", as_alice).status ==
        201);
  // Control characters are not header text at all: the HTTP parser answers 400.
  auto ctl = httpsRequest(port, "GET", "/services", "", {{"Authorization", "Bearer \x01\x7f"}});
  CHECK(ctl.status == 400);
  CHECK(ctl.body == R"({"message":"Bad request"})");
  CHECK(httpsRequest(port, "GET", "/services/s", "", as_reader).status == 200);
  CHECK(httpsRequest(port, "GET", "/control-planes", "", as_reader).status == 200);
  auto denied = httpsRequest(port, "POST", "/services", R"({"name":"t","host":"h"})", as_reader);
  CHECK(denied.status == 403);
  CHECK(json::parse(denied.body)["message"] ==
        "reader, you do not have permissions to create this resource");
  CHECK(httpsRequest(port, "PATCH", "/services/s", R"({"port":81})", as_reader).status == 403);
  CHECK(httpsRequest(port, "DELETE", "/services/s", "", as_reader).status == 403);
  CHECK(httpsRequest(port, "POST", "/control-planes", R"({"name":"x"})", as_reader).status ==
        403);
  // "Authorization: Bearer <token>" (Prometheus's scrape `authorization`) works the same.
  CHECK(httpsRequest(port, "GET", "/metrics", "", {{"Authorization", "Bearer " + reader}})
            .status == 200);
  CHECK(httpsRequest(port, "GET", "/metrics", "", {{"Authorization", "Bearer nope"}}).status ==
        401);
  CHECK(httpsRequest(port, "GET", "/metrics", "", {{"Authorization", "Basic " + reader}})
            .status == 401);
  CHECK(httpsRequest(port, "GET", "/metrics", "", {{"Authorization", "bearer " + reader}})
            .status == 200);  // the scheme is case-insensitive (RFC 9110)
  // Hostile values: empty, oversized, binary, the token with junk around it. Each gets
  // Kong's 401 body, before a body is read for writes, and the CP stays up.
  for (const std::string& value :
       {std::string("Bearer"), std::string("Bearer "), "Bearer " + std::string(7000, 'k'),
        std::string("Bearer \xff\xfe\x80"), "Bearer " + reader + "x",
        "Bearer  " + reader, "Bearer " + reader.substr(0, reader.size() / 2)}) {
    INFO(value.size() << " bytes");
    auto r = httpsRequest(port, "GET", "/services", "", {{"Authorization", value}});
    CHECK(r.status == 401);
    CHECK(json::parse(r.body, nullptr, false) ==
          json{{"message", "Invalid credentials. Token or User credentials required"}});
    CHECK(httpsRequest(port, "POST", "/services", R"({"name":"v","host":"h"})",
                       {{"Authorization", value}, {"Content-Type", "application/json"}})
              .status == 401);
  }
  CHECK(httpsRequest(port, "GET", "/services/s", "", as_reader).status == 200);
  CHECK(httpsRequest(port, "POST", "/services", R"({"name":"u","host":"h"})",
                     {{"Authorization", "Bearer " + reader},
                      {"Content-Type", "application/json"}})
            .status == 403);

  // Plain HTTP on the TLS listener gets nothing useful.
  CHECK(httpRequest("127.0.0.1", port, "GET", "/status", "", {{"Kong-Admin-Token", alice}})
            .status != 200);

  // Revocation takes effect within the verification cache's lifetime (5 s).
  CHECK(admins({"revoke", "reader"}).first == 0);
  CHECK(admins({"revoke", "reader"}).first != 0);
  CHECK(waitFor([&] { return httpsRequest(port, "GET", "/services", "", as_reader).status == 401; },
                10s));
  CHECK(httpsRequest(port, "GET", "/services", "", as_alice).status == 200);
  CHECK(cp.stop() == 0);
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
}

TEST_CASE("admin TLS: unusable certificate or key flags exit with one clear line") {
  TestPostgres pg;
  REQUIRE(cp::migrateUp(pg.dsn()).ok());
  Process cp(binaryPath("portico-cp"),
             {"--pg_dsn=" + pg.dsn(), "--admin_listen=127.0.0.1:0",
              "--cluster_listen=127.0.0.1:" + std::to_string(freePort()), "--cluster_insecure",
              "--admin_ssl_cert=/nonexistent/cert.pem", "--admin_ssl_key=/nonexistent/key.pem"});
  CHECK(cp.wait(15s) == 1);
  CHECK(cp.log().find("portico-cp: cannot use --admin_ssl_cert /nonexistent/cert.pem") !=
        std::string::npos);
  Process bad_auth(binaryPath("portico-cp"),
                   {"--pg_dsn=" + pg.dsn(), "--admin_listen=127.0.0.1:0",
                    "--cluster_listen=127.0.0.1:" + std::to_string(freePort()),
                    "--cluster_insecure", "--admin_auth=maybe"});
  CHECK(bad_auth.wait(15s) == 1);
  CHECK(bad_auth.log().find("--admin_auth must be 'on' or 'off'") != std::string::npos);
  Process bad_gui(binaryPath("portico-cp"),
                  {"--pg_dsn=" + pg.dsn(), "--admin_listen=127.0.0.1:0",
                   "--cluster_listen=127.0.0.1:" + std::to_string(freePort()),
                   "--cluster_insecure", "--admin_gui_url=console.example:8002"});
  CHECK(bad_gui.wait(15s) == 1);
  CHECK(bad_gui.log().find("--admin_gui_url: 'console.example:8002' is not an "
                           "http(s)://host[:port] URL") != std::string::npos);
}

// Kong's Admin API CORS (spec/02-integration/04-admin_api/23-cors_spec.lua) with
// --admin_gui_url and --admin_auth=on: preflights need no token (browsers send none).
TEST_CASE("admin CORS: admin_gui_url origins, preflights, every answer's allowed origin") {
  TestPostgres pg;
  REQUIRE(cp::migrateUp(pg.dsn()).ok());
  Process create(binaryPath("portico-cp"), {"--pg_dsn=" + pg.dsn(), "admins", "create", "gui",
                                            "admin"});
  REQUIRE(create.wait(20s) == 0);
  const std::string token = tokenFrom(create.log());
  const int port = freePort();
  Process cp(binaryPath("portico-cp"),
             {"--pg_dsn=" + pg.dsn(), "--admin_listen=127.0.0.1:" + std::to_string(port),
              "--cluster_listen=127.0.0.1:" + std::to_string(freePort()), "--cluster_insecure",
              "--admin_auth=on",
              "--admin_gui_url=http://console.example:8002/manager,https://other.example"});
  REQUIRE(waitFor([&] { return httpRequest("127.0.0.1", port, "GET", "/status").status != 0; },
                  15s));
  const auto call = [&](const std::string& method, const std::string& target,
                        const std::map<std::string, std::string>& headers) {
    return httpRequest("127.0.0.1", port, method, target, "", headers);
  };

  // A preflight from an allowed origin: 204, its origin, the path's methods.
  auto r = call("OPTIONS", "/services/s1",
                {{"Origin", "https://other.example"},
                 {"Access-Control-Request-Method", "PATCH"},
                 {"Access-Control-Request-Headers", "Kong-Admin-Token,Content-Type"}});
  CHECK(r.status == 204);
  CHECK(r.body.empty());
  CHECK(r.headers["access-control-allow-origin"] == "https://other.example");
  CHECK(r.headers["access-control-allow-credentials"] == "true");
  CHECK(r.headers["access-control-allow-methods"] == "DELETE, GET, OPTIONS, PATCH, PUT");
  CHECK(r.headers["allow"] == "DELETE, GET, OPTIONS, PATCH, PUT");
  CHECK(r.headers["access-control-allow-headers"] == "Kong-Admin-Token,Content-Type");
  r = call("OPTIONS", "/control-planes/eu/routes", {{"Origin", "http://console.example:8002"}});
  CHECK(r.status == 204);
  CHECK(r.headers["access-control-allow-origin"] == "http://console.example:8002");
  CHECK(r.headers["access-control-allow-methods"] == "GET, OPTIONS, POST");
  CHECK(r.headers["access-control-allow-headers"] == "Content-Type");

  // From an origin not in admin_gui_url: the answer names the console's, so the browser
  // refuses it.
  r = call("OPTIONS", "/services", {{"Origin", "http://evil.example"}});
  CHECK(r.status == 204);
  CHECK(r.headers["access-control-allow-origin"] == "http://console.example:8002");
  CHECK(call("OPTIONS", "/no-such-thing", {{"Origin", "https://other.example"}}).status == 404);

  // Normal answers carry the allowed origin too, the 401 of a missing token included; the
  // preflight-only headers are not there.
  r = call("GET", "/services", {{"Origin", "https://other.example"}});
  CHECK(r.status == 401);
  CHECK(r.headers["access-control-allow-origin"] == "https://other.example");
  r = call("GET", "/services",
           {{"Origin", "http://console.example:8002"}, {"Kong-Admin-Token", token},
            {"Access-Control-Request-Method", "PATCH"}});
  CHECK(r.status == 200);
  CHECK(r.headers["access-control-allow-origin"] == "http://console.example:8002");
  CHECK(r.headers["access-control-allow-credentials"] == "true");
  CHECK(r.headers.count("access-control-allow-methods") == 0);
  r = call("GET", "/status", {{"Kong-Admin-Token", token}});  // no Origin: the first one
  CHECK(r.headers["access-control-allow-origin"] == "http://console.example:8002");
  CHECK(cp.stop() == 0);
}

}  // namespace
}  // namespace portico::testing
