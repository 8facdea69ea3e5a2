// Provisioning on real processes: portico-cp --cluster_mtls=pki --keyring creates its CA in
// PostgreSQL and its own certificate; the Admin API issues a DP certificate (or a join token)
// for a control plane with ready-to-run material; a portico-dp started from exactly that
// material joins the group and serves its config. Revocation drops a connected DP within
// seconds and refuses it at reconnect while it keeps serving traffic; rotating the
// certificate files brings it back without a restart; a token admits one node; expired,
// revoked, wrong-group and foreign credentials are refused with one clear line.
#include <chrono>
#include <fstream>
#include <string>
#include <thread>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/support/e2e_cluster.h"
#include "tests/support/test_support.h"

namespace {

using namespace std::chrono_literals;
using namespace portico::testing;
using nlohmann::json;

void writeFile(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

bool connected(Dp& dp) {
  HttpResponse r = httpRequest("127.0.0.1", dp.status_port, "GET", "/status");
  json j = json::parse(r.body, nullptr, false);
  return j.is_object() && j.contains("control_plane") &&
         j["control_plane"].value("connected", false);
}

std::vector<std::string> dpArgs(const std::string& dir, const std::string& group) {
  return {"--cluster_mtls=pki", "--cluster_server_name=localhost",
          "--cluster_ca=" + dir + "/ca.crt", "--control_plane=" + group,
          "--cluster_reconnect_max_ms=500"};
}

}  // namespace

TEST_CASE("e2e provisioning: issued certificates and tokens join their group; revoked, "
          "expired, reused and foreign ones are refused; rotation without a restart",
          "[e2e][provisioning]") {
  EchoUpstream upstream(0, /*record=*/false);
  Postgres pg;
  migrate(pg.dsn());
  TempDir dir;
  Cp cp(pg.dsn(), {"--cluster_mtls=pki", "--keyring=" + dir.path + "/keyring"});
  cp.adminOk("POST", "/control-planes", {{"name", "team-a"}}, 201);
  cp.adminOk("POST", "/control-planes/team-a/services",
             {{"name", "orders"}, {"url", "http://127.0.0.1:" + std::to_string(upstream.port())}},
             201);
  cp.adminOk("POST", "/control-planes/team-a/services/orders/routes",
             {{"name", "o"}, {"paths", {"/orders"}}}, 201);

  // Issue: a certificate with its material, timed.
  const auto t0 = std::chrono::steady_clock::now();
  HttpResponse issued = cp.admin("POST", "/control-planes/team-a/data-plane-certificates",
                                 json{{"name", "eu-west-1a"}}.dump());
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  REQUIRE(issued.status == 201);
  WARN("issuing a DP certificate over the Admin API took " << ms << " ms (goal <= 50 ms)");
  json cert = json::parse(issued.body);
  for (const char* key : {"id", "cert", "key", "ca_cert", "expires_at", "run"}) CHECK(cert.contains(key));
  const std::string command = cert["run"]["command"];
  CHECK(command.find("--control_plane=team-a") != std::string::npos);
  CHECK(command.find("--cluster_cert=") != std::string::npos);
  CHECK(cert["run"]["systemd_unit"].get<std::string>().find("ExecStart=") != std::string::npos);
  CHECK(cert["run"]["kubernetes"].get<std::string>().find("kind: Deployment") != std::string::npos);
  writeFile(dir.path + "/ca.crt", cert["ca_cert"]);
  writeFile(dir.path + "/dp1.crt", cert["cert"]);
  writeFile(dir.path + "/dp1.key", cert["key"]);
  // Listed without the key; the key is shown once.
  json listed = json::parse(cp.admin("GET", "/control-planes/team-a/data-plane-certificates").body);
  REQUIRE(listed["data"].size() == 1);
  CHECK(!listed["data"][0].contains("key"));
  CHECK(listed["data"][0]["id"] == cert["id"]);
  HttpResponse one = cp.admin("GET", "/control-planes/team-a/data-plane-certificates/" +
                                         cert["id"].get<std::string>());
  REQUIRE(one.status == 200);
  CHECK(json::parse(one.body)["fingerprint"] == listed["data"][0]["fingerprint"]);
  CHECK(cp.admin("GET", "/control-planes/team-a/data-plane-certificates/"
                        "00000000-0000-4000-8000-000000000000").status == 404);

  // A DP from that material joins team-a and serves its route.
  auto args = dpArgs(dir.path, "team-a");
  args.push_back("--cluster_cert=" + dir.path + "/dp1.crt");
  args.push_back("--cluster_key=" + dir.path + "/dp1.key");
  Dp dp1(cp.cluster_port, dir.path + "/dp1.cache", args);
  REQUIRE(waitFor([&] { return dp1.get("/orders") == 200; }, 20s));
  CHECK(connected(dp1));

  // The same certificate may not join another group.
  {
    auto wrong = dpArgs(dir.path, "default");
    wrong.push_back("--cluster_cert=" + dir.path + "/dp1.crt");
    wrong.push_back("--cluster_key=" + dir.path + "/dp1.key");
    Dp dp(cp.cluster_port, dir.path + "/wrong.cache", wrong);
    std::this_thread::sleep_for(3s);
    CHECK_FALSE(connected(dp));
    CHECK(dp.get("/orders") != 200);
  }
  // A certificate from another CA fails the TLS handshake.
  {
    REQUIRE(std::system(("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
                         "-subj /CN=intruder -days 1 -keyout " + dir.path + "/x.key -out " +
                         dir.path + "/x.crt >/dev/null 2>&1").c_str()) == 0);
    auto foreign = dpArgs(dir.path, "team-a");
    foreign.push_back("--cluster_cert=" + dir.path + "/x.crt");
    foreign.push_back("--cluster_key=" + dir.path + "/x.key");
    Dp dp(cp.cluster_port, dir.path + "/x.cache", foreign);
    std::this_thread::sleep_for(3s);
    CHECK_FALSE(connected(dp));
  }
  // A malformed certificate file: the DP exits with one line naming it.
  {
    writeFile(dir.path + "/bad.crt", "not a certificate");
    auto bad = dpArgs(dir.path, "team-a");
    bad.push_back("--cluster_cert=" + dir.path + "/bad.crt");
    bad.push_back("--cluster_key=" + dir.path + "/dp1.key");
    Process p(binaryPath("portico-dp"),
              {"--proxy_listen=127.0.0.1:" + std::to_string(freePort()),
               "--proxy_ssl_listen=off", "--status_listen=127.0.0.1:" + std::to_string(freePort()),
               "--cp_address=127.0.0.1:" + std::to_string(cp.cluster_port), bad[0], bad[1], bad[2],
               bad[3], bad[5], bad[6]});
    CHECK(p.wait(20s) != 0);
  }

  // A join token: only the CA certificate and the token; it admits the first node only.
  HttpResponse tok = cp.admin("POST", "/control-planes/team-a/data-plane-tokens",
                              json{{"expires_in", 600}}.dump());
  REQUIRE(tok.status == 201);
  const json token = json::parse(tok.body);
  CHECK(token["run"]["command"].get<std::string>().find("--cluster_join_token=") != std::string::npos);
  auto targs = dpArgs(dir.path, "team-a");
  targs.push_back("--cluster_join_token=" + token["token"].get<std::string>());
  Dp dp2(cp.cluster_port, dir.path + "/dp2.cache", targs);
  REQUIRE(waitFor([&] { return dp2.get("/orders") == 200; }, 20s));
  {
    Dp dp3(cp.cluster_port, dir.path + "/dp3.cache", targs);  // another node, same token
    std::this_thread::sleep_for(3s);
    CHECK_FALSE(connected(dp3));
  }
  {
    auto unknown = dpArgs(dir.path, "team-a");
    unknown.push_back("--cluster_join_token=ptk_not-a-token");
    Dp dp(cp.cluster_port, dir.path + "/unknown.cache", unknown);
    std::this_thread::sleep_for(3s);
    CHECK_FALSE(connected(dp));
  }

  // Revoke dp1's certificate: dropped within 10 s, refused at reconnect, still serving.
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0}, served{0};
  std::thread traffic([&] {
    while (!stop) {
      (dp1.get("/orders") == 200 ? served : failures)++;
      std::this_thread::sleep_for(10ms);
    }
  });
  const auto r0 = std::chrono::steady_clock::now();
  REQUIRE(cp.admin("DELETE", "/control-planes/team-a/data-plane-certificates/" +
                                 cert["id"].get<std::string>()).status == 204);
  REQUIRE(waitFor([&] { return !connected(dp1); }, 10s));
  WARN("a revoked certificate's DP was dropped after "
       << std::chrono::duration<double>(std::chrono::steady_clock::now() - r0).count() << " s");
  std::this_thread::sleep_for(3s);
  CHECK_FALSE(connected(dp1));
  // Rotation: new files in place; the DP picks them up at its next attempt, no restart.
  HttpResponse next = cp.admin("POST", "/control-planes/team-a/data-plane-certificates", "{}");
  REQUIRE(next.status == 201);
  json cert2 = json::parse(next.body);
  writeFile(dir.path + "/dp1.key", cert2["key"]);
  writeFile(dir.path + "/dp1.crt", cert2["cert"]);
  REQUIRE(waitFor([&] { return connected(dp1); }, 15s));
  stop = true;
  traffic.join();
  CHECK(failures == 0);
  CHECK(served > 100);

