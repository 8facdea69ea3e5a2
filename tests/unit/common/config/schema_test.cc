// The schema engine and the entity/plugin schemas: one TEST_CASE per accepted or rejected
// input, with Kong's exact messages.
#include <catch2/catch.hpp>

#include "common/config/entities.h"
#include "common/config/schema.h"
#include "tests/unit/common/config/config_test_util.h"

namespace portico::config {
namespace {

std::string message(const std::string& entity, const Json& input) {
  Json out;
  const FieldErrors errors = processEntityJson(entity, input, &out);
  return errors.empty() ? "" : testing::violation(errors);
}

const char* kConsumer = R"({"id":"6b1c2a5e-6d7e-4c5e-8a1b-0f0e0d0c0b0a"})";

Json keyAuth(const Json& config) {
  return Json{{"name", "key-auth"}, {"config", config}};
}

TEST_CASE("key-auth: empty config gets every default") {
  Json out;
  REQUIRE(processEntityJson("plugins", Json{{"name", "key-auth"}}, &out).empty());
  CHECK(out["config"] == Json::parse(R"({"key_names":["apikey"],"hide_credentials":false,
      "anonymous":null,"key_in_header":true,"key_in_query":true,"key_in_body":false,
      "run_on_preflight":true,"realm":null})"));
  CHECK(out["enabled"] == true);
  CHECK(out["instance_name"].is_null());
}

TEST_CASE("key-auth: accepts custom key names") {
  CHECK(message("plugins", keyAuth({{"key_names", {"x-api-key", "apikey"}}})) == "");
}

TEST_CASE("key-auth: rejects a bad header name") {
  CHECK(message("plugins", keyAuth({{"key_names", {"a b"}}})) ==
        "schema violation (config.key_names.1: bad header name 'a b', allowed characters are "
        "A-Z, a-z, 0-9, '_', and '-')");
}

TEST_CASE("key-auth: rejects a non-boolean hide_credentials") {
  CHECK(message("plugins", keyAuth({{"hide_credentials", "yes"}})) ==
        "schema violation (config.hide_credentials: expected a boolean)");
}

TEST_CASE("key-auth: rejects null for a required field") {
  CHECK(message("plugins", keyAuth({{"key_names", nullptr}})) ==
        "schema violation (config.key_names: required field missing)");
}

TEST_CASE("key-auth: rejects unknown config fields") {
  CHECK(message("plugins", keyAuth({{"nope", 1}})) == "schema violation (config.nope: unknown field)");
}

TEST_CASE("key-auth: rejects a consumer scope") {
  CHECK(message("plugins", Json{{"name", "key-auth"}, {"consumer", Json::parse(kConsumer)}}) ==
        "schema violation (consumer: value must be null)");
}

TEST_CASE("key-auth: rejects stream protocols") {
  CHECK(message("plugins", Json{{"name", "key-auth"}, {"protocols", {"tcp"}}}) ==
        "schema violation (protocols.1: expected one of: grpc, grpcs, http, https)");
}

TEST_CASE("plugins: rejects a plugin that is not enabled") {
  CHECK(message("plugins", Json{{"name", "nope"}}) ==
        "schema violation (name: plugin 'nope' not enabled; add it to the 'plugins' "
        "configuration property)");
}

TEST_CASE("plugins: requires a name") {
  CHECK(message("plugins", Json::object()) == "schema violation (name: required field missing)");
}

TEST_CASE("acl: requires allow or deny") {
  CHECK(message("plugins", Json{{"name", "acl"}}) ==
        "schema violation (at least one of these fields must be non-empty: 'config.allow', "
        "'config.deny')");
}

TEST_CASE("consumers: at least one of custom_id, username") {
  CHECK(message("consumers", Json::object()) ==
        "schema violation (at least one of these fields must be non-empty: 'custom_id', "
        "'username')");
}

TEST_CASE("consumers: username must be a string") {
  CHECK(message("consumers", Json{{"username", 1}}) ==
        "schema violation (username: expected a string)");
}

TEST_CASE("consumers: id must be a UUID") {
  CHECK(message("consumers", Json{{"username", "a"}, {"id", "x"}}) ==
        "schema violation (id: expected a valid UUID)");
}

TEST_CASE("upstreams: rejects an IP name") {
  CHECK(message("upstreams", Json{{"name", "10.0.0.1"}}) ==
        "schema violation (name: Invalid name ('10.0.0.1'); no ip addresses allowed)");
}

TEST_CASE("upstreams: rejects slots out of range") {
  CHECK(message("upstreams", Json{{"name", "a"}, {"slots", 5}}) ==
        "schema violation (slots: value should be between 10 and 65536)");
}

TEST_CASE("targets: adds the default port") {
  Json out;
  REQUIRE(processEntityJson("targets",
                            Json{{"target", "a.test"}, {"upstream", Json::parse(kConsumer)}}, &out)
              .empty());
  CHECK(out["target"] == "a.test:8000");
  CHECK(out["weight"] == 100);
}

TEST_CASE("targets: rejects weight out of range") {
  CHECK(message("targets", Json{{"target", "a.test"}, {"weight", 70000},
                                {"upstream", Json::parse(kConsumer)}}) ==
        "schema violation (weight: value should be between 0 and 65535)");
}

TEST_CASE("keyauth_credentials: key is generated") {
  Json out;
  REQUIRE(processEntityJson("keyauth_credentials", Json{{"consumer", Json::parse(kConsumer)}},
                            &out)
              .empty());
  CHECK(out["key"].get<std::string>().size() == 32);
}

TEST_CASE("keyauth_credentials: consumer is required") {
  CHECK(message("keyauth_credentials", Json::object()) ==
        "schema violation (consumer: required field missing)");
}

TEST_CASE("foreign keys: a record without id is missing its primary key") {
  CHECK(message("acls", Json{{"group", "g"}, {"consumer", Json{{"username", "x"}}}}) ==
        "schema violation (consumer.id: missing primary key)");
}

TEST_CASE("engine: mutually_required names every field") {
  EntitySchema s;
  s.name = "things";
  s.fields = {Field::string("a"), Field::string("b")};
  EntityCheck c;
  c.kind = EntityCheck::Kind::kMutuallyRequired;
  c.fields = {"a", "b"};
  s.checks = {c};
  Json out;
  const FieldErrors errors = processEntity(s, Json{{"a", "x"}}, &out);
  CHECK(testing::violation(errors) ==
        "schema violation (all or none of these fields must be set: 'a', 'b')");
  CHECK(out == Json{{"a", "x"}, {"b", nullptr}});
}

TEST_CASE("certificates: an unparsable cert is reported on the field") {
  CHECK(message("certificates", Json{{"cert", "x"}, {"key", "y"}}).find(
            "cert: invalid certificate: ") != std::string::npos);
}

TEST_CASE("schema json: consumers lists fields and entity checks") {
  const Json j = schemaToJson(*findEntitySchema("consumers"));
  // Kong's, plus our length cap (docs/design.md, "Field length caps").
  CHECK(j["fields"][3] ==
        Json::parse(R"({"username":{"len_max":255,"type":"string","unique":true}})"));
  CHECK(j["entity_checks"][0] == Json::parse(R"({"at_least_one_of":["custom_id","username"]})"));
}

TEST_CASE("proto mapping: a plugin round-trips through config.proto") {
  Json out;
  REQUIRE(processEntityJson("plugins", Json{{"name", "key-auth"}}, &out).empty());
  out["id"] = "6b1c2a5e-6d7e-4c5e-8a1b-0f0e0d0c0b0a";
  out["created_at"] = 1;
  out["updated_at"] = 2;
  v1::Plugin p;
  REQUIRE(jsonToProto(out, &p));
  CHECK(p.name() == "key-auth");
  CHECK_FALSE(p.has_consumer());
  CHECK(protoToJson(p) == out);
}

TEST_CASE("basic-auth hash: sha1(password .. consumer_id)") {
  // printf 'pwid' | sha1sum
  CHECK(basicAuthHash("pw", "id") == "4a04e910b25434f310c9f155a1e144d3ddc065a0");
}

}  // namespace
}  // namespace portico::config

