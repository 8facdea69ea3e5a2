// The portico-dp binary run without a control plane (--declarative_config), against the
// shared EchoUpstream: readiness, proxying, 404, SIGTERM drain, and one-line flag errors.
#include <csignal>
#include <cstdio>
#include <fstream>
#include <string>

#include <catch2/catch.hpp>

#include "tests/support/test_support.h"

namespace portico::testing {
namespace {

std::string writeConfig(int upstream_port) {
  const std::string path = "/tmp/portico-dp-binary-test-" + std::to_string(::getpid()) + ".json";
  std::ofstream(path) << R"({"generation": "5", "group": "default",
    "services": [{"id": "aaaaaaaa-0000-4000-8000-000000000001", "name": "echo",
      "protocol": "http", "host": "127.0.0.1", "port": )"
                      << upstream_port << R"(, "enabled": true,
      "connect_timeout": 2000, "read_timeout": 5000, "write_timeout": 5000}],
    "routes": [{"id": "aaaaaaaa-0000-4000-8000-000000000002", "name": "echo",
      "protocols": ["http", "https"], "paths": ["/echo"], "strip_path": true,
      "path_handling": "v0", "https_redirect_status_code": 426,
      "request_buffering": true, "response_buffering": true,
      "service_id": "aaaaaaaa-0000-4000-8000-000000000001"}]})";
  return path;
}

TEST_CASE("portico-dp: serves a declarative config and drains on SIGTERM") {
  EchoUpstream upstream;
  const std::string config = writeConfig(upstream.port());
  const int proxy_port = freePort();
  const int status_port = freePort();
  Process dp(binaryPath("portico-dp"),
             {"--declarative_config=" + config,
              "--proxy_listen=127.0.0.1:" + std::to_string(proxy_port),
              "--proxy_ssl_listen=off",  // 8443 may be another test's DP
              "--status_listen=127.0.0.1:" + std::to_string(status_port), "--workers=2"});
  REQUIRE(waitFor([&] {
    return httpRequest("127.0.0.1", status_port, "GET", "/status/ready").status == 200;
  }, std::chrono::seconds(10)));
  INFO(dp.log());
  HttpResponse st = httpRequest("127.0.0.1", status_port, "GET", "/status");
  CHECK(st.body.find("\"generation\":5") != std::string::npos);

  HttpResponse r = httpRequest("127.0.0.1", proxy_port, "POST", "/echo/things?q=1", "payload");
  CHECK(r.status == 200);
  REQUIRE(upstream.received().size() == 1);
  const auto got = upstream.received().front();
  CHECK(got.method == "POST");
  CHECK(got.target == "/things?q=1");
  CHECK(got.body == "payload");
  CHECK(got.headers.at("x-forwarded-prefix") == "/echo");
  CHECK(got.headers.at("host") == "127.0.0.1:" + std::to_string(upstream.port()));

  HttpResponse miss = httpRequest("127.0.0.1", proxy_port, "GET", "/nope");
  CHECK(miss.status == 404);
  CHECK(miss.body == R"({"message":"no Route matched with those values"})");

  HttpResponse metrics = httpRequest("127.0.0.1", status_port, "GET", "/metrics");
  CHECK(metrics.body.find("portico_dp_requests_total 2") != std::string::npos);

  CHECK(dp.stop() == 0);
  CHECK(dp.log().find("drained") != std::string::npos);
  std::remove(config.c_str());
}

