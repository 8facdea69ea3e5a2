// End to end with the real binaries: PostgreSQL + portico-cp + portico-dp + an upstream.
// A service and a route created over the Admin API reach the DP over gRPC and traffic flows;
// deleting the route makes the proxy answer Kong's 404.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/support/test_support.h"

using namespace portico::testing;
using nlohmann::json;

namespace {

struct Cluster {
  TestPostgres pg;
  int admin_port = freePort();
  int cluster_port = freePort();
  int proxy_port = freePort();
  int status_port = freePort();
  std::unique_ptr<Process> cp;
  std::unique_ptr<Process> dp;

  Cluster() {
    Process migrate(binaryPath("portico-cp"), {"--pg_dsn=" + pg.dsn(), "migrations", "up"});
    REQUIRE(migrate.wait(std::chrono::seconds(60)) == 0);
    cp = std::make_unique<Process>(
        binaryPath("portico-cp"),
        std::vector<std::string>{"--pg_dsn=" + pg.dsn(),
                                 "--admin_listen=127.0.0.1:" + std::to_string(admin_port),
                                 "--cluster_listen=127.0.0.1:" + std::to_string(cluster_port),
                                 "--cluster_insecure"});
    dp = std::make_unique<Process>(
        binaryPath("portico-dp"),
        std::vector<std::string>{"--proxy_listen=127.0.0.1:" + std::to_string(proxy_port),
                                 "--status_listen=127.0.0.1:" + std::to_string(status_port),
                                 "--cp_address=127.0.0.1:" + std::to_string(cluster_port),
                                 "--proxy_ssl_listen=127.0.0.1:" + std::to_string(freePort()),
                                 "--cluster_insecure", "--workers=2"});
    INFO("cp log:\n" << cp->log());
    REQUIRE(waitFor([&] { return admin("GET", "/status").status == 200; },
                    std::chrono::seconds(20)));
  }

  HttpResponse admin(const std::string& method, const std::string& path,
                     const std::string& body = "") {
    return httpRequest("127.0.0.1", admin_port, method, path, body);
  }

  uint64_t dpGeneration() {
    auto r = httpRequest("127.0.0.1", status_port, "GET", "/status");
    if (r.status != 200) {
      return 0;
    }
    return json::parse(r.body, nullptr, false).value("generation", uint64_t{0});
  }
};

}  // namespace

TEST_CASE("e2e: a route created over the Admin API proxies traffic; deleting it gives 404") {
  EchoUpstream upstream;
  Cluster cluster;

  // Before any config the DP is up but not ready.
  REQUIRE(waitFor([&] {
    return httpRequest("127.0.0.1", cluster.status_port, "GET", "/status").status == 200;
  }, std::chrono::seconds(20)));

  auto service = cluster.admin(
      "POST", "/services",
      json{{"name", "echo"}, {"url", "http://127.0.0.1:" + std::to_string(upstream.port())}}
          .dump());
  INFO(service.body);
  REQUIRE(service.status == 201);
  auto route = cluster.admin("POST", "/services/echo/routes",
                             json{{"name", "r1"}, {"paths", {"/e2e"}}}.dump());
  INFO(route.body);
  REQUIRE(route.status == 201);
  // The group's generation after both writes (the CP's /status); reading the DP's here
  // instead raced with the DP applying them.
  const json cp_status = json::parse(cluster.admin("GET", "/status", "").body);
  const uint64_t generation_after_writes = cp_status["configuration"]["generation"];

  // The DP reports a generation that includes both writes, then serves the route.
  INFO("dp log:\n" << cluster.dp->log() << "\ncp log:\n" << cluster.cp->log());
  REQUIRE(waitFor([&] {
    return httpRequest("127.0.0.1", cluster.status_port, "GET", "/status/ready").status == 200 &&
           cluster.dpGeneration() >= generation_after_writes;
  }, std::chrono::seconds(10)));
  HttpResponse proxied;
  REQUIRE(waitFor([&] {
    proxied = httpRequest("127.0.0.1", cluster.proxy_port, "GET", "/e2e/hello?x=1", "",
                          {{"Host", "example.test"}});
    return proxied.status == 200;
  }, std::chrono::seconds(10)));
  auto received = upstream.received();
  REQUIRE(!received.empty());
  CHECK(received.back().target == "/hello?x=1");  // strip_path defaults to true
  CHECK(received.back().headers["x-forwarded-host"] == "example.test");

  // Deleting the route: the proxy answers Kong's 404 body once the DP has the new generation.
  const uint64_t before_delete = cluster.dpGeneration();
  REQUIRE(cluster.admin("DELETE", "/routes/r1").status == 204);
  REQUIRE(waitFor([&] { return cluster.dpGeneration() > before_delete; },
                  std::chrono::seconds(10)));
  auto missing = httpRequest("127.0.0.1", cluster.proxy_port, "GET", "/e2e/hello");
  CHECK(missing.status == 404);
  CHECK(json::parse(missing.body) == json{{"message", "no Route matched with those values"}});
}

TEST_CASE("e2e: portico-cp exits with one line naming PostgreSQL's address when it is down") {
  const int port = freePort();
  Process cp(binaryPath("portico-cp"),
             {"--pg_dsn=host=127.0.0.1 port=" + std::to_string(port) + " dbname=x user=postgres",
              "--admin_listen=127.0.0.1:" + std::to_string(freePort()),
              "--cluster_listen=127.0.0.1:" + std::to_string(freePort()), "--cluster_insecure"});
  const int status = cp.wait(std::chrono::seconds(30));
  CHECK(status != 0);
  CHECK(status != -1000);
  const std::string log = cp.log();
  INFO(log);
  CHECK(log.find("127.0.0.1:" + std::to_string(port)) != std::string::npos);
  CHECK(std::count(log.begin(), log.end(), '\n') == 1);
}

TEST_CASE("e2e: a DP without a reachable CP retries and stays not ready") {
  const int status_port = freePort();
  Process dp(binaryPath("portico-dp"),
             {"--proxy_listen=127.0.0.1:" + std::to_string(freePort()),
              "--status_listen=127.0.0.1:" + std::to_string(status_port),
              "--proxy_ssl_listen=off",
              "--cp_address=127.0.0.1:" + std::to_string(freePort()), "--cluster_insecure",
              "--workers=1"});
  REQUIRE(waitFor([&] {
    return httpRequest("127.0.0.1", status_port, "GET", "/status").status == 200;
  }, std::chrono::seconds(20)));
  CHECK(httpRequest("127.0.0.1", status_port, "GET", "/status/ready").status == 503);
  CHECK(dp.running());
}