TEST_CASE("entity size: the exact text length decides where the quick bound cannot") {
  using portico::config::checkEntitySize;
  using portico::config::kMaxEntityBytes;
  using Json = portico::config::Json;
  const std::string overhead = R"({"name":""})";
  // Plain text just under and just over the limit: the bound (6 bytes a character) is past
  // the limit for both, so the written length decides.
  const Json under = {{"name", std::string(kMaxEntityBytes - overhead.size(), 'a')}};
  const Json over = {{"name", std::string(kMaxEntityBytes - overhead.size() + 1, 'a')}};
  CHECK(checkEntitySize("services", under).empty());
  const auto errors = checkEntitySize("services", over);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].field == "@entity");
  CHECK(errors[0].reason == "entity size must be at most 65536 bytes (got 65537)");
  // Escapes count as written: 11,000 control characters are 66,000 bytes of \u00XX.
  const Json escaped = {{"name", std::string(11000, '\x01')}};
  CHECK(checkEntitySize("services", escaped).size() == 1);
  // Invalid UTF-8 is measured as written (each bad byte as U+FFFD, 3 bytes), never refused
  // for its encoding here and never a crash: 21,000 bytes are 63,000 written, 22,000 are
  // 66,000.
  CHECK(checkEntitySize("services", Json{{"name", std::string(21000, '\xff')}}).empty());
  CHECK(checkEntitySize("services", Json{{"name", std::string(22000, '\xff')}}).size() == 1);
  // Nesting far deeper than any parser lets through (64 levels) is still only measured.
  Json deep = "x";
  for (int i = 0; i < 2000; ++i) {
    deep = Json::array({deep});
  }
  CHECK(checkEntitySize("services", Json{{"tags", deep}}).empty());
  // Deep and wide values under the limit pass; so does a small entity (the quick path).
  Json wide = Json::array();
  for (int i = 0; i < 1000; ++i) {
    wide.push_back(Json{{"k", i}, {"v", Json::array({true, nullptr, 1.5})}});
  }
  CHECK(checkEntitySize("services", Json{{"tags", wide}}).empty());
  CHECK(checkEntitySize("services", Json{{"name", "a"}}).empty());
}
