// portico-cp when PostgreSQL goes away: the Admin API answers 503 with a clear message and
// recovers on its own when the database is back (no restart), and no write is ever half
// applied (a certificate and its SNIs are one transaction). Uses a private PostgreSQL with
// default durability settings that this test stops (immediate mode: a crash) and restarts;
// TestPostgres cannot restart, so a small helper here drives deploy/lib.sh's functions.
#include <catch2/catch.hpp>

#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

#include <nlohmann/json.hpp>

#include "control_plane/store/migrations.h"
#include "tests/integration/control_plane/test_pem.h"
#include "tests/support/test_support.h"

namespace portico::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

std::string shellQuote(const std::string& s) {
  std::string out(1, '\'');
  for (char c : s) {
    if (c == '\'') {
      out.append("'\\''");
    } else {
      out.push_back(c);
    }
  }
  out.push_back('\'');
  return out;
}

// A PostgreSQL 15 server of our own that can be crashed and restarted.
class OwnPostgres {
 public:
  OwnPostgres() : port_(freePort()) {
    char tmpl[] = "/tmp/portico-pg-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    dir_ = tmpl;
    REQUIRE(lib("portico_pg_start " + shellQuote(dir_) + " " + std::to_string(port_)) == 0);
  }
  ~OwnPostgres() {
    lib("portico_pg_stop " + shellQuote(dir_));
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  std::string dsn() const {
    return "host=127.0.0.1 port=" + std::to_string(port_) +
           " dbname=postgres user=postgres connect_timeout=2";
  }
  // Kills the server without a checkpoint, as a crash would.
  void crash() {
    const std::string as = geteuid() == 0 ? "runuser -u postgres -- " : "";
    REQUIRE(std::system((as + "/usr/lib/postgresql/15/bin/pg_ctl -D " +
                         shellQuote(dir_ + "/data") + " -m immediate -w stop >/dev/null 2>&1")
                            .c_str()) == 0);
  }
  void start() {
    REQUIRE(lib("portico_pg_start " + shellQuote(dir_) + " " + std::to_string(port_)) == 0);
  }

 private:
  static int lib(const std::string& command) {
    const std::string script = "PORTICO_ROOT=" + shellQuote(sourceDir()) + "; . " +
                               shellQuote(sourceDir() + "/deploy/lib.sh") + "; " + command;
    return std::system(("bash -c " + shellQuote(script) + " >/dev/null").c_str());
  }
  int port_;
  std::string dir_;
};

HttpResponse call(int port, const std::string& method, const std::string& target,
                  const std::string& body = "") {
  std::map<std::string, std::string> headers;
  if (!body.empty()) {
    headers["Content-Type"] = "application/json";
  }
  return httpRequest("127.0.0.1", port, method, target, body, headers);
}

std::string certBody(int i) {
  return json{{"cert", cp::testing_pem::kCert},
              {"key", cp::testing_pem::kKey},
              {"tags", {std::string("w").append(std::to_string(i))}},
              {"snis",
               {"c" + std::to_string(i) + "-a.test", "c" + std::to_string(i) + "-b.test",
                "c" + std::to_string(i) + "-c.test"}}}
      .dump();
}

TEST_CASE("resilience: PostgreSQL down -> 503, back -> recovers alone, nothing half applied") {
  OwnPostgres pg;
  REQUIRE(cp::migrateUp(pg.dsn()).ok());
  const int admin_port = freePort();
  Process cp(binaryPath("portico-cp"),
             {"--pg_dsn=" + pg.dsn(), "--admin_listen=127.0.0.1:" + std::to_string(admin_port),
              "--cluster_listen=127.0.0.1:" + std::to_string(freePort()), "--cluster_insecure"});
  REQUIRE(waitFor([&] { return call(admin_port, "GET", "/status").status == 200; }, 15s));
  REQUIRE(call(admin_port, "POST", "/services", R"({"name":"before","host":"h"})").status == 201);

  // A writer keeps creating certificates (3 SNIs each, one transaction) across the crash.
  std::atomic<bool> stop{false};
  std::atomic<int> next{0};
  std::vector<int> statuses(100000, 0);
  std::thread writer([&] {
    while (!stop.load()) {
      const int i = next++;
      statuses[i] = call(admin_port, "POST", "/certificates", certBody(i)).status;
    }
  });
  REQUIRE(waitFor([&] { return next.load() > 30; }, 30s));
  pg.crash();

  // Down: reads and writes answer 503 with a clear message, quickly.
  const auto t0 = std::chrono::steady_clock::now();
  auto down = call(admin_port, "GET", "/services");
  CHECK(std::chrono::steady_clock::now() - t0 < 5s);
  CHECK(down.status == 503);
  CHECK(json::parse(down.body)["message"] ==
        "The database is unavailable: cannot reach PostgreSQL; retry later");
  CHECK(call(admin_port, "POST", "/services", R"({"name":"during","host":"h"})").status == 503);
  CHECK(call(admin_port, "GET", "/status").status == 200);  // the process itself is fine
  CHECK(json::parse(call(admin_port, "GET", "/status").body)["database"]["reachable"] == false);
  const int written_before_restart = next.load();

  pg.start();
  // Back: the same process serves again, without a restart.
  CHECK(waitFor([&] { return call(admin_port, "GET", "/services/before").status == 200; }, 20s));
  REQUIRE(waitFor([&] { return next.load() > written_before_restart + 20; }, 30s));
  stop = true;
  writer.join();
  CHECK(cp.running());
  CHECK(call(admin_port, "POST", "/services", R"({"name":"after","host":"h"})").status == 201);
  // LISTEN is back too (the listener retries every second).
  CHECK(waitFor([&] { return cp.log().find("re-established") != std::string::npos; }, 10s));

  // Every certificate that exists has all of its SNIs; every 201 survived the crash.
  int created = 0, unavailable = 0;
  for (int i = 0; i < next.load(); ++i) {
    auto r = call(admin_port, "GET", "/certificates?tags=w" + std::to_string(i));
    REQUIRE(r.status == 200);
    const json data = json::parse(r.body)["data"];
    INFO("write " << i << " answered " << statuses[i] << "; portico-cp log:\n" << cp.log());
    CHECK(data.size() <= 1);
    if (statuses[i] == 201) {
      ++created;
      CHECK(data.size() == 1);
    } else {
      ++unavailable;
      // 0: the connection dropped without an answer (rare, client side); the outcome is
      // unknown to the client, like a 503 in doubt, and the invariant below still holds.
      CHECK((statuses[i] == 503 || statuses[i] == 500 || statuses[i] == 0));
    }
    if (data.size() == 1) {
      CHECK(data[0]["snis"].size() == 3);
    }
  }
  WARN("writes across the crash: " << created << " created, " << unavailable << " refused");
  CHECK(unavailable > 0);
}

}  // namespace
}  // namespace portico::testing
