// The portico-dp binary run without a control plane (--declarative_config), against the
// shared EchoUpstream: readiness, proxying, 404, SIGTERM drain, and one-line flag errors.
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

TEST_CASE("portico-dp: bad flags and configs fail with one line") {
  Process bad_listen(binaryPath("portico-dp"), {"--proxy_listen=nonsense"});
  CHECK(bad_listen.wait(std::chrono::seconds(10)) != 0);
  CHECK(bad_listen.log() == "portico-dp: invalid --proxy_listen: nonsense\n");

  Process missing(binaryPath("portico-dp"), {"--declarative_config=/nonexistent.json"});
  CHECK(missing.wait(std::chrono::seconds(10)) != 0);
  CHECK(missing.log().find("cannot read --declarative_config") != std::string::npos);
}

}  // namespace
}  // namespace portico::testing
