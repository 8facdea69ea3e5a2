// Deltas: applying a delta to the base snapshot gives exactly the full snapshot (same bytes,
// same hash), checked on hand-written cases and on randomized change sequences over a model
// of the database with its own, explicit cascade rules (independent of applyDelta's).
#include "common/sync/delta.h"

#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "common/sync/codec.h"

namespace portico::sync {
namespace {

namespace v1 = config::v1;

std::string uuid(std::mt19937_64& rng) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < 32; ++i) {
    if (i == 8 || i == 12 || i == 16 || i == 20) {
      s.push_back('-');
    }
    s.push_back(kHex[rng() % 16]);
  }
  return s;
}

template <class T>
T* findById(google::protobuf::RepeatedPtrField<T>* list, const std::string& id) {
  for (auto& e : *list) {
    if (e.id() == id) {
      return &e;
    }
  }
  return nullptr;
}

template <class T, class Pred>
std::vector<std::string> eraseIf(google::protobuf::RepeatedPtrField<T>* list, Pred pred) {
  std::vector<std::string> gone;
  for (int i = list->size() - 1; i >= 0; --i) {
    if (pred(list->Get(i))) {
      gone.push_back(list->Get(i).id());
      list->DeleteSubrange(i, 1);
    }
  }
  return gone;
}

// A model of one group's tables and change log, with the PostgreSQL schema's rules: routes
// RESTRICT their service; plugins, credentials and targets CASCADE (which the change log does
// not see, as in the database).
class Model {
 public:
  explicit Model(uint64_t seed) : rng_(seed) {}

  v1::Snapshot read() const {
    v1::Snapshot s = t_;
    s.set_generation(generation_);
    s.set_group("default");
    canonicalize(&s);
    return s;
  }
  uint64_t generation() const { return generation_; }

  // What the store's loadChanges(after) returns, as the SyncServer turns it into a delta.
  sync::v1::SnapshotDelta deltaSince(uint64_t after) const {
    std::map<std::pair<std::string, std::string>, bool> last;  // -> deleted
    for (const auto& c : log_) {
      if (c.generation > after) {
        last[{c.type, c.id}] = c.deleted;
      }
    }
    sync::v1::SnapshotDelta d;
    d.set_base_generation(after);
    d.set_generation(generation_);
    d.set_group("default");
    v1::Snapshot now = t_;
    for (const auto& [key, deleted] : last) {
      const auto& [type, id] = key;
      bool found = false;
      if (!deleted) {
        found = copyEntity(now, type, id, d.mutable_upserts());
      }
      if (!found) {  // deleted, or cascaded away after an upsert
        auto* ref = d.add_deletes();
        ref->set_entity_type(type);
        ref->set_entity_id(id);
      }
    }
    canonicalize(d.mutable_upserts());
    return d;
  }

