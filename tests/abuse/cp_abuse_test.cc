// Hostile Admin API input against a real portico-cp: bodies nested 150,000 deep (JSON and
// form keys), sent once and 16 at a time, invalid UTF-8 in paths and queries, 900 KB names,
// hosts, tags and keys, and bodies of 100,000 set elements. The CP answers 400 with a
// specific message, stores nothing, stays up, and its resident memory stays under 100 MB.
#include <chrono>
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
  CHECK(post(cp, "/consumers", json{{"username", std::string(200, '[')}}.dump()).status == 201);
  // Form keys nest too ("a.b.c", "a[1]").
  std::string form_key = "config";
  for (int i = 0; i < 20000; ++i) form_key += ".a";
  r = post(cp, "/plugins", "name=key-auth&" + form_key + "=1",
           "application/x-www-form-urlencoded");
  CHECK(r.status == 400);
  CHECK(json::parse(r.body, nullptr, false).value("message", "") ==
        "Cannot parse form body: nested deeper than 64 levels");
  // A form index allocates its slots: "tags[4000000000]" would be billions of them.
  for (const char* key : {"tags[4000000000]", "tags[99999999999999999999999]", "tags[10001]"}) {
    r = post(cp, "/services", std::string("name=s&host=h&") + key + "=x",
             "application/x-www-form-urlencoded");
    CHECK(r.status == 400);
    CHECK(json::parse(r.body, nullptr, false).value("message", "") ==
          "Cannot parse form body: array index above 10000");
  }

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

// The default group's config generation, from the CP's own /status.
uint64_t configGeneration(Cp& cp) {
  const json status = json::parse(cp.admin("GET", "/status").body, nullptr, false);
  return status.is_object() ? status["configuration"].value("generation", uint64_t{0}) : 0;
}

TEST_CASE("abuse: oversized fields and entities get 400, never 500, and are not stored") {
  Postgres pg;
  migrate(pg.dsn());
  Cp cp(pg.dsn());
  const std::string huge(900 * 1024, 'a');
  const uint64_t generation = configGeneration(cp);
  const std::string upstream_id = "6b0e2b5c-6b3a-4a5e-9b8e-3f1f6c2d9a10";
  struct Case {
    std::string path;
    json body;
    std::string field;
  };
  const std::vector<Case> cases = {
      {"/services", {{"name", huge}, {"host", "a.test"}}, "name"},  // was 500 (index row)
      {"/services", {{"host", huge}}, "host"},                      // was accepted
      {"/services", {{"host", "a.test"}, {"path", "/" + huge}}, "path"},
      {"/services", {{"host", "a.test"}, {"tags", {huge}}}, "tags"},  // was accepted
      {"/routes", {{"name", huge}, {"paths", {"/"}}}, "name"},
      {"/routes", {{"hosts", {huge + ":80"}}}, "hosts"},
      {"/routes", {{"paths", {"~/" + huge}}}, "paths"},
      {"/routes", {{"snis", {huge}}, {"protocols", {"https"}}}, "snis"},
      {"/consumers", {{"username", huge}}, "username"},
      {"/consumers", {{"custom_id", huge}}, "custom_id"},
      {"/consumers", {{"username", "u"}, {"tags", {huge}}}, "tags"},
      {"/plugins", {{"name", huge}}, "name"},
      {"/plugins", {{"name", "key-auth"}, {"instance_name", huge}}, "instance_name"},
      {"/upstreams", {{"name", huge}}, "name"},
      {"/upstreams", {{"name", "u"}, {"host_header", huge}}, "host_header"},
      {"/upstreams", {{"name", "u"}, {"hash_on", "cookie"}, {"hash_on_cookie", huge}},
       "hash_on_cookie"},
      {"/snis", {{"name", huge}, {"certificate", {{"id", upstream_id}}}}, "name"},
  };
  for (const auto& c : cases) {
    INFO(c.path << " " << c.field);
    const auto started = std::chrono::steady_clock::now();
    HttpResponse r = post(cp, c.path, c.body.dump());
    CHECK(std::chrono::steady_clock::now() - started < 5s);
    CHECK(r.status == 400);
    const json body = json::parse(r.body, nullptr, false);
    CHECK(body.value("code", 0) == 2);
    CHECK(body.value("name", "") == "schema violation");
    CHECK(body["fields"].contains(c.field));
    CHECK(r.body.size() < 2048);  // the message names the cap, it does not echo the value
  }
  // Credentials under a consumer, and a target under an upstream.
  REQUIRE(post(cp, "/consumers", json{{"username", "alice"}}.dump()).status == 201);
  REQUIRE(post(cp, "/upstreams", json{{"name", "up"}}.dump()).status == 201);
  const uint64_t setup = configGeneration(cp);
  for (const auto& [path, body] : std::vector<std::pair<std::string, json>>{
           {"/consumers/alice/key-auth", {{"key", huge}}},
           {"/consumers/alice/basic-auth", {{"username", huge}, {"password", "p"}}},
           {"/consumers/alice/basic-auth", {{"username", "b"}, {"password", huge}}},
           {"/consumers/alice/hmac-auth", {{"username", huge}}},
           {"/consumers/alice/jwt", {{"key", huge}}},
           {"/consumers/alice/acls", {{"group", huge}}},
           {"/upstreams/up/targets", {{"target", huge}}}}) {
    INFO(path);
    HttpResponse r = post(cp, path, body.dump());
    CHECK(r.status == 400);
    CHECK(json::parse(r.body, nullptr, false).value("code", 0) == 2);
  }

  // 880 KB of short tags (110,000 of them): each is valid, the entity is not. Sets were
  // de-duplicated by a linear scan (~12 s of CPU for this body); now it is a hash set.
  json tags = json::array();
  for (int i = 0; i < 110000; ++i) tags.push_back(std::to_string(i));
  for (const char* path : {"/consumers", "/services"}) {
    INFO(path);
    json body = {{"username", "many"}, {"tags", tags}};
    if (std::string(path) == "/services") body = {{"host", "a.test"}, {"tags", tags}};
    const auto started = std::chrono::steady_clock::now();
    HttpResponse r = post(cp, path, body.dump());
    CHECK(std::chrono::steady_clock::now() - started < 5s);
    CHECK(r.status == 400);
    CHECK(json::parse(r.body, nullptr, false)["fields"]["@entity"][0].get<std::string>().rfind(
              "entity size must be at most 65536 bytes", 0) == 0);
  }
  // 100,000 invalid tags: 100,000 errors, collected without a quadratic de-duplication.
  json bad = json::array();
  for (int i = 0; i < 100000; ++i) bad.push_back(std::to_string(i) + ",");
  for (const char* path : {"/consumers", "/services"}) {
    INFO(path);
    json body = {{"username", "bad"}, {"tags", bad}};
    if (std::string(path) == "/services") body = {{"host", "a.test"}, {"tags", bad}};
    const auto started = std::chrono::steady_clock::now();
    HttpResponse r = post(cp, path, body.dump());
    CHECK(std::chrono::steady_clock::now() - started < 10s);
    CHECK(r.status == 400);
  }

  CHECK(configGeneration(cp) == setup);  // nothing above was stored
  CHECK(setup == generation + 2);
  // Ordinary entities still work.
  CHECK(post(cp, "/services", json{{"name", "ok"}, {"url", "http://a.test/x"}}.dump()).status ==
        201);
  CHECK(post(cp, "/services/ok/routes", json{{"paths", {"/ok"}}}.dump()).status == 201);
  REQUIRE(cp.proc->running());
  CHECK(cp.admin("GET", "/status").status == 200);
}

