// The Admin API offers exactly the plugins the data plane enforces (fail closed): GET / and
// GET /plugins/enabled list the registry's plugins with Kong's priorities and versions, any
// other plugin name is refused with Kong's "not enabled" error, and a basic-auth password
// is stored hashed and never returned in clear text.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "common/config/entities.h"
#include "control_plane/admin_api/http_server.h"
#include "control_plane/store/migrations.h"
#include "control_plane/store/pg_store_impl.h"
#include "data_plane/plugins/registry.h"
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
    store = std::move(PgConfigStore::open({pg.dsn(), 2}).value());
    AdminServerOptions options;
    options.listen_address = "127.0.0.1:0";
    admin = std::move(AdminHttpServer::start(*store, options).value());
  }
  ~Fixture() {
    admin->shutdown();
    store->stop();
  }
  json call(const std::string& method, const std::string& target, const json& body,
            int expected) {
    std::map<std::string, std::string> headers;
    if (!body.is_null()) headers["Content-Type"] = "application/json";
    auto r = testing::httpRequest("127.0.0.1", admin->port(), method, target,
                                  body.is_null() ? "" : body.dump(), headers);
    INFO(method << " " << target << " -> " << r.status << " " << r.body);
    REQUIRE(r.status == expected);
    return r.body.empty() ? json() : json::parse(r.body);
  }
};

TEST_CASE("plugins admin: only what the data plane implements is offered") {
  Fixture f;
  json implemented = json::array();
  for (const dp::PluginFactory& p : dp::builtinPlugins()) {
    implemented.push_back(std::string(p.name));
  }
  REQUIRE(!implemented.empty());
  const json root = f.call("GET", "/", nullptr, 200);
  CHECK(root["plugins"]["enabled_in_cluster"] == implemented);
  CHECK(root["configuration"]["plugins"] == implemented);
  CHECK(root["plugins"]["available_on_server"].size() == implemented.size());
  CHECK(root["plugins"]["available_on_server"]["key-auth"] ==
        json({{"priority", 1250}, {"version", "3.10.0"}}));
  CHECK(f.call("GET", "/plugins/enabled", nullptr, 200)["enabled_plugins"] == implemented);
  for (const dp::PluginFactory& p : dp::builtinPlugins()) {
    CHECK(root["plugins"]["available_on_server"][std::string(p.name)]["priority"] ==
          p.priority);
  }

  // Kong's error for a plugin the cluster does not run, on every way in.
  const json refused = json::parse(R"j({"code":2,"name":"schema violation",
    "message":"schema violation (name: plugin 'made-up' not enabled; add it to the 'plugins' configuration property)",
    "fields":{"name":"plugin 'made-up' not enabled; add it to the 'plugins' configuration property"}})j");
  CHECK(f.call("POST", "/plugins", {{"name", "made-up"}}, 400) == refused);
  f.call("POST", "/services", {{"name", "s"}, {"url", "http://127.0.0.1:9"}}, 201);
  CHECK(f.call("POST", "/services/s/plugins", {{"name", "made-up"}}, 400) == refused);
  CHECK(f.call("PUT", "/plugins/4c1f6f0a-4d55-4b9e-8a52-2a1e0e7b3c11", {{"name", "made-up"}},
               400) == refused);
  CHECK(f.call("GET", "/schemas/plugins/made-up", nullptr, 404)["message"].is_string());
  CHECK(f.call("GET", "/plugins", nullptr, 200)["data"].empty());

  // An offered one is accepted with Kong's defaults.
  const json ka = f.call("POST", "/services/s/plugins", {{"name", "key-auth"}}, 201);
  CHECK(ka["config"]["key_names"] == json::array({"apikey"}));
}

TEST_CASE("plugins admin: basic-auth passwords are stored hashed, never returned in clear") {
  Fixture f;
  const json bob = f.call("POST", "/consumers", {{"username", "bob"}}, 201);
  const json cred =
      f.call("POST", "/consumers/bob/basic-auth", {{"username", "b"}, {"password", "s3cret"}},
             201);
  const std::string hashed = config::basicAuthHash("s3cret", bob["id"].get<std::string>());
  CHECK(cred["password"] == hashed);
  CHECK(f.call("GET", "/basic-auths/b", nullptr, 200)["password"] == hashed);
  CHECK(f.call("GET", "/consumers/bob/basic-auth", nullptr, 200).dump().find("s3cret") ==
        std::string::npos);
  // A PATCH with a new password stores its hash too.
  const json patched = f.call("PATCH", "/basic-auths/b", {{"password", "other"}}, 200);
  CHECK(patched["password"] == config::basicAuthHash("other", bob["id"].get<std::string>()));
}

}  // namespace
}  // namespace portico::cp
