// Plugin chains: Kong's scope precedence table (the most specific instance wins, resolved
// after auth sets the consumer), PRIORITY order, and refusing what this DP cannot run.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "data_plane/plugins/chain.h"
#include "tests/unit/data_plane/plugins/common.h"
#include "tests/unit/data_plane/plugins/plugin_fixture.h"

namespace portico::dp {
namespace {

using config::Json;
using testing::PluginFixture;
using testing::WireResponse;

std::string messageOf(const WireResponse& r) {
  nlohmann::json j = nlohmann::json::parse(r.body, nullptr, false);
  return j.is_object() ? j.value("message", "") : "";
}

TEST_CASE("chain: Kong's precedence table, most specific first, consumer after auth") {
  PluginFixture f;
  const std::string other_route = f.addRoute("other", "/other", f.serviceId());
  Json bob = f.add("consumers", {{"username", "bob"}});
  f.add("keyauth_credentials", {{"consumer", {{"id", bob["id"]}}}, {"key", "k"}});
  f.add("plugins", {{"name", "key-auth"}});  // global: sets the consumer first (1250 > 2)
  const Json route = {{"id", f.routeId()}}, service = {{"id", f.serviceId()}},
             consumer = {{"id", bob["id"]}};
  // In Kong's lookup order; the message names the scope.
  const std::vector<std::pair<std::string, Json>> scopes = {
      {"route+service+consumer", {{"route", route}, {"service", service}, {"consumer", consumer}}},
      {"route+consumer", {{"route", route}, {"consumer", consumer}}},
      {"service+consumer", {{"service", service}, {"consumer", consumer}}},
      {"route+service", {{"route", route}, {"service", service}}},
      {"consumer", {{"consumer", consumer}}},
      {"route", {{"route", route}}},
      {"service", {{"service", service}}},
      {"global", Json::object()},
  };
  for (const auto& [name, scope] : scopes) {
    Json p = scope;
    p["name"] = "request-termination";
    p["config"] = {{"status_code", 418}, {"message", name}};
    f.add("plugins", p);
  }
  REQUIRE(f.apply().ToString() == "OK");
  // Remove the winner each round: the next one in Kong's order takes over.
  for (size_t i = 0; i < scopes.size(); ++i) {
    WireResponse r = f.get("/x", "apikey: k\r\n");
    INFO("round " << i);
    CHECK(r.status == 418);
    CHECK(messageOf(r) == scopes[i].first);
    auto* plugins = f.config().mutable_plugins();
    for (int j = 0; j < plugins->size(); ++j) {
      if (plugins->Get(j).name() == "request-termination") {
        const Json conf = Json::parse(plugins->Get(j).config());
        if (conf["message"] == scopes[i].first) {
          plugins->DeleteSubrange(j, 1);
          break;
        }
      }
    }
    REQUIRE(f.apply().ToString() == "OK");
  }
  CHECK(f.get("/x", "apikey: k\r\n").status == 200);
}

TEST_CASE("chain: route-scoped instances stay on their route; consumer ones need the consumer") {
  PluginFixture f;
  f.addRoute("other", "/other", f.serviceId());
  Json bob = f.add("consumers", {{"username", "bob"}});
  Json eve = f.add("consumers", {{"username", "eve"}});
  f.add("keyauth_credentials", {{"consumer", {{"id", bob["id"]}}}, {"key", "kb"}});
  f.add("keyauth_credentials", {{"consumer", {{"id", eve["id"]}}}, {"key", "ke"}});
  f.add("plugins", {{"name", "key-auth"}});
  f.add("plugins", {{"name", "request-termination"}, {"route", {{"id", f.routeId()}}},
                    {"config", {{"status_code", 418}, {"message", "route"}}}});
  f.add("plugins", {{"name", "request-termination"}, {"consumer", {{"id", bob["id"]}}},
                    {"config", {{"status_code", 418}, {"message", "bob"}}}});
  REQUIRE(f.apply().ToString() == "OK");
  CHECK(messageOf(f.get("/x", "apikey: kb\r\n")) == "bob");      // consumer (5) before route (6)
  CHECK(messageOf(f.get("/x", "apikey: ke\r\n")) == "route");
  CHECK(messageOf(f.get("/other", "apikey: kb\r\n")) == "bob");
  CHECK(f.get("/other", "apikey: ke\r\n").status == 200);
}

TEST_CASE("chain: a plugin this DP does not implement fails the snapshot with a field error") {
  config::v1::Snapshot s;
  auto* p = s.add_plugins();
  p->set_id("5f0b7a49-8f3e-4c7b-9d1a-1b2c3d4e5f60");
  p->set_name("made-up");
  p->set_config("{}");
  p->set_enabled(false);  // disabled is no excuse: enabling it later would fail open
  config::FieldErrors errors;
  auto chains = PluginChains::build(s, &errors);
  REQUIRE(!chains.ok());
  CHECK(std::string(chains.status().message()) ==
        "plugins 5f0b7a49-8f3e-4c7b-9d1a-1b2c3d4e5f60: name: plugin 'made-up' is not "
        "implemented by this data plane");
  REQUIRE(errors.size() == 1);
  CHECK(errors[0] == config::FieldError{"plugins", "5f0b7a49-8f3e-4c7b-9d1a-1b2c3d4e5f60", "name",
                                        "plugin 'made-up' is not implemented by this data plane"});
  // And the whole snapshot build fails the same way (the DP NACKs it).
  auto snap = Snapshot::build(s, "h");
  CHECK(!snap.ok());
}

TEST_CASE("chain: PRIORITY order, ties by name descending") {
  PluginFixture f;
  f.add("plugins", {{"name", "request-termination"}, {"config", {{"status_code", 418}}}});
  f.add("plugins", {{"name", "cors"}});
  f.add("plugins", {{"name", "ip-restriction"}, {"config", {{"deny", {"10.0.0.1"}}}}});
  f.add("plugins", {{"name", "bot-detection"}});
  REQUIRE(f.apply().ToString() == "OK");
  auto snap = Snapshot::build(f.config(), "h");
  REQUIRE(snap.ok());
  std::vector<std::string> order;
  for (const ChainEntry& e : (*snap)->plugins().forRoute(0)) {
    order.emplace_back(e.base->entity->name());
  }
  CHECK(order == std::vector<std::string>{"bot-detection", "cors", "ip-restriction",
                                          "request-termination"});
}

TEST_CASE("chain: dynamic ordering moves access handlers (before and after), by route") {
  PluginFixture f;
  const std::string other = f.addRoute("other", "/other", f.serviceId());
  f.add("plugins", {{"name", "key-auth"}});  // 1250: runs before request-termination (2)
  f.add("plugins", {{"name", "request-termination"},
                    {"route", {{"id", f.routeId()}}},
                    {"config", {{"status_code", 418}, {"message", "first"}}},
                    {"ordering", {{"before", {{"access", {"key-auth"}}}}}}});
  f.add("plugins", {{"name", "request-termination"},
                    {"route", {{"id", other}}},
                    {"config", {{"status_code", 418}, {"message", "second"}}}});
  REQUIRE(f.apply().ToString() == "OK");
  // On route r request-termination answers before key-auth asks for a key ...
  WireResponse r = f.get("/x");
  CHECK(r.status == 418);
  CHECK(messageOf(r) == "first");
  // ... on the other route the static order holds.
  CHECK(f.get("/other").status == 401);

  auto snap = Snapshot::build(f.config(), "h");
  REQUIRE(snap.ok());
  bool reordered = false;
  const Chain& access = (*snap)->plugins().accessForRoute(0, &reordered);
  REQUIRE(reordered);
  REQUIRE(access.size() == 2);
  CHECK(access[0].base->entity->name() == "request-termination");
  CHECK(access[0].priority_pos == 1);  // the response and log phases keep priority order
  (*snap)->plugins().accessForRoute(1, &reordered);
  CHECK_FALSE(reordered);
}

TEST_CASE("chain: `after` gives the same order; a cycle and a consumer scope are refused") {
  PluginFixture f;
  f.add("plugins", {{"name", "key-auth"},
                    {"ordering", {{"after", {{"access", {"request-termination"}}}}}}});
  f.add("plugins", {{"name", "request-termination"}, {"config", {{"status_code", 418}}}});
  REQUIRE(f.apply().ToString() == "OK");
  CHECK(f.get("/x").status == 418);

  // key-auth after request-termination and request-termination after key-auth: a cycle.
  auto* plugins = f.config().mutable_plugins();
  for (auto& p : *plugins) {
    if (p.name() == "request-termination") {
      p.set_ordering(R"({"after":{"access":["key-auth"]}})");
    }
  }
  const absl::Status st = f.apply();
  CHECK(st.code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(st.message()).find("dynamic ordering has a cycle") != std::string::npos);
  CHECK(f.get("/x").status == 418);  // the last good config still serves

  // The shared schema refuses ordering on a consumer-scoped instance (Admin API and DP alike).
  Json bob;
  bob["username"] = "bob";
  bob["id"] = "8a0b7a49-8f3e-4c7b-9d1a-1b2c3d4e5f61";
  Json out;
  config::FieldErrors errors = config::processEntityJson(
      "plugins",
      {{"id", "7a0b7a49-8f3e-4c7b-9d1a-1b2c3d4e5f62"},
       {"name", "request-termination"},
       {"consumer", {{"id", bob["id"]}}},
       {"ordering", {{"before", {{"access", {"key-auth"}}}}}}},
      &out);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].field == "@entity");
  CHECK(errors[0].reason == "dynamic ordering is not supported on consumer-scoped plugins");
  config::v1::Snapshot s;
  auto* p = s.add_plugins();
  p->set_id("7a0b7a49-8f3e-4c7b-9d1a-1b2c3d4e5f62");
  p->set_name("request-termination");
  p->set_config(R"({"status_code":503})");
  p->set_enabled(true);
  p->mutable_consumer()->set_id(bob["id"].get<std::string>());
  p->set_ordering(R"({"before":{"access":["key-auth"]}})");
  config::FieldErrors nack;
  CHECK_FALSE(PluginChains::build(s, &nack).ok());
  REQUIRE(nack.size() == 1);
  CHECK(nack[0].field == "ordering");
}

}  // namespace
}  // namespace portico::dp