// Invalid UTF-8 and NUL bytes in every kind of field the Admin API stores: names, hosts,
// paths, tags, free text, credentials, plugin config strings, header names and values, and
// in the keys themselves; as JSON (\u0000, raw bytes) and as form bodies (%00, %ff). Each
// answer is a 4xx with Kong's error JSON; nothing is stored; the CP stays up.
TEST_CASE("abuse: invalid UTF-8 and NUL bytes in every field kind get 400, never 500") {
  Postgres pg;
  migrate(pg.dsn());
  Cp cp(pg.dsn());
  REQUIRE(post(cp, "/consumers", json{{"username", "owner"}}.dump()).status == 201);
  REQUIRE(post(cp, "/services", json{{"name", "svc"}, {"host", "a.test"}}.dump()).status == 201);
  const uint64_t generation = configGeneration(cp);
  const std::string nul = std::string("a") + '\0' + "b";
  const std::string bad_utf8 = "a\xff\xfe";
  struct Field {
    std::string path;
    json base;        // a valid entity
    std::string key;  // the field that gets the bad value (a JSON pointer)
  };
  const std::vector<Field> fields = {
      {"/services", {{"name", "s1"}, {"host", "b.test"}}, "/name"},
      {"/services", {{"host", "b.test"}}, "/host"},
      {"/services", {{"host", "b.test"}, {"path", "/p"}}, "/path"},
      {"/services", {{"host", "b.test"}, {"tags", {"t"}}}, "/tags/0"},
      {"/services", {{"url", "http://b.test/"}}, "/url"},
      {"/routes", {{"name", "r1"}, {"paths", {"/x"}}}, "/name"},
      {"/routes", {{"paths", {"/x"}}}, "/paths/0"},
      {"/routes", {{"hosts", {"h.test"}}}, "/hosts/0"},
      {"/routes", {{"paths", {"/x"}}, {"headers", {{"x-h", {"v"}}}}}, "/headers/x-h/0"},
      {"/routes", {{"paths", {"/x"}}, {"methods", {"GET"}}}, "/methods/0"},
      {"/consumers", {{"username", "u1"}}, "/username"},
      {"/consumers", {{"custom_id", "c1"}}, "/custom_id"},
      {"/consumers/owner/key-auth", {{"key", "k1"}}, "/key"},
      {"/consumers/owner/basic-auth", {{"username", "b1"}, {"password", "p"}}, "/username"},
      {"/consumers/owner/basic-auth", {{"username", "b2"}, {"password", "p"}}, "/password"},
      {"/consumers/owner/acls", {{"group", "g"}}, "/group"},
      {"/consumers/owner/jwt", {{"key", "j1"}}, "/key"},
      {"/consumers/owner/hmac-auth", {{"username", "h1"}}, "/username"},
      {"/plugins", {{"name", "key-auth"}, {"instance_name", "i1"}}, "/instance_name"},
      {"/plugins", {{"name", "key-auth"}, {"config", {{"key_names", {"apikey"}}}}},
       "/config/key_names/0"},
      {"/plugins", {{"name", "request-termination"}, {"config", {{"message", "m"}}}},
       "/config/message"},
      {"/plugins",
       {{"name", "request-transformer"}, {"config", {{"add", {{"headers", {"x-a:v"}}}}}}},
       "/config/add/headers/0"},
      {"/plugins",
       {{"name", "canary"}, {"config", {{"percentage", 10}, {"upstream_uri", "/v2"}}}},
       "/config/upstream_uri"},
      {"/plugins",
       {{"name", "canary"},
        {"config", {{"upstream_host", "a.test"}, {"hash", "allow"}, {"groups", {"g"}}}}},
       "/config/groups/0"},
      {"/plugins",
       {{"name", "canary"},
        {"config",
         {{"percentage", 10}, {"upstream_host", "a.test"}, {"hash", "header"},
          {"hash_header", "x-user"}}}},
       "/config/hash_header"},
      {"/upstreams", {{"name", "up1"}}, "/name"},
      {"/upstreams", {{"name", "up2"}, {"host_header", "h.test"}}, "/host_header"},
      {"/certificates", {{"cert", "x"}, {"key", "y"}}, "/cert"},
  };
  for (const Field& f : fields) {
    for (const std::string& value : {nul, bad_utf8}) {
      json body = f.base;
      body[json::json_pointer(f.key)] = value;
      // nlohmann refuses to dump invalid UTF-8 by default; the raw bytes go on the wire.
      const std::string text = body.dump(-1, ' ', false, json::error_handler_t::ignore) ==
                                       body.dump(-1, ' ', false, json::error_handler_t::replace)
                                   ? body.dump()
                                   : [&] {
                                       json marked = f.base;
                                       marked[json::json_pointer(f.key)] = "@@BAD@@";
                                       std::string t = marked.dump();
                                       t.replace(t.find("@@BAD@@"), 7, value);
                                       return t;
                                     }();
      INFO(f.path << " " << f.key << " " << (value == nul ? "NUL" : "bad UTF-8"));
      HttpResponse r = post(cp, f.path, text);
      CHECK(r.status == 400);
      const json answer = json::parse(r.body, nullptr, false);
      CHECK(answer.is_object());
      CHECK(!answer.value("message", "").empty());
    }
  }
  // The answer names the field, as Kong's schema violations do.
  HttpResponse exact = post(cp, "/consumers", R"({"username":"a\u0000b"})");
  CHECK(exact.status == 400);
  CHECK(json::parse(exact.body, nullptr, false) ==
        json{{"code", 2},
             {"name", "schema violation"},
             {"message", "schema violation (username: must not contain NUL bytes)"},
             {"fields", {{"username", "must not contain NUL bytes"}}}});
  exact = post(cp, "/plugins", "name=request-termination&config.message=%ff",
               "application/x-www-form-urlencoded");
  CHECK(exact.status == 400);
  CHECK(json::parse(exact.body, nullptr, false)["fields"] ==
        json{{"config", {{"message", "invalid UTF-8"}}}});
  // Field names (object keys) with NUL or bad UTF-8: unknown fields, or a parse error.
  for (const std::string& key : {nul, bad_utf8}) {
    HttpResponse r = post(cp, "/services", "{\"host\":\"c.test\",\"" + key + "\":1}");
    CHECK(r.status == 400);
  }
  // Form bodies.
  for (const char* form : {"name=a%00b&host=d.test", "name=a%ff&host=d.test", "host=d%00.test",
                           "host=e.test&tags[1]=%ff", "host=e.test&tags=a%00", "a%00=1&host=f.test",
                           "%ff=1&host=f.test"}) {
    INFO(form);
    HttpResponse r = post(cp, "/services", form, "application/x-www-form-urlencoded");
    CHECK(r.status == 400);
  }
  // Query strings and paths of reads and deletes.
  for (const char* target : {"/services/a%00b", "/consumers?custom_id=%00", "/services?tags=a%00b",
                             "/routes/%ff/plugins", "/consumers/owner/key-auth/%00"}) {
    INFO(target);
    CHECK(cp.admin("GET", target).status / 100 == 4);
    CHECK(cp.admin("DELETE", target).status / 100 == 4);
  }
  // Nothing was stored; the CP is up.
  CHECK(configGeneration(cp) == generation);
  REQUIRE(cp.proc->running());
  CHECK(cp.admin("GET", "/status").status == 200);
}

}  // namespace