  // An expired token (its expiry moved into the past in the database): dp2 is dropped.
  REQUIRE(std::system(("psql -h 127.0.0.1 -p " + std::to_string(pg.port) +
                       " -U postgres -d portico -qc \"UPDATE dp_credentials SET expires_at = 1 "
                       "WHERE kind = 'token'\" >/dev/null").c_str()) == 0);
  CHECK(waitFor([&] { return !connected(dp2); }, 12s));

  // Bad requests name the field; unknown ids are 404.
  auto bad = [&](const json& body, const std::string& field) {
    HttpResponse r = cp.admin("POST", "/control-planes/team-a/data-plane-certificates", body.dump());
    INFO(body.dump() << " -> " << r.body);
    CHECK(r.status == 400);
    CHECK(json::parse(r.body)["invalid_parameters"][0]["field"] == field);
  };
  bad({{"expires_in", -5}}, "expires_in");
  bad({{"expires_in", 1000LL * 365 * 24 * 3600}}, "expires_in");
  bad({{"colour", "red"}}, "colour");
  bad({{"name", std::string(200, 'x')}}, "name");
  CHECK(cp.admin("DELETE", "/control-planes/team-a/data-plane-certificates/nope").status == 404);
  CHECK(cp.admin("POST", "/control-planes/no-such/data-plane-certificates", "{}").status == 404);
}
