// Snapshot validation: every entity's schema plus what ties them together (ids, names,
// references), on what the DP receives.
#include <catch2/catch.hpp>

#include "common/config/regex.h"
#include "common/config/validate.h"

namespace portico::config {
namespace {

TEST_CASE("snapshot: unique ids, names and existing services") {
  v1::Snapshot snap;
  auto* s = snap.add_services();
  s->set_id("6b1c2a5e-6d7e-4c5e-8a1b-0f0e0d0c0b0a");
  s->set_name("a");
  s->set_protocol("http");
  s->set_host("a.test");
  s->set_port(80);
  s->set_retries(5);
  s->set_connect_timeout(1);
  s->set_write_timeout(1);
  s->set_read_timeout(1);
  *snap.add_services() = *s;
  auto* r = snap.add_routes();
  r->set_id("0b4f3c1e-2a6b-4d8e-9f1a-3c5e7a9b1d2f");
  r->add_protocols("http");
  r->add_paths("/");
  r->set_path_handling("v0");
  r->set_https_redirect_status_code(426);
  r->set_service_id("2c5d7e9f-1a3b-4c5d-8e7f-9a1b3c5d7e9f");
  const FieldErrors errors = validateSnapshot(snap);
  REQUIRE(errors.size() == 3);
  CHECK(errors[0].field == "id");
  CHECK(errors[1].field == "name");
  CHECK(errors[2] == FieldError{"routes", r->id(), "service.id",
                                "the foreign key '{id=\"2c5d7e9f-1a3b-4c5d-8e7f-9a1b3c5d7e9f\"}' "
                                "does not reference an existing 'services' entity."});
  snap.mutable_services()->RemoveLast();
  snap.mutable_routes(0)->set_service_id(s->id());
  CHECK(validateSnapshot(snap).empty());
}

}  // namespace
}  // namespace portico::config

namespace portico::config {
// validateSnapshot skips the schema of a service or route whose exact bytes passed in the
// previous call. An entity that failed is never skipped, and a changed one is checked again.
TEST_CASE("snapshot: entities validated before are skipped only while unchanged and valid") {
  v1::Snapshot snap;
  auto* s = snap.add_services();
  s->set_id("6b1c2a5e-6d7e-4c5e-8a1b-0f0e0d0c0b0a");
  s->set_protocol("http");
  s->set_host("a.test");
  s->set_port(80);
  s->set_retries(5);
  s->set_connect_timeout(1);
  s->set_write_timeout(1);
  s->set_read_timeout(1);
  auto* r = snap.add_routes();
  r->set_id("0b4f3c1e-2a6b-4d8e-9f1a-3c5e7a9b1d2f");
  r->add_protocols("http");
  r->add_paths("/");
  r->set_path_handling("v0");
  r->set_https_redirect_status_code(426);
  r->set_service_id(s->id());
  for (const FieldError& e : validateSnapshot(snap)) {
    UNSCOPED_INFO(e.entity_type << " " << e.field << ": " << e.reason);
  }
  REQUIRE(validateSnapshot(snap).empty());
  REQUIRE(validateSnapshot(snap).empty());  // from the memo

  r->set_paths(0, "no-slash");  // the same id, now invalid: checked again
  for (int pass = 0; pass < 2; ++pass) {
    const FieldErrors errors = validateSnapshot(snap);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].entity_type == "routes");
    CHECK(errors[0].field.rfind("paths", 0) == 0);
  }
  s->set_protocol("gopher");  // the service changes too: both reported, every time
  for (int pass = 0; pass < 2; ++pass) {
    CHECK(validateSnapshot(snap).size() == 2);
  }
  r->set_paths(0, "/");
  s->set_protocol("http");
  CHECK(validateSnapshot(snap).empty());
  // Without entity checks nothing is remembered or forgotten.
  r->set_paths(0, "still-no-slash");
  CHECK(validateSnapshot(snap, nullptr, false).empty());
  CHECK(validateSnapshot(snap).size() == 1);
}
}  // namespace portico::config

TEST_CASE("snapshot: key-auth credentials (checked on the proto, schema messages)") {
  portico::config::v1::Snapshot s;
  auto* c = s.add_consumers();
  c->set_id("a1b2c3d4-0000-4000-8000-000000000001");
  c->set_username("bob");
  auto add = [&](const std::string& id, const std::string& consumer, const std::string& key) {
    auto* k = s.add_keyauth_credentials();
    k->set_id(id);
    if (!consumer.empty()) k->mutable_consumer()->set_id(consumer);
    k->set_key(key);
    return k;
  };
  add("a1b2c3d4-0000-4000-8000-000000000010", c->id(), "k1");
  CHECK(portico::config::validateSnapshot(s).empty());
  add("a1b2c3d4-0000-4000-8000-000000000011", c->id(), "k1");
  add("a1b2c3d4-0000-4000-8000-000000000012", "a1b2c3d4-0000-4000-8000-00000000ffff", "k2");
  add("a1b2c3d4-0000-4000-8000-000000000013", "", "k3");
  add("not-a-uuid", c->id(), "");
  add("a1b2c3d4-0000-4000-8000-000000000014", c->id(), "k4")->set_ttl(-1);
  using portico::config::FieldError;
  const std::vector<FieldError> want = {
      {"keyauth_credentials", "a1b2c3d4-0000-4000-8000-000000000011", "key",
       "duplicate value: {key=\"k1\"}"},
      {"keyauth_credentials", "a1b2c3d4-0000-4000-8000-000000000012", "consumer.id",
       "the foreign key '{id=\"a1b2c3d4-0000-4000-8000-00000000ffff\"}' does not reference an "
       "existing 'consumers' entity."},
      {"keyauth_credentials", "a1b2c3d4-0000-4000-8000-000000000013", "consumer",
       "required field missing"},
      {"keyauth_credentials", "not-a-uuid", "id", "expected a valid UUID"},
      {"keyauth_credentials", "not-a-uuid", "key", "length must be at least 1"},
      {"keyauth_credentials", "a1b2c3d4-0000-4000-8000-000000000014", "ttl",
       "value should be between 0 and 100000000"},
  };
  CHECK(portico::config::validateSnapshot(s) == want);
}