  // One random committed change (a no-op the database would refuse is skipped).
  void randomChange() {
    switch (rng_() % 12) {
      case 0: case 1: {  // upsert service
        v1::Service* s = pickOrAdd(t_.mutable_services());
        s->set_host("h" + std::to_string(rng_() % 1000) + ".internal");
        s->set_port(static_cast<int>(1 + rng_() % 65535));
        s->set_protocol("http");
        commit("services", s->id());
        break;
      }
      case 2: {  // delete service (RESTRICT: only when no route uses it)
        if (t_.services().empty()) break;
        const std::string id = t_.services(rng_() % t_.services_size()).id();
        for (const auto& r : t_.routes()) {
          if (r.service_id() == id) return;
        }
        eraseIf(t_.mutable_services(), [&](const v1::Service& s) { return s.id() == id; });
        cascadePlugins(id);
        commit("services", id, true);
        break;
      }
      case 3: case 4: {  // upsert route
        v1::Route* r = pickOrAdd(t_.mutable_routes());
        r->clear_paths();
        r->add_paths("/p" + std::to_string(rng_() % 100));
        if (!t_.services().empty() && rng_() % 3 != 0) {
          r->set_service_id(t_.services(rng_() % t_.services_size()).id());
        } else {
          r->clear_service_id();
        }
        commit("routes", r->id());
        break;
      }
      case 5: {  // delete route
        if (t_.routes().empty()) break;
        const std::string id = t_.routes(rng_() % t_.routes_size()).id();
        eraseIf(t_.mutable_routes(), [&](const v1::Route& r) { return r.id() == id; });
        cascadePlugins(id);
        commit("routes", id, true);
        break;
      }
      case 6: {  // upsert consumer
        v1::Consumer* c = pickOrAdd(t_.mutable_consumers());
        c->set_username("u" + std::to_string(rng_() % 100000));
        commit("consumers", c->id());
        break;
      }
      case 7: {  // delete consumer: its credentials and plugins go with it
        if (t_.consumers().empty()) break;
        const std::string id = t_.consumers(rng_() % t_.consumers_size()).id();
        eraseIf(t_.mutable_consumers(), [&](const v1::Consumer& c) { return c.id() == id; });
        eraseIf(t_.mutable_keyauth_credentials(),
                [&](const v1::KeyAuthCredential& k) { return k.consumer().id() == id; });
        cascadePlugins(id);
        commit("consumers", id, true);
        break;
      }
      case 8: {  // upsert plugin scoped to something random
        v1::Plugin* p = pickOrAdd(t_.mutable_plugins());
        p->set_name(rng_() % 2 ? "key-auth" : "rate-limiting");
        p->set_config("{\"minute\":" + std::to_string(rng_() % 100) + "}");
        p->clear_route();
        p->clear_service();
        p->clear_consumer();
        const int scope = static_cast<int>(rng_() % 4);
        if (scope == 1 && !t_.routes().empty()) {
          p->mutable_route()->set_id(t_.routes(rng_() % t_.routes_size()).id());
        } else if (scope == 2 && !t_.services().empty()) {
          p->mutable_service()->set_id(t_.services(rng_() % t_.services_size()).id());
        } else if (scope == 3 && !t_.consumers().empty()) {
          p->mutable_consumer()->set_id(t_.consumers(rng_() % t_.consumers_size()).id());
        }
        commit("plugins", p->id());
        break;
      }
      case 9: {  // key-auth credential for a consumer, or delete one
        if (rng_() % 3 == 0 && !t_.keyauth_credentials().empty()) {
          const std::string id =
              t_.keyauth_credentials(rng_() % t_.keyauth_credentials_size()).id();
          eraseIf(t_.mutable_keyauth_credentials(),
                  [&](const v1::KeyAuthCredential& k) { return k.id() == id; });
          commit("keyauth_credentials", id, true);
          break;
        }
        if (t_.consumers().empty()) break;
        // New or updated; with the optional fields the DP's compact table must reproduce
        // byte for byte (ttl present or not, tags, created_at, negative values).
        v1::KeyAuthCredential* k = pickOrAdd(t_.mutable_keyauth_credentials());
        k->mutable_consumer()->set_id(t_.consumers(rng_() % t_.consumers_size()).id());
        k->set_key("k" + std::to_string(rng_()));
        k->set_created_at(static_cast<int64_t>(rng_() % 3) * 1700000000 - 1);
        k->clear_ttl();
        if (rng_() % 3 == 0) k->set_ttl(static_cast<int32_t>(rng_() % 5) - 1);
        k->clear_tags();
        if (rng_() % 4 == 0) k->add_tags("t" + std::to_string(rng_() % 10));
        commit("keyauth_credentials", k->id());
        break;
      }
      case 10: {  // upstream and a target, or delete an upstream (targets cascade)
        if (rng_() % 3 == 0 && !t_.upstreams().empty()) {
          const std::string id = t_.upstreams(rng_() % t_.upstreams_size()).id();
          eraseIf(t_.mutable_upstreams(), [&](const v1::Upstream& u) { return u.id() == id; });
          eraseIf(t_.mutable_targets(),
                  [&](const v1::Target& x) { return x.upstream().id() == id; });
          commit("upstreams", id, true);
          break;
        }
        v1::Upstream* u = pickOrAdd(t_.mutable_upstreams());
        u->set_name("up" + std::to_string(rng_() % 1000));
        commit("upstreams", u->id());
        v1::Target* x = t_.add_targets();
        x->set_id(uuid(rng_));
        x->mutable_upstream()->set_id(u->id());
        x->set_target("10.0.0." + std::to_string(rng_() % 255) + ":80");
        commit("targets", x->id());
        break;
      }
      default: {  // delete a plugin
        if (t_.plugins().empty()) break;
        const std::string id = t_.plugins(rng_() % t_.plugins_size()).id();
        eraseIf(t_.mutable_plugins(), [&](const v1::Plugin& p) { return p.id() == id; });
        commit("plugins", id, true);
        break;
      }
    }
  }

