// Hostile Admin API input against a real portico-cp: bodies nested 150,000 deep (JSON and
// form keys), sent once and 16 at a time, and invalid UTF-8 in paths and queries. The CP
// answers 400 with a specific message, stays up, and its resident memory stays under 100 MB.
#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/support/e2e_cluster.h"
#include "tests/support/test_support.h"

namespace {

using namespace std::chrono_literals;
using namespace portico::testing;
using nlohmann::json;

int64_t rssKb(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}

HttpResponse post(Cp& cp, const std::string& path, const std::string& body,
                  const std::string& type = "application/json") {
  return httpRequest("127.0.0.1", cp.admin_port, "POST", path, body, {{"Content-Type", type}});
}

TEST_CASE("abuse: deeply nested Admin API bodies get 400, the CP stays up and small") {
  Postgres pg;
  migrate(pg.dsn());
  Cp cp(pg.dsn());
  const std::string deep = std::string(150000, '[') + std::string(150000, ']');
  HttpResponse r = post(cp, "/services", deep);
  CHECK(r.status == 400);
  CHECK(json::parse(r.body, nullptr, false).value("message", "") ==
        "Cannot parse JSON body: nested deeper than 64 levels");
  // Objects too, and inside a string nothing counts.
  std::string objects;
  for (int i = 0; i < 100000; ++i) objects += "{\"a\":";
  objects += "1" + std::string(100000, '}');
  CHECK(post(cp, "/consumers", objects).status == 400);
  CHECK(post(cp, "/consumers", json{{"username", std::string(1000, '[')}}.dump()).status == 201);
  // Form keys nest too ("a.b.c", "a[1]").
  std::string form_key = "config";
  for (int i = 0; i < 20000; ++i) form_key += ".a";
  r = post(cp, "/plugins", "name=key-auth&" + form_key + "=1",
           "application/x-www-form-urlencoded");
  CHECK(r.status == 400);

  // 16 at once, 200 KB each.
  const std::string body200k = std::string(100000, '[') + std::string(100000, ']');
  std::vector<std::thread> threads;
  std::atomic<int> refused{0};
  for (int i = 0; i < 16; ++i) {
    threads.emplace_back([&] {
      if (post(cp, "/services", body200k).status == 400) refused++;
    });
  }
  for (auto& t : threads) t.join();
  CHECK(refused.load() == 16);

  // Invalid UTF-8 in the path or query: 400, not a 500 from PostgreSQL.
  for (const char* target : {"/services/%ff%fe", "/services?tags=%ff", "/services?offset=%ff%ff",
                             "/consumers/a%00b"}) {
    INFO(target);
    HttpResponse bad = cp.admin("GET", target);
    CHECK(bad.status == 400);
    CHECK(json::parse(bad.body, nullptr, false).value("message", "").find("invalid UTF-8") !=
          std::string::npos);
  }

  REQUIRE(cp.proc->running());
  CHECK(cp.admin("GET", "/status").status == 200);
  const int64_t rss = rssKb(cp.proc->pid());
  INFO("CP RSS after the abuse: " << rss << " KB");
  CHECK(rss > 0);
  CHECK(rss < 100 * 1024);
}

}  // namespace
