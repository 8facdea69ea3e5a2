// The Admin API for consumers, credentials, plugins, upstreams/targets, certificates/SNIs and
// CA certificates against a real PostgreSQL: Kong's fields and defaults, error shapes,
// nested routes with ownership, cascades, PUT/PATCH, tags, form bodies, schemas, and the
// snapshot (which must pass the DP's validateSnapshot).
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "common/config/entities.h"
#include "common/config/validate.h"
#include "control_plane/admin_api/http_server.h"
#include "control_plane/store/migrations.h"
#include "control_plane/store/pg_store_impl.h"
#include "tests/integration/control_plane/test_pem.h"
#include "tests/support/test_support.h"

namespace portico::cp {
namespace {

using nlohmann::json;

struct Fixture {
  testing::TestPostgres pg;
  std::unique_ptr<PgConfigStore> store;
  std::unique_ptr<AdminHttpServer> admin;

  Fixture() {
    REQUIRE(migrateUp(pg.dsn()).ok());
    store = std::move(PgConfigStore::open({pg.dsn(), 4}).value());
    AdminServerOptions options;
    options.listen_address = "127.0.0.1:0";
    admin = std::move(AdminHttpServer::start(*store, options).value());
  }
  ~Fixture() {
    admin->shutdown();
    store->stop();
  }
  testing::HttpResponse call(const std::string& method, const std::string& target,
                             const std::string& body = "",
                             const std::string& type = "application/json") {
    std::map<std::string, std::string> headers;
    if (!body.empty()) {
      headers["Content-Type"] = type;
    }
    return testing::httpRequest("127.0.0.1", admin->port(), method, target, body, headers);
  }
  json callJson(const std::string& method, const std::string& target, const json& body,
                int expected) {
    auto r = call(method, target, body.is_null() ? "" : body.dump());
    INFO(method << " " << target << " " << body.dump() << " -> " << r.status << " " << r.body);
    REQUIRE(r.status == expected);
    return r.body.empty() ? json() : json::parse(r.body);
  }
  uint64_t generation() { return store->currentGeneration("default").value(); }
};

TEST_CASE("entities: consumers and credentials, ownership, cascade") {
  Fixture f;
  CHECK(f.callJson("POST", "/consumers", json::object(), 400) ==
        json::parse(R"j({"code":2,"name":"schema violation","message":"schema violation (at least one of these fields must be non-empty: 'custom_id', 'username')","fields":{"@entity":["at least one of these fields must be non-empty: 'custom_id', 'username'"]}})j"));
  json bob = f.callJson("POST", "/consumers", {{"username", "bob"}, {"tags", {"t1"}}}, 201);
  CHECK(bob["custom_id"].is_null());
  CHECK(bob["created_at"].is_number_integer());
  CHECK(bob["updated_at"].is_number_integer());
  const std::string bob_id = bob["id"];
  json alice = f.callJson("POST", "/consumers",
                          {{"id", "11111111-2222-4333-8444-555555555555"}, {"username", "alice"}},
                          201);
  CHECK(alice["id"] == "11111111-2222-4333-8444-555555555555");
  CHECK(f.callJson("POST", "/consumers", {{"username", "bob"}}, 409) ==
        json::parse(R"j({"code":5,"name":"unique constraint violation","message":"UNIQUE violation detected on '{username=\"bob\"}'","fields":{"username":"bob"}})j"));

  // key-auth: key generated, nested list/get, other consumer's credential is 404.
  json key = f.callJson("POST", "/consumers/bob/key-auth", json::object(), 201);
  CHECK(key["key"].get<std::string>().size() == 32);
  CHECK(key["consumer"] == json{{"id", bob_id}});
  CHECK(key["ttl"].is_null());
  CHECK(key["tags"].is_null());
  f.callJson("POST", "/consumers/bob/key-auth", {{"key", "secret-1"}}, 201);
  CHECK(f.callJson("POST", "/consumers/alice/key-auth", {{"key", "secret-1"}}, 409)["message"] ==
        "UNIQUE violation detected on '{key=\"secret-1\"}'");
  CHECK(f.callJson("GET", "/consumers/bob/key-auth", json(), 200)["data"].size() == 2);
  CHECK(f.callJson("GET", "/consumers/bob/key-auth/secret-1", json(), 200)["key"] == "secret-1");
  f.callJson("GET", "/consumers/alice/key-auth/secret-1", json(), 404);
  f.callJson("DELETE", "/consumers/alice/key-auth/secret-1", json(), 404);
  CHECK(f.callJson("GET", "/key-auths/secret-1/consumer", json(), 200)["id"] == bob_id);
  CHECK(f.callJson("GET", "/key-auths", json(), 200)["data"].size() == 2);

  // basic-auth: password stored as sha1(password .. consumer_id).
  json basic = f.callJson("POST", "/consumers/bob/basic-auth",
                          {{"username", "bob-basic"}, {"password", "pw"}}, 201);
  CHECK(basic["password"] == config::basicAuthHash("pw", bob_id));
  json patched = f.callJson("PATCH", "/basic-auths/bob-basic", {{"tags", {"x"}}}, 200);
  CHECK(patched["password"] == basic["password"]);  // not hashed twice
  CHECK(f.callJson("POST", "/consumers/bob/basic-auth", {{"username", "u2"}}, 400)["message"] ==
        "schema violation (password: required field missing)");

  // jwt, hmac-auth, acls.
  json jwt = f.callJson("POST", "/consumers/bob/jwt", json::object(), 201);
  CHECK(jwt["algorithm"] == "HS256");
  CHECK(jwt["secret"].get<std::string>().size() == 32);
  CHECK(f.callJson("POST", "/consumers/bob/jwt", {{"algorithm", "RS256"}}, 400)["fields"] ==
        json::parse(R"j({"@entity":["failed conditional validation given value of field 'algorithm'"],"rsa_public_key":"required field missing"})j"));
  f.callJson("POST", "/consumers/bob/hmac-auth", {{"username", "bob-hmac"}}, 201);
  f.callJson("POST", "/consumers/bob/acls", {{"group", "admins"}}, 201);
  CHECK(f.callJson("GET", "/consumers/bob/acls/admins", json(), 200)["group"] == "admins");

  // Filter by custom_id; tags.
  f.callJson("POST", "/consumers", {{"custom_id", "c-1"}, {"tags", {"t1", "t2"}}}, 201);
  CHECK(f.callJson("GET", "/consumers?custom_id=c-1", json(), 200)["data"].size() == 1);
  CHECK(f.callJson("GET", "/consumers?tags=t1", json(), 200)["data"].size() == 2);
  CHECK(f.callJson("GET", "/consumers?tags=t1,t2", json(), 200)["data"].size() == 1);
  CHECK(f.callJson("GET", "/consumers?tags=t2/t1", json(), 200)["data"].size() == 2);
  CHECK(f.callJson("GET", "/consumers?tags=t1,t2/t3", json(), 400) ==
        json::parse(R"j({"code":11,"name":"invalid options","message":"invalid option (tags: invalid filter syntax)","options":{"tags":"invalid filter syntax"}})j"));
  json tags = f.callJson("GET", "/tags/t2", json(), 200);
  REQUIRE(tags["data"].size() == 1);
  CHECK(tags["data"][0]["entity_name"] == "consumers");

  // Deleting a consumer takes its credentials (and plugins) in one write.
  const uint64_t before = f.generation();
  f.callJson("DELETE", "/consumers/bob", json(), 204);
  CHECK(f.generation() == before + 1);
  CHECK(f.callJson("GET", "/key-auths", json(), 200)["data"].empty());
  CHECK(f.callJson("GET", "/acls", json(), 200)["data"].empty());
  CHECK(f.pg.psql("SELECT count(*) FROM change_log WHERE op = 'delete'").find("7") !=
        std::string::npos);
}

TEST_CASE("entities: plugins with key-auth config, uniqueness, scope and cascade") {
  Fixture f;
  json svc = f.callJson("POST", "/services", {{"name", "s1"}, {"host", "a.test"}}, 201);
  json route = f.callJson("POST", "/services/s1/routes", {{"name", "r1"}, {"paths", {"/a"}}}, 201);
  json plugin = f.callJson("POST", "/routes/r1/plugins", {{"name", "key-auth"}}, 201);
  CHECK(plugin["config"] == json::parse(R"j({"key_names":["apikey"],"hide_credentials":false,"anonymous":null,"key_in_header":true,"key_in_query":true,"key_in_body":false,"run_on_preflight":true,"realm":null})j"));
  CHECK(plugin["route"] == json{{"id", route["id"]}});
  CHECK(plugin["service"].is_null());
  CHECK(plugin["protocols"] == json({"grpc", "grpcs", "http", "https"}));
  CHECK(f.callJson("GET", "/plugins/" + plugin["id"].get<std::string>() + "/route", json(), 200)[
            "id"] == route["id"]);

  CHECK(f.callJson("POST", "/plugins",
                   {{"name", "key-auth"}, {"config", {{"key_names", {"bad name"}}, {"foo", 1}}}},
                   400) ==
        json::parse(R"j({"code":2,"name":"schema violation","message":"2 schema violations (config.foo: unknown field; config.key_names.1: bad header name 'bad name', allowed characters are A-Z, a-z, 0-9, '_', and '-')","fields":{"config":{"foo":"unknown field","key_names":["bad header name 'bad name', allowed characters are A-Z, a-z, 0-9, '_', and '-'"]}}})j"));
  json consumer = f.callJson("POST", "/consumers", {{"username", "c"}}, 201);
  CHECK(f.callJson("POST", "/consumers/c/plugins", {{"name", "key-auth"}}, 400)["fields"] ==
        json{{"consumer", "value must be null"}});
  // PATCH merges the config record.
  json patched = f.callJson("PATCH", "/plugins/" + plugin["id"].get<std::string>(),
                            {{"config", {{"hide_credentials", true}}}}, 200);
  CHECK(patched["config"]["hide_credentials"] == true);
  CHECK(patched["config"]["key_names"] == json({"apikey"}));
  // Foreign key to a missing service.
  CHECK(f.callJson("POST", "/plugins",
                   {{"name", "request-termination"},
                    {"service", {{"id", "6b1c2a5e-6d7e-4c5e-8a1b-0f0e0d0c0b0a"}}}},
                   400)["code"] == 4);
  // Deleting the route deletes its plugin.
  f.callJson("DELETE", "/routes/r1", json(), 204);
  f.callJson("GET", "/plugins/" + plugin["id"].get<std::string>(), json(), 404);
  CHECK(f.callJson("GET", "/plugins/enabled", json(), 200)["enabled_plugins"].size() ==
        config::pluginSchemas().size());
  CHECK(f.callJson("GET", "/schemas/plugins/key-auth", json(), 200)["fields"].is_array());
  CHECK(f.callJson("POST", "/schemas/plugins/validate", {{"name", "key-auth"}}, 200)["message"] ==
        "schema validation successful");
  CHECK(f.callJson("GET", "/schemas/consumers", json(), 200)["entity_checks"].size() == 1);
  f.callJson("GET", "/schemas/nope", json(), 404);
}

TEST_CASE("entities: upstreams and targets") {
  Fixture f;
  CHECK(f.callJson("POST", "/upstreams", {{"name", "10.0.0.1"}}, 400)["fields"] ==
        json{{"name", "Invalid name ('10.0.0.1'); no ip addresses allowed"}});
  json up = f.callJson("POST", "/upstreams", {{"name", "backend"}}, 201);
  CHECK(up["algorithm"] == "round-robin");
  CHECK(up["slots"] == 10000);
  CHECK(up["healthchecks"]["active"]["healthy"]["http_statuses"] == json({200, 302}));
  CHECK(up["hash_on_cookie_path"] == "/");
  CHECK(f.callJson("POST", "/upstreams", {{"name", "u2"}, {"hash_on", "header"}}, 400)["fields"] ==
        json::parse(R"j({"@entity":["failed conditional validation given value of field 'hash_on'"],"hash_on_header":"required field missing"})j"));
  json target = f.callJson("POST", "/upstreams/backend/targets", {{"target", "10.0.0.1"}}, 201);
  CHECK(target["target"] == "10.0.0.1:8000");
  CHECK(target["weight"] == 100);
  CHECK(target["created_at"].is_number());
  CHECK(f.callJson("POST", "/upstreams/backend/targets", {{"target", "10.0.0.1:8000"}}, 409)[
            "message"] == "UNIQUE violation detected on '{target=\"10.0.0.1:8000\"}'");
  f.callJson("GET", "/targets", json(), 404);
  CHECK(f.callJson("GET", "/upstreams/backend/targets", json(), 200)["data"].size() == 1);
  f.callJson("DELETE", "/upstreams/backend", json(), 204);
  CHECK(f.pg.psql("SELECT count(*) FROM targets").find("0") != std::string::npos);
}

TEST_CASE("entities: certificates, snis, ca_certificates") {
  Fixture f;
  json cert = f.callJson("POST", "/certificates",
                         {{"cert", testing_pem::kCert},
                          {"key", testing_pem::kKey},
                          {"snis", {"example.test", "*.example.test"}}},
                         201);
  CHECK(cert["snis"] == json({"*.example.test", "example.test"}));
  CHECK(f.callJson("GET", "/certificates/example.test", json(), 200)["id"] == cert["id"]);
  CHECK(f.callJson("GET", "/snis/example.test/certificate", json(), 200)["id"] == cert["id"]);
  CHECK(f.callJson("POST", "/certificates",
                   {{"cert", testing_pem::kCert}, {"key", testing_pem::kEcKey}}, 400)["fields"] ==
        json{{"@entity", {"certificate does not match key"}}});
  CHECK(f.callJson("POST", "/certificates", {{"cert", "nope"}, {"key", testing_pem::kKey}}, 400)[
            "fields"]["cert"]
            .get<std::string>()
            .rfind("invalid certificate: ", 0) == 0);
  CHECK(f.callJson("POST", "/snis", {{"name", "example.test"}, {"certificate", {{"id", cert["id"]}}}},
                   409)["code"] == 5);
  f.callJson("DELETE", "/certificates/" + cert["id"].get<std::string>(), json(), 204);
  CHECK(f.callJson("GET", "/snis", json(), 200)["data"].empty());

  json ca = f.callJson("POST", "/ca_certificates", {{"cert", testing_pem::kCaCert}}, 201);
  CHECK(ca["cert_digest"].get<std::string>().size() == 64);
  CHECK(f.callJson("POST", "/ca_certificates", {{"cert", testing_pem::kCaCert}}, 409)["code"] == 5);
  CHECK(f.callJson("POST", "/ca_certificates", {{"cert", testing_pem::kEcCert}}, 400)["fields"] ==
        json{{"@entity",
              {"certificate does not appear to be a CA because it is missing the \"CA\" basic "
               "constraint"}}});
}

TEST_CASE("entities: form bodies, 415, PUT upsert by key, snapshot passes validateSnapshot") {
  Fixture f;
  auto r = f.call("POST", "/consumers", "username=formy&tags[]=a&tags[]=b",
                  "application/x-www-form-urlencoded");
  REQUIRE(r.status == 201);
  CHECK(json::parse(r.body)["tags"] == json({"a", "b"}));
  r = f.call("POST", "/services", "name=fs&host=f.test&port=8080&retries=3",
             "application/x-www-form-urlencoded");
  REQUIRE(r.status == 201);
  CHECK(json::parse(r.body)["port"] == 8080);
  r = f.call("POST", "/consumers/formy/plugins",
             "name=request-termination&config.status_code=403&config.echo=true",
             "application/x-www-form-urlencoded");
  REQUIRE(r.status == 201);
  CHECK(json::parse(r.body)["config"]["status_code"] == 403);
  CHECK(json::parse(r.body)["config"]["echo"] == true);
  CHECK(f.call("POST", "/consumers", "x", "text/plain").status == 415);

  json put = f.callJson("PUT", "/consumers/carol", {{"custom_id", "c1"}}, 200);
  CHECK(put["username"] == "carol");
  json put2 = f.callJson("PUT", "/consumers/carol", {{"tags", {"z"}}}, 200);
  CHECK(put2["id"] == put["id"]);
  CHECK(put2["custom_id"].is_null());
  f.callJson("PATCH", "/consumers/nobody", {{"custom_id", "x"}}, 404);
  f.callJson("PUT", "/consumers", json::object(), 405);

  f.callJson("POST", "/consumers/carol/key-auth", {{"key", "k"}}, 201);
  f.callJson("POST", "/upstreams", {{"name", "up"}}, 201);
  f.callJson("POST", "/upstreams/up/targets", {{"target", "a.test:81"}}, 201);
  f.callJson("POST", "/certificates", {{"cert", testing_pem::kCert}, {"key", testing_pem::kKey},
                                       {"snis", {"s.test"}}},
             201);
  auto snap = f.store->loadSnapshot("default");
  REQUIRE(snap.ok());
  CHECK(snap->consumers_size() == 2);
  CHECK(snap->plugins_size() == 1);
  CHECK(snap->keyauth_credentials_size() == 1);
  CHECK(snap->targets_size() == 1);
  CHECK(snap->snis_size() == 1);
  CHECK(snap->plugins(0).config().find("status_code") != std::string::npos);
  const config::FieldErrors errors = config::validateSnapshot(*snap);
  for (const auto& e : errors) {
    INFO(e.entity_type << " " << e.field << ": " << e.reason);
    CHECK(false);
  }
}

// A valid DNS name of exactly `n` characters (labels of at most 63).
std::string hostOfLength(size_t n) {
  std::string h;
  while (h.size() < n) {
    if (!h.empty()) {
      h += '.';
    }
    h += std::string(std::min<size_t>(63, n - h.size()), 'a');
  }
  return h;
}

TEST_CASE("entities: field length caps and the entity size cap answer 400, at the limit 201") {
  Fixture f;
  const std::string huge(900 * 1024, 'a');  // a 900 KB value (under the 1 MiB body limit)
  const uint64_t before = f.generation();

  // A 900 KB name once reached PostgreSQL and failed there (index row too big): 500.
  CHECK(f.callJson("POST", "/services", {{"name", huge}, {"host", "a.test"}}, 400) ==
        json::parse(R"j({"code":2,"name":"schema violation","message":"schema violation (name: length must be at most 255)","fields":{"name":"length must be at most 255"}})j"));
  // A 900 KB host or tag was accepted and pushed to every DP.
  CHECK(f.callJson("POST", "/services", {{"name", "s"}, {"host", huge}}, 400)["fields"] ==
        json{{"host", "length must be at most 253"}});
  CHECK(f.callJson("POST", "/services", {{"url", "http://" + huge + ":80/x"}}, 400)["fields"] ==
        json{{"host", "length must be at most 253"}});
  CHECK(f.callJson("POST", "/services", {{"host", "a.test"}, {"tags", {"ok", huge}}}, 400)[
            "fields"] == json{{"tags", {nullptr, "length must be at most 255"}}});
  CHECK(f.callJson("POST", "/consumers", {{"username", "c"}, {"tags", {huge}}}, 400)["fields"] ==
        json{{"tags", {"length must be at most 255"}}});
  CHECK(f.callJson("POST", "/routes", {{"paths", {"/" + huge}}}, 400)["fields"] ==
        json{{"paths", {"length must be at most 4096"}}});
  CHECK(f.callJson("POST", "/routes", {{"hosts", {huge}}}, 400)["fields"] ==
        json{{"hosts", {"length must be at most 253"}}});
  CHECK(f.callJson("POST", "/consumers", {{"username", huge}}, 400)["fields"] ==
        json{{"username", "length must be at most 255"}});
  CHECK(f.callJson("POST", "/consumers", {{"custom_id", huge}}, 400)["fields"] ==
        json{{"custom_id", "length must be at most 255"}});
  CHECK(f.callJson("POST", "/upstreams", {{"name", huge}}, 400)["fields"] ==
        json{{"name", "length must be at most 253"}});
  CHECK(f.callJson("POST", "/plugins", {{"name", huge}}, 400)["fields"] ==
        json{{"name", "length must be at most 255"}});
  CHECK(f.callJson("POST", "/snis", {{"name", huge}, {"certificate", {{"id", "6b0e2b5c-6b3a-4a5e-9b8e-3f1f6c2d9a10"}}}}, 400)["fields"]["name"] == "length must be at most 253");
  // Form bodies take the same path.
  auto r = f.call("POST", "/consumers", "username=" + huge, "application/x-www-form-urlencoded");
  CHECK(r.status == 400);
  CHECK(r.body.size() < 1024);  // no message echoes the oversized value
  CHECK(f.generation() == before);

  // At the limit: accepted (and the DP's validation agrees, below).
  const std::string name255(255, 'n');
  f.callJson("POST", "/services",
             {{"name", name255}, {"host", hostOfLength(253)}, {"tags", {std::string(255, 't')}}},
             201);
  f.callJson("POST", "/routes",
             {{"name", "r"}, {"hosts", {hostOfLength(253) + ":8443"}},
              {"paths", {"/" + std::string(4095, 'p')}}, {"service", {{"name", name255}}}},
             201);
  f.callJson("POST", "/consumers", {{"username", name255}, {"custom_id", name255}}, 201);
  f.callJson("POST", "/consumers/" + name255 + "/key-auth", {{"key", std::string(1024, 'k')}}, 201);
  f.callJson("POST", "/consumers/" + name255 + "/key-auth", {{"key", std::string(1025, 'k')}},
             400);
  f.callJson("POST", "/upstreams", {{"name", hostOfLength(253)}}, 201);
  CHECK(f.callJson("POST", "/upstreams/" + hostOfLength(253) + "/targets",
                   {{"target", hostOfLength(253)}}, 201)["target"] == hostOfLength(253) + ":8000");
  CHECK(f.callJson("POST", "/upstreams/" + hostOfLength(253) + "/targets",
                   {{"target", hostOfLength(254) + ":81"}}, 400)["fields"] ==
        json{{"target", "length must be at most 253"}});
  // GET /schemas advertises the caps where they are plain lengths.
  const json schema = f.callJson("GET", "/schemas/consumers", json(), 200);
  bool advertised = false;
  for (const auto& field : schema["fields"]) {
    if (field.contains("username")) {
      advertised = field["username"].value("len_max", 0) == 255;
    }
  }
  CHECK(advertised);

  // The entity as a whole: 700 tags of 100 bytes are each fine, together 70 KB.
  json many = json::array();
  for (int i = 0; i < 700; ++i) {
    many.push_back(std::to_string(i) + std::string(96, 'x'));
  }
  json too_big = f.callJson("POST", "/consumers", {{"username", "big"}, {"tags", many}}, 400);
  CHECK(too_big["code"] == 2);
  CHECK(too_big["name"] == "schema violation");
  REQUIRE(too_big["fields"]["@entity"].is_array());
  CHECK(too_big["fields"]["@entity"][0].get<std::string>().rfind(
            "entity size must be at most 65536 bytes (got ", 0) == 0);
  CHECK(f.callJson("POST", "/services", {{"host", "a.test"}, {"tags", many}}, 400)["fields"]
            .contains("@entity"));
  CHECK(f.callJson("POST", "/schemas/consumers/validate", {{"username", "big"}, {"tags", many}},
                   400)["fields"]
            .contains("@entity"));
  // PATCH measures the merged entity: growing one past the cap is refused too.
  json half(many.begin(), many.begin() + 400);
  json rest(many.begin() + 400, many.end());
  f.callJson("POST", "/consumers", {{"username", "grows"}, {"tags", half}}, 201);
  json grown = half;
  grown.insert(grown.end(), rest.begin(), rest.end());
  CHECK(f.callJson("PATCH", "/consumers/grows", {{"tags", grown}}, 400)["fields"].contains(
      "@entity"));
  // Plugins and certificates get 256 KiB: a 100 KB plugin config is fine.
  json allow = json::array();
  for (int i = 0; i < 6000; ++i) {
    allow.push_back("10." + std::to_string(i / 250) + "." + std::to_string(i % 250) + ".0/24");
  }
  f.callJson("POST", "/plugins", {{"name", "ip-restriction"}, {"config", {{"allow", allow}}}},
             201);

  auto snap = f.store->loadSnapshot("default");
  REQUIRE(snap.ok());
  for (const auto& e : config::validateSnapshot(*snap)) {
    INFO(e.entity_type << " " << e.field << ": " << e.reason);
    CHECK(false);
  }
}

// Without --admin_gui_url, Kong 3.x allows any origin: the request's, or "*" without one.
TEST_CASE("entities: CORS without admin_gui_url allows the request's origin") {
  Fixture f;
  auto r = testing::httpRequest("127.0.0.1", f.admin->port(), "OPTIONS", "/consumers/bob/acls",
                                "", {{"Origin", "http://localhost:8002"}});
  CHECK(r.status == 204);  // by the path alone: bob need not exist
  CHECK(r.headers["access-control-allow-origin"] == "http://localhost:8002");
  CHECK(r.headers["access-control-allow-methods"] == "GET, OPTIONS, POST");
  r = testing::httpRequest("127.0.0.1", f.admin->port(), "GET", "/consumers", "",
                           {{"Origin", "http://localhost:8002"}});
  CHECK(r.status == 200);
  CHECK(r.headers["access-control-allow-origin"] == "http://localhost:8002");
  CHECK(r.headers["access-control-allow-credentials"] == "true");
  r = f.call("GET", "/consumers/nobody");
  CHECK(r.status == 404);
  CHECK(r.headers["access-control-allow-origin"] == "*");
}

}  // namespace
}  // namespace portico::cp