 private:
  struct Change {
    uint64_t generation;
    std::string type;
    std::string id;
    bool deleted;
  };

  template <class T>
  T* pickOrAdd(google::protobuf::RepeatedPtrField<T>* list) {
    if (!list->empty() && rng_() % 2 == 0) {
      return list->Mutable(static_cast<int>(rng_() % list->size()));
    }
    T* e = list->Add();
    e->set_id(uuid(rng_));
    return e;
  }

  void cascadePlugins(const std::string& id) {
    eraseIf(t_.mutable_plugins(), [&](const v1::Plugin& p) {
      return (p.has_route() && p.route().id() == id) ||
             (p.has_service() && p.service().id() == id) ||
             (p.has_consumer() && p.consumer().id() == id);
    });
  }

  void commit(const std::string& type, const std::string& id, bool deleted = false) {
    ++generation_;
    log_.push_back({generation_, type, id, deleted});
  }

  static bool copyEntity(v1::Snapshot& now, const std::string& type, const std::string& id,
                         v1::Snapshot* out) {
    if (type == "services") {
      if (auto* e = findById(now.mutable_services(), id)) { *out->add_services() = *e; return true; }
    } else if (type == "routes") {
      if (auto* e = findById(now.mutable_routes(), id)) { *out->add_routes() = *e; return true; }
    } else if (type == "consumers") {
      if (auto* e = findById(now.mutable_consumers(), id)) { *out->add_consumers() = *e; return true; }
    } else if (type == "plugins") {
      if (auto* e = findById(now.mutable_plugins(), id)) { *out->add_plugins() = *e; return true; }
    } else if (type == "keyauth_credentials") {
      if (auto* e = findById(now.mutable_keyauth_credentials(), id)) {
        *out->add_keyauth_credentials() = *e;
        return true;
      }
    } else if (type == "upstreams") {
      if (auto* e = findById(now.mutable_upstreams(), id)) { *out->add_upstreams() = *e; return true; }
    } else if (type == "targets") {
      if (auto* e = findById(now.mutable_targets(), id)) { *out->add_targets() = *e; return true; }
    }
    return false;
  }

  std::mt19937_64 rng_;
  v1::Snapshot t_;
  uint64_t generation_ = 0;
  std::vector<Change> log_;
};

TEST_CASE("delta: upsert, insert in order, delete, generation") {
  v1::Snapshot base;
  base.set_generation(1);
  for (const char* id : {"a", "c", "e"}) {
    auto* s = base.add_services();
    s->set_id(id);
    s->set_host(std::string(id) + ".old");
  }
  sync::v1::SnapshotDelta d;
  d.set_base_generation(1);
  d.set_generation(2);
  auto* b = d.mutable_upserts()->add_services();
  b->set_id("b");
  b->set_host("b.new");
  auto* c = d.mutable_upserts()->add_services();
  c->set_id("c");
  c->set_host("c.new");
  auto* del = d.add_deletes();
  del->set_entity_type("services");
  del->set_entity_id("e");
  REQUIRE(applyDelta(&base, d).ok());
  REQUIRE(base.services_size() == 3);
  CHECK(base.services(0).id() == "a");
  CHECK(base.services(1).host() == "b.new");
  CHECK(base.services(2).host() == "c.new");
  CHECK(base.generation() == 2);
}

