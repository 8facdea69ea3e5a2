// KeyAuthTable: the DP's compact form of key-auth credentials gives back exactly what it was
// given (messages and wire bytes), finds keys, and reports what validateSnapshot() reports on
// the same credentials held in the proto.
#include "common/config/key_auth_table.h"

#include <algorithm>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "absl/strings/ascii.h"

#include "common/config/validate.h"

namespace portico::config {
namespace {

constexpr const char* kBob = "a1b2c3d4-0000-4000-8000-000000000001";

v1::KeyAuthCredential* add(v1::Snapshot* s, const std::string& id, const std::string& consumer,
                           const std::string& key) {
  auto* k = s->add_keyauth_credentials();
  k->set_id(id);
  if (!consumer.empty()) k->mutable_consumer()->set_id(consumer);
  k->set_key(key);
  return k;
}

v1::Snapshot withBob() {
  v1::Snapshot s;
  auto* c = s.add_consumers();
  c->set_id(kBob);
  c->set_username("bob");
  return s;
}

TEST_CASE("key-auth table: UUIDs parse in either case and format lower-case") {
  Uuid id;
  REQUIRE(parseUuid("A1B2C3D4-0000-4000-8000-00000000FFFF", &id));
  CHECK(formatUuid(id) == "a1b2c3d4-0000-4000-8000-00000000ffff");
  CHECK_FALSE(parseUuid("a1b2c3d4-0000-4000-8000-00000000fff", &id));
  CHECK_FALSE(parseUuid("a1b2c3d4+0000-4000-8000-00000000ffff", &id));
  CHECK_FALSE(parseUuid("g1b2c3d4-0000-4000-8000-00000000ffff", &id));
  CHECK_FALSE(parseUuid("", &id));
}

TEST_CASE("key-auth table: every credential comes back as it went in, in id order") {
  v1::Snapshot s = withBob();
  add(&s, "a1b2c3d4-0000-4000-8000-000000000030", kBob, "plain")->set_created_at(1700000000);
  auto* ttl = add(&s, "a1b2c3d4-0000-4000-8000-000000000010", kBob, "with-ttl");
  ttl->set_ttl(0);  // present and zero differs from absent on the wire
  ttl->set_created_at(-5);
  auto* tagged = add(&s, "a1b2c3d4-0000-4000-8000-000000000020", kBob, "tagged");
  tagged->add_tags("one");
  tagged->add_tags("two");
  add(&s, "A1B2C3D4-0000-4000-8000-000000000040", kBob, "upper-id");
  v1::Snapshot sorted = s;
  std::sort(sorted.mutable_keyauth_credentials()->pointer_begin(),
            sorted.mutable_keyauth_credentials()->pointer_end(),
            [](auto* a, auto* b) { return absl::AsciiStrToLower(a->id()) <
                                          absl::AsciiStrToLower(b->id()); });

  std::shared_ptr<const KeyAuthTable> t = KeyAuthTable::extract(&s);
  CHECK(s.keyauth_credentials().empty());
  REQUIRE(t->size() == 4);
  CHECK(t->errors().empty());
  v1::Snapshot back;
  t->appendTo(&back);
  REQUIRE(back.keyauth_credentials_size() == 4);
  for (int i = 0; i < 4; ++i) {
    INFO(i);
    CHECK(back.keyauth_credentials(i).SerializeAsString() ==
          sorted.keyauth_credentials(i).SerializeAsString());
  }
  CHECK(t->tags(1) == std::vector<std::string>{"one", "two"});
  // The wire bytes are those of a Snapshot holding only these credentials.
  std::string wire;
  t->appendWire(&wire);
  v1::Snapshot only;
  *only.mutable_keyauth_credentials() = sorted.keyauth_credentials();
  CHECK(wire == only.SerializeAsString());

  const KeyAuthTable::Row* row = t->find("with-ttl");
  REQUIRE(row != nullptr);
  CHECK(row->ttl == 0);
  CHECK(row->created_at == -5);
  CHECK(formatUuid(row->consumer) == kBob);
  CHECK(t->key(*row) == "with-ttl");
  CHECK(t->find("plain")->ttl == KeyAuthTable::kNoTtl);
  CHECK(t->find("PLAIN") == nullptr);
  CHECK(t->find("") == nullptr);
}

TEST_CASE("key-auth table: bad credentials are reported as validateSnapshot reports them") {
  v1::Snapshot s = withBob();
  add(&s, "a1b2c3d4-0000-4000-8000-000000000010", kBob, "k1");
  add(&s, "a1b2c3d4-0000-4000-8000-000000000011", kBob, "k1");
  add(&s, "a1b2c3d4-0000-4000-8000-000000000012", "a1b2c3d4-0000-4000-8000-00000000ffff", "k2");
  add(&s, "a1b2c3d4-0000-4000-8000-000000000013", "", "k3");
  add(&s, "not-a-uuid", kBob, "k5");
  add(&s, "a1b2c3d4-0000-4000-8000-000000000014", kBob, "k4")->set_ttl(-1);
  add(&s, "a1b2c3d4-0000-4000-8000-000000000015", kBob, "");
  add(&s, "a1b2c3d4-0000-4000-8000-000000000016", kBob, "k6")->add_tags("bad tag\x01");
  add(&s, "a1b2c3d4-0000-4000-8000-000000000010", kBob, "k7");  // duplicate id

  const FieldErrors on_proto = validateSnapshot(s);
  v1::Snapshot rest = s;
  std::shared_ptr<const KeyAuthTable> t = KeyAuthTable::extract(&rest);
  FieldErrors on_table = validateSnapshot(rest, t.get());
  // Same errors; the order differs (the table reports what it could not hold first).
  auto key = [](const FieldError& e) { return e.entity_id + "|" + e.field + "|" + e.reason; };
  auto sorted = [&](FieldErrors v) {
    std::sort(v.begin(), v.end(), [&](auto& a, auto& b) { return key(a) < key(b); });
    return v;
  };
  CHECK(sorted(on_table) == sorted(on_proto));
  CHECK(on_table.size() == 8);
  CHECK(t->find("k1") != nullptr);  // the first one stays
}

TEST_CASE("key-auth table: apply() upserts, deletes and cascades into a new table") {
  v1::Snapshot s = withBob();
  add(&s, "a1b2c3d4-0000-4000-8000-000000000010", kBob, "k1");
  add(&s, "a1b2c3d4-0000-4000-8000-000000000020", kBob, "k2")->add_tags("kept");
  add(&s, "a1b2c3d4-0000-4000-8000-000000000030", "a1b2c3d4-0000-4000-8000-000000000002", "k3");
  std::shared_ptr<const KeyAuthTable> t = KeyAuthTable::extract(&s);
  v1::KeyAuthCredential up1;
  up1.set_id("a1b2c3d4-0000-4000-8000-000000000010");
  up1.mutable_consumer()->set_id(kBob);
  up1.set_key("k1-new");
  v1::KeyAuthCredential up2 = up1;
  up2.set_id("a1b2c3d4-0000-4000-8000-000000000005");
  up2.set_key("k0");
  KeyAuthTable::Changes changes;
  changes.upserts = {&up1, &up2};
  changes.deleted_consumers = {"a1b2c3d4-0000-4000-8000-000000000002"};
  std::shared_ptr<const KeyAuthTable> next = t->apply(changes);
  REQUIRE(next->size() == 3);
  CHECK(formatUuid(next->row(0).id) == "a1b2c3d4-0000-4000-8000-000000000005");
  CHECK(next->find("k1") == nullptr);
  CHECK(next->find("k1-new") != nullptr);
  CHECK(next->find("k3") == nullptr);
  CHECK(next->tags(2) == std::vector<std::string>{"kept"});
  CHECK(t->size() == 3);  // unchanged
  CHECK(t->find("k1") != nullptr);

  KeyAuthTable::Changes del;
  del.deleted_ids = {"a1b2c3d4-0000-4000-8000-000000000020"};
  CHECK(next->apply(del)->size() == 2);
}

TEST_CASE("key-auth table: a compact row costs well under 100 bytes") {
  KeyAuthTable::Builder b(10000);
  for (int i = 0; i < 10000; ++i) {
    v1::KeyAuthCredential k;
    char id[37];
    std::snprintf(id, sizeof(id), "a1b2c3d4-0000-4000-8000-%012d", i);
    k.set_id(id);
    k.mutable_consumer()->set_id(kBob);
    k.set_key("key-" + std::to_string(i) + "-abcdefghijklmnopqrstuvwxyz");
    k.set_created_at(1700000000);
    b.add(k);
  }
  auto t = std::move(b).finish();
  REQUIRE(t->size() == 10000);
  // 48-byte rows, ~36-byte keys, a 5-byte index slot at 7/8 load at most (x2 after growth).
  CHECK(t->memoryBytes() / t->size() < 110);
  CHECK(t->find("key-9999-abcdefghijklmnopqrstuvwxyz") != nullptr);
}

}  // namespace
}  // namespace portico::config