TEST_CASE("portico-dp: SIGUSR1 reopens file-log's file after a rotation") {
  EchoUpstream upstream;
  const std::string base = "/tmp/portico-dp-binary-filelog-" + std::to_string(::getpid());
  const std::string log = base + ".log";
  const std::string config = base + ".json";
  std::ofstream(config) << R"({"generation": "1", "group": "default",
    "services": [{"id": "aaaaaaaa-0000-4000-8000-000000000001", "name": "echo",
      "protocol": "http", "host": "127.0.0.1", "port": )"
                        << upstream.port() << R"(, "enabled": true,
      "connect_timeout": 2000, "read_timeout": 5000, "write_timeout": 5000}],
    "routes": [{"id": "aaaaaaaa-0000-4000-8000-000000000002", "name": "echo",
      "protocols": ["http", "https"], "paths": ["/echo"], "strip_path": true,
      "path_handling": "v0", "https_redirect_status_code": 426,
      "request_buffering": true, "response_buffering": true,
      "service_id": "aaaaaaaa-0000-4000-8000-000000000001"}],
    "plugins": [{"id": "aaaaaaaa-0000-4000-8000-000000000003", "name": "file-log",
      "config": "{\"path\": \")" << log << R"(\", \"reopen\": false, \"custom_fields_by_lua\": null}",
      "protocols": ["grpc", "grpcs", "http", "https"], "enabled": true,
      "created_at": 1700000000, "updated_at": 1700000000}]})";
  const int proxy_port = freePort();
  const int status_port = freePort();
  Process dp(binaryPath("portico-dp"),
             {"--declarative_config=" + config,
              "--proxy_listen=127.0.0.1:" + std::to_string(proxy_port), "--proxy_ssl_listen=off",
              "--status_listen=127.0.0.1:" + std::to_string(status_port), "--workers=1"});
  REQUIRE(waitFor([&] {
    return httpRequest("127.0.0.1", status_port, "GET", "/status/ready").status == 200;
  }, std::chrono::seconds(10)));
  INFO(dp.log());
  auto lines = [](const std::string& path) {
    std::ifstream in(path);
    int n = 0;
    for (std::string l; std::getline(in, l);) ++n;
    return n;
  };
  REQUIRE(httpRequest("127.0.0.1", proxy_port, "GET", "/echo/1").status == 200);
  REQUIRE(waitFor([&] { return lines(log) == 1; }, std::chrono::seconds(5)));
  REQUIRE(std::rename(log.c_str(), (log + ".1").c_str()) == 0);
  ::kill(dp.pid(), SIGUSR1);
  REQUIRE(waitFor([&] { return dp.log().find("reopening") != std::string::npos; },
                  std::chrono::seconds(5)));
  REQUIRE(httpRequest("127.0.0.1", proxy_port, "GET", "/echo/2").status == 200);
  CHECK(waitFor([&] { return lines(log) == 1; }, std::chrono::seconds(5)));  // a new file
  CHECK(lines(log + ".1") == 1);
  CHECK(dp.running());  // SIGUSR1 does not stop it
  CHECK(dp.stop() == 0);
  for (const std::string& p : {log, log + ".1", config}) std::remove(p.c_str());
}

// Runs a shell command and returns its stdout.
std::string shell(const std::string& cmd) {
  std::string out;
  FILE* f = ::popen(cmd.c_str(), "r");
  if (f == nullptr) return out;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof(buf), f)) > 0;) out.append(buf, n);
  ::pclose(f);
  return out;
}

TEST_CASE("portico-dp: HTTPS listener with a self-signed default certificate, debug headers") {
  EchoUpstream upstream;
  const std::string config = writeConfig(upstream.port());
  const int proxy_port = freePort();
  const int tls_port = freePort();
  const int status_port = freePort();
  Process dp(binaryPath("portico-dp"),
             {"--declarative_config=" + config,
              "--proxy_listen=127.0.0.1:" + std::to_string(proxy_port),
              "--proxy_ssl_listen=127.0.0.1:" + std::to_string(tls_port),
              "--status_listen=127.0.0.1:" + std::to_string(status_port), "--workers=1",
              "--allow_debug_header", "--trusted_ips=127.0.0.1"});
  REQUIRE(waitFor([&] {
    return httpRequest("127.0.0.1", status_port, "GET", "/status/ready").status == 200;
  }, std::chrono::seconds(10)));
  INFO(dp.log());
  const std::string out = shell("curl -sk -D - -H 'Kong-Debug: 1' https://127.0.0.1:" +
                                std::to_string(tls_port) + "/echo/x -o /dev/null");
  INFO(out);
  CHECK(out.rfind("HTTP/1.1 200", 0) == 0);
  CHECK(out.find("Kong-Route-Id: ") != std::string::npos);
  const std::string cert = shell("echo | openssl s_client -connect 127.0.0.1:" +
                                 std::to_string(tls_port) + " 2>/dev/null | grep subject=");
  CHECK(cert.find("CN = localhost") != std::string::npos);
  CHECK(dp.stop() == 0);
  std::remove(config.c_str());
}

TEST_CASE("portico-dp: bad flags and configs fail with one line") {
  Process bad_trusted(binaryPath("portico-dp"), {"--trusted_ips=10.0.0.0/99"});
  CHECK(bad_trusted.wait(std::chrono::seconds(10)) != 0);
  CHECK(bad_trusted.log() == "portico-dp: invalid --trusted_ips: invalid CIDR: 10.0.0.0/99\n");

  Process bad_listen(binaryPath("portico-dp"), {"--proxy_listen=nonsense"});
  CHECK(bad_listen.wait(std::chrono::seconds(10)) != 0);
  CHECK(bad_listen.log() == "portico-dp: invalid --proxy_listen: nonsense\n");

  Process missing(binaryPath("portico-dp"), {"--declarative_config=/nonexistent.json"});
  CHECK(missing.wait(std::chrono::seconds(10)) != 0);
  CHECK(missing.log().find("cannot read --declarative_config") != std::string::npos);
}

}  // namespace
}  // namespace portico::testing