TEST_CASE("delta: deleting a consumer removes its credentials and plugins (cascade)") {
  v1::Snapshot base;
  base.add_consumers()->set_id("c1");
  auto* k = base.add_keyauth_credentials();
  k->set_id("k1");
  k->mutable_consumer()->set_id("c1");
  auto* p = base.add_plugins();
  p->set_id("p1");
  p->mutable_consumer()->set_id("c1");
  base.add_plugins()->set_id("p2");  // global: stays
  sync::v1::SnapshotDelta d;
  d.set_generation(2);
  auto* del = d.add_deletes();
  del->set_entity_type("consumers");
  del->set_entity_id("c1");
  REQUIRE(applyDelta(&base, d).ok());
  CHECK(base.consumers().empty());
  CHECK(base.keyauth_credentials().empty());
  REQUIRE(base.plugins_size() == 1);
  CHECK(base.plugins(0).id() == "p2");
}

TEST_CASE("delta: unknown entity types and entities without id are refused") {
  v1::Snapshot base;
  sync::v1::SnapshotDelta d;
  auto* del = d.add_deletes();
  del->set_entity_type("nonsense");
  del->set_entity_id("x");
  CHECK(applyDelta(&base, d).code() == absl::StatusCode::kInvalidArgument);
  sync::v1::SnapshotDelta d2;
  d2.mutable_upserts()->add_routes();
  CHECK(applyDelta(&base, d2).code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("delta: randomized change sequences end exactly where a full snapshot does") {
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    Model m(seed);
    std::mt19937_64 rng(seed * 7919);
    std::map<uint64_t, v1::Snapshot> history;  // generation -> full read then
    history[0] = m.read();
    for (int step = 0; step < 150; ++step) {
      m.randomChange();
      history[m.generation()] = m.read();
      if (rng() % 5 != 0) {
        continue;
      }
      // A DP at a random earlier generation (the window) catches up with one delta.
      auto it = history.begin();
      std::advance(it, static_cast<long>(rng() % history.size()));
      v1::Snapshot dp = it->second;
      const v1::Snapshot full = m.read();
      REQUIRE(applyDelta(&dp, m.deltaSince(it->first)).ok());
      INFO("seed " << seed << " step " << step << " from " << it->first << " to "
                   << m.generation());
      REQUIRE(*hashSnapshot(dp) == *hashSnapshot(full));
      // And through the wire codec: encode, chunk, reassemble, apply.
      auto encoded = encodeDelta(m.deltaSince(it->first), *hashSnapshot(it->second),
                                 *hashSnapshot(full), EncodeOptions{64, 3, true});
      REQUIRE(encoded.ok());
      Reassembler r;
      std::optional<AssembledSnapshot> done;
      for (const auto& msg : (*encoded)->messages) {
        auto out = r.add(msg.chunk());
        REQUIRE(out.ok());
        if (out->has_value()) {
          done = std::move(**out);
        }
      }
      REQUIRE(done.has_value());
      REQUIRE(done->delta.has_value());
      v1::Snapshot dp2 = it->second;
      REQUIRE(applyDelta(&dp2, *done->delta).ok());
      REQUIRE(*hashSnapshot(dp2) == done->config_hash);
      // And as the DP holds a config: split into the rest and a key-auth table.
      v1::Snapshot rest;
      std::shared_ptr<const config::KeyAuthTable> table;
      REQUIRE(parseSnapshotSplit(*serializeDeterministic(it->second), &rest, &table).ok());
      REQUIRE(table->size() == static_cast<size_t>(it->second.keyauth_credentials_size()));
      REQUIRE(*serializeDeterministic(rest, *table) == *serializeDeterministic(it->second));
      const auto before = table;
      REQUIRE(applyDelta(&rest, &table, *done->delta).ok());
      CHECK(rest.keyauth_credentials().empty());
      REQUIRE(sha256Hex(*serializeDeterministic(rest, *table)) == done->config_hash);
      CHECK(table->errors().empty());
      CHECK(*serializeDeterministic(v1::Snapshot(), *before) ==
            *serializeDeterministic(v1::Snapshot(), *before));  // the base table is unchanged
    }
  }
}

TEST_CASE("delta: a split snapshot (rest + key-auth table) takes a delta like the whole one") {
  v1::Snapshot whole;
  whole.set_generation(1);
  for (const char* id : {"00000000-0000-4000-8000-000000000001",
                         "00000000-0000-4000-8000-000000000002"}) {
    whole.add_consumers()->set_id(id);
  }
  auto addKey = [](v1::Snapshot* s, const char* id, const char* consumer, const char* key) {
    auto* k = s->add_keyauth_credentials();
    k->set_id(id);
    k->mutable_consumer()->set_id(consumer);
    k->set_key(key);
    return k;
  };
  addKey(&whole, "00000000-0000-4000-8000-0000000000a1", "00000000-0000-4000-8000-000000000001",
         "one");
  addKey(&whole, "00000000-0000-4000-8000-0000000000a2", "00000000-0000-4000-8000-000000000002",
         "two")->set_ttl(60);
  v1::Snapshot rest;
  std::shared_ptr<const config::KeyAuthTable> table;
  REQUIRE(parseSnapshotSplit(*serializeDeterministic(whole), &rest, &table).ok());
  REQUIRE(table->size() == 2);
  CHECK(rest.keyauth_credentials().empty());
  CHECK(rest.consumers_size() == 2);
  REQUIRE(table->find("two") != nullptr);
  CHECK(table->find("two")->ttl == 60);
  CHECK(table->find("nope") == nullptr);

  // Consumer 1 goes (its key with it), a new key for consumer 2 and one replaced.
  sync::v1::SnapshotDelta d;
  d.set_base_generation(1);
  d.set_generation(2);
  auto* del = d.add_deletes();
  del->set_entity_type("consumers");
  del->set_entity_id("00000000-0000-4000-8000-000000000001");
  addKey(d.mutable_upserts(), "00000000-0000-4000-8000-0000000000a3",
         "00000000-0000-4000-8000-000000000002", "three");
  addKey(d.mutable_upserts(), "00000000-0000-4000-8000-0000000000a2",
         "00000000-0000-4000-8000-000000000002", "two-b");
  v1::Snapshot expected = whole;
  REQUIRE(applyDelta(&expected, d).ok());
  const auto base_table = table;
  REQUIRE(applyDelta(&rest, &table, d).ok());
  CHECK(*serializeDeterministic(rest, *table) == *serializeDeterministic(expected));
  CHECK(table->find("one") == nullptr);
  CHECK(table->find("two") == nullptr);
  CHECK(table->find("two-b") != nullptr);
  CHECK(table->find("three") != nullptr);
  CHECK(base_table->find("one") != nullptr);  // what the DP still serves is untouched
  CHECK(base_table->size() == 2);
}

TEST_CASE("delta: a payload whose credentials are not valid messages is refused") {
  v1::Snapshot rest;
  std::shared_ptr<const config::KeyAuthTable> table;
  // Field 12 with a length running past the end, field 12 as a varint, a bad tag.
  for (std::string bad : {std::string("\x62\x05" "ab", 4), std::string("\x60\x01", 2),
                          std::string("\x62\x02\xff\xff", 4), std::string("\x07", 1)}) {
    CHECK(parseSnapshotSplit(bad, &rest, &table).code() == absl::StatusCode::kInvalidArgument);
  }
}

TEST_CASE("delta: a corrupted delta chunk is refused with an error, not applied") {
  sync::v1::SnapshotDelta d;
  d.set_generation(2);
  d.set_base_generation(1);
  d.mutable_upserts()->add_services()->set_id("a");
  auto encoded = encodeDelta(d, "base", "target", EncodeOptions{1 << 20, 3, true});
  REQUIRE(encoded.ok());
  sync::v1::ConfigChunk chunk = (*encoded)->messages[0].chunk();
  std::string data = chunk.data();
  data[data.size() / 2] ^= 0x5a;
  chunk.set_data(data);
  Reassembler r;
  auto out = r.add(chunk);
  CHECK_FALSE(out.ok());
}

}  // namespace
}  // namespace portico::sync
