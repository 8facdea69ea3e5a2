#include "common/config/validate.h"

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "common/config/entities.h"
#include "common/config/key_auth_table.h"
#include "common/config/proto_json.h"
#include "common/config/typedefs.h"
#include "common/parallel.h"

namespace portico::config {

namespace {

// key-auth keys come by the hundred thousand (one or more per API client), and the schema
// path (entity -> JSON -> processEntity) costs ~17 us each: 1M keys took 19 s. The same rules
// as the keyauth_credentials schema, with the same messages, checked on the proto.
void validateKeyAuthCredentials(const v1::Snapshot& snapshot,
                                const absl::flat_hash_set<std::string>& consumer_ids,
                                FieldErrors* out) {
  const char* kEntity = "keyauth_credentials";
  absl::flat_hash_set<std::string_view> ids;
  absl::flat_hash_set<std::string_view> keys;
  ids.reserve(static_cast<size_t>(snapshot.keyauth_credentials_size()));
  keys.reserve(static_cast<size_t>(snapshot.keyauth_credentials_size()));
  for (const v1::KeyAuthCredential& k : snapshot.keyauth_credentials()) {
    const std::string& id = k.id();
    if (id.empty()) {
      out->push_back({kEntity, id, "id", "required field missing"});
    } else if (!isUuid(id)) {
      out->push_back({kEntity, id, "id", "expected a valid UUID"});
    } else if (!ids.insert(id).second) {
      out->push_back({kEntity, id, "id", "duplicate id: " + id});
    }
    if (!k.has_consumer() || k.consumer().id().empty()) {
      out->push_back({kEntity, id, "consumer", "required field missing"});
    } else if (!isUuid(k.consumer().id())) {
      out->push_back({kEntity, id, "consumer.id", "expected a valid UUID"});
    } else if (!consumer_ids.contains(k.consumer().id())) {
      out->push_back({kEntity, id, "consumer.id",
                      "the foreign key '{id=\"" + k.consumer().id() +
                          "\"}' does not reference an existing 'consumers' entity."});
    }
    if (k.key().empty()) {
      out->push_back({kEntity, id, "key", "length must be at least 1"});
    } else if (k.key().size() > kMaxSecretLength) {
      out->push_back({kEntity, id, "key", checkMaxLength(k.key(), kMaxSecretLength)});
    } else if (!keys.insert(k.key()).second) {
      out->push_back({kEntity, id, "key", "duplicate value: {key=\"" + k.key() + "\"}"});
    }
    if (k.has_ttl() && (k.ttl() < 0 || k.ttl() > 100000000)) {
      out->push_back({kEntity, id, "ttl", "value should be between 0 and 100000000"});
    }
    for (int i = 0; i < k.tags_size(); ++i) {
      if (std::string why = checkTag(k.tags(i)); !why.empty()) {
        out->push_back({kEntity, id, "tags." + std::to_string(i + 1), why});
      }
    }
  }
}

// The same rules on credentials held as a KeyAuthTable (the DP's form). Ids and keys are
// unique by construction (the table reported duplicates among its errors()); rows kept
// serialized (tags, unusual values) are checked as the proto they are.
void validateKeyAuthTable(const KeyAuthTable& table,
                          const absl::flat_hash_set<std::string>& consumer_ids,
                          FieldErrors* out) {
  const char* kEntity = "keyauth_credentials";
  out->insert(out->end(), table.errors().begin(), table.errors().end());
  char consumer[36];
  v1::KeyAuthCredential k;
  for (size_t i = 0; i < table.size(); ++i) {
    const KeyAuthTable::Row& row = table.row(i);
    formatUuid(row.consumer, consumer);
    const std::string_view consumer_id(consumer, sizeof(consumer));
    if (!consumer_ids.contains(absl::string_view(consumer, sizeof(consumer)))) {
      out->push_back({kEntity, formatUuid(row.id), "consumer.id",
                      "the foreign key '{id=\"" + std::string(consumer_id) +
                          "\"}' does not reference an existing 'consumers' entity."});
    }
    const std::string_view key = table.key(row);
    if (key.empty()) {
      out->push_back({kEntity, formatUuid(row.id), "key", "length must be at least 1"});
    } else if (key.size() > kMaxSecretLength) {
      out->push_back({kEntity, formatUuid(row.id), "key", checkMaxLength(key, kMaxSecretLength)});
    }
    if (row.ttl != KeyAuthTable::kNoTtl && (row.ttl < 0 || row.ttl > 100000000)) {
      out->push_back({kEntity, formatUuid(row.id), "ttl", "value should be between 0 and 100000000"});
    }
    const std::vector<std::string> tags = table.tags(i);
    for (size_t t = 0; t < tags.size(); ++t) {
      if (std::string why = checkTag(tags[t]); !why.empty()) {
        out->push_back({kEntity, formatUuid(row.id), "tags." + std::to_string(t + 1), why});
      }
    }
  }
}

// Services and routes that passed their schema in the latest validateSnapshot, keyed by type
// and the entity's serialized bytes. A DP validates its whole snapshot on every apply, deltas
// included, and the schema path (proto -> JSON -> engine) costs ~9 us per entity, ~185 ms at
// 10k services + 10k routes + 10k consumers; an unchanged entity is now one serialization
// and a lookup. Only entities that passed are kept, so errors are always recomputed, and
// equal bytes mean equal content under the same rules: a hit can never pass anything the
// engine would refuse. Each call replaces the set (memory: one snapshot's entities).
class SchemaMemo {
 public:
  using Set = absl::flat_hash_set<std::string>;
  std::shared_ptr<const Set> current() const {
    absl::MutexLock lock(&mu_);
    return passed_;
  }
  void replace(std::shared_ptr<const Set> next) {
    absl::MutexLock lock(&mu_);
    passed_ = std::move(next);
  }

 private:
  mutable absl::Mutex mu_;
  std::shared_ptr<const Set> passed_ ABSL_GUARDED_BY(mu_) = std::make_shared<Set>();
};

// Large snapshots' service and route checks run on two threads from this many per thread.
constexpr size_t kChecksPerThread = 2000;

SchemaMemo& schemaMemo() {
  static SchemaMemo* const memo = new SchemaMemo;
  return *memo;
}

}  // namespace

FieldErrors validateSnapshot(const v1::Snapshot& snapshot, const KeyAuthTable* key_auth,
                             bool check_entities) {
  FieldErrors out;
  // Hash sets of views into `snapshot` (no copies): at 10k services + 10k routes + 10k
  // consumers, ordered sets of copied strings were a third of validateSnapshot's time.
  using ViewSet = absl::flat_hash_set<std::string_view>;
  ViewSet service_ids, service_names, route_ids, route_names;
  service_ids.reserve(static_cast<size_t>(snapshot.services_size()));
  route_ids.reserve(static_cast<size_t>(snapshot.routes_size()));
  // The schema's rules on an entity's Kong JSON, as the Admin API ran them on write; skipped
  // for an entity whose exact bytes passed in the previous call (SchemaMemo).
  const std::shared_ptr<const SchemaMemo::Set> passed_before = schemaMemo().current();
  auto passed_now = std::make_shared<SchemaMemo::Set>();
  auto checkEntity = [&out](const std::string& type, const Json& entity, const std::string& id) {
    Json normalized;
    FieldErrors errors = processEntityJson(type, entity, &normalized);
    for (auto& e : errors) {
      e.entity_type = type;
      e.entity_id = id;
      out.push_back(std::move(e));
    }
    return errors.empty();
  };
  // Services' and routes' schema checks, computed up front on two threads for large
  // snapshots (each entity on its own: ~9 us each, 20,000 in a 10,000-route config), then
  // reported below in the order they always were.
  struct Checked {
    std::string key;  // type, NUL, the entity's serialized bytes (SchemaMemo's key)
    FieldErrors errors;
    bool passed = false;
  };
  const size_t n_services = static_cast<size_t>(snapshot.services_size());
  std::vector<Checked> checked(check_entities
                                   ? n_services + static_cast<size_t>(snapshot.routes_size())
                                   : 0);
  parallelFor(checked.size(), kChecksPerThread, 2, [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      const bool service = i < n_services;
      const char* type = service ? "services" : "routes";
      const google::protobuf::Message& m =
          service ? static_cast<const google::protobuf::Message&>(
                        snapshot.services(static_cast<int>(i)))
                  : snapshot.routes(static_cast<int>(i - n_services));
      Checked& c = checked[i];
      c.key = type;
      c.key += '\0';
      m.AppendToString(&c.key);
      if (passed_before->contains(c.key)) {
        c.passed = true;
        continue;
      }
      Json normalized;
      c.errors = processEntityJson(type, protoToJson(m), &normalized);
      const std::string& id = service ? snapshot.services(static_cast<int>(i)).id()
                                      : snapshot.routes(static_cast<int>(i - n_services)).id();
      for (auto& e : c.errors) {
        e.entity_type = type;
        e.entity_id = id;
      }
      c.passed = c.errors.empty();
    }
  });
  auto report = [&](size_t i) {
    Checked& c = checked[i];
    for (auto& e : c.errors) {
      out.push_back(std::move(e));
    }
    if (c.passed) {
      passed_now->insert(std::move(c.key));
    }
  };
  for (int i = 0; i < snapshot.services_size(); ++i) {
    const v1::Service& s = snapshot.services(i);
    if (check_entities) {
      report(static_cast<size_t>(i));
    }
    if (s.id().empty()) {
      out.push_back({"services", s.id(), "id", "required field missing"});
    } else if (!service_ids.insert(s.id()).second) {
      out.push_back({"services", s.id(), "id", "duplicate id: " + s.id()});
    }
    if (s.has_name() && !service_names.insert(s.name()).second) {
      out.push_back({"services", s.id(), "name", "duplicate name: " + s.name()});
    }
  }
  for (int i = 0; i < snapshot.routes_size(); ++i) {
    const v1::Route& r = snapshot.routes(i);
    if (check_entities) {
      report(n_services + static_cast<size_t>(i));
    }
    if (r.id().empty()) {
      out.push_back({"routes", r.id(), "id", "required field missing"});
    } else if (!route_ids.insert(r.id()).second) {
      out.push_back({"routes", r.id(), "id", "duplicate id: " + r.id()});
    }
    if (r.has_name() && !route_names.insert(r.name()).second) {
      out.push_back({"routes", r.id(), "name", "duplicate name: " + r.name()});
    }
    if (r.has_service_id() && !service_ids.contains(r.service_id())) {
      out.push_back({"routes", r.id(), "service.id",
                     "the foreign key '{id=\"" + r.service_id() +
                         "\"}' does not reference an existing 'services' entity."});
    }
  }
  // The schema-driven entities (Snapshot fields named after them, in dependency order):
  // the same processing the CP's Admin API ran on write, plus ids, unique keys and foreign
  // keys across the snapshot.
  absl::flat_hash_map<std::string, absl::flat_hash_set<std::string>> ids;
  auto idExists = [&](const std::string& entity, const std::string& id) {
    if (entity == "services") {
      return service_ids.contains(id);
    }
    if (entity == "routes") {
      return route_ids.contains(id);
    }
    auto it = ids.find(entity);
    return it != ids.end() && it->second.contains(id);
  };
  const google::protobuf::Descriptor* d = snapshot.GetDescriptor();
  const google::protobuf::Reflection* refl = snapshot.GetReflection();
  std::vector<std::pair<const EntitySchema*, Json>> entities;
  for (const EntitySchema* schema : allEntitySchemas()) {
    if (schema->name == "services" || schema->name == "routes" ||
        schema->name == "keyauth_credentials") {
      continue;  // services and routes above; key-auth keys below, on the proto directly
    }
    const google::protobuf::FieldDescriptor* f = d->FindFieldByName(schema->name);
    if (f == nullptr) {
      continue;
    }
    const int n = refl->FieldSize(snapshot, f);
    absl::flat_hash_set<std::string>& schema_ids = ids[schema->name];
    schema_ids.reserve(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      entities.emplace_back(schema, protoToJson(refl->GetRepeatedMessage(snapshot, f, i)));
      const std::string id = entities.back().second.value("id", "");
      if (!id.empty()) {
        schema_ids.insert(id);
      }
    }
  }
  struct PerSchema {
    std::vector<UniqueKey> unique_keys;
    std::vector<const Field*> foreign;
    absl::flat_hash_set<std::string> seen;
    absl::flat_hash_set<std::string> unique_values;
  };
  absl::flat_hash_map<const EntitySchema*, PerSchema> per_schema;
  for (const auto& [schema, entity] : entities) {
    auto [it, fresh] = per_schema.try_emplace(schema);
    PerSchema& ps = it->second;
    if (fresh) {
      ps.unique_keys = schema->allUniqueKeys();
      ps.foreign = schema->foreignFields();
    }
    {
      const std::string id = entity.value("id", "");
      if (check_entities) {
        checkEntity(schema->name, entity, id);
      }
      if (id.empty()) {
        out.push_back({schema->name, id, "id", "required field missing"});
      } else if (!ps.seen.insert(id).second) {
        out.push_back({schema->name, id, "id", "duplicate id: " + id});
      }
      for (const UniqueKey& key : ps.unique_keys) {
        bool all_null = true;
        for (const auto& name : key.fields) {
          auto v = entity.find(name);
          all_null = all_null && (v == entity.end() || v->is_null());
        }
        if (all_null) {
          continue;
        }
        Json values = Json::object();
        for (const auto& name : key.fields) {
          values[name] = entity.value(name, Json());
        }
        for (const auto& name : key.scope) {
          values[name] = entity.value(name, Json());
        }
        if (!ps.unique_values.insert(values.dump()).second) {
          out.push_back({schema->name, id, key.fields.front(),
                         "duplicate value: " + luaTable(values)});
        }
      }
      for (const Field* fk : ps.foreign) {
        const Json& ref = entity.value(fk->name, Json());
        if (!ref.is_object() || !ref.contains("id")) {
          continue;
        }
        const std::string ref_id = ref["id"].get<std::string>();
        if (!idExists(fk->reference, ref_id)) {
          out.push_back({schema->name, id, fk->name + ".id",
                         "the foreign key '{id=\"" + ref_id +
                             "\"}' does not reference an existing '" + fk->reference +
                             "' entity."});
        }
      }
    }
  }
  validateKeyAuthCredentials(snapshot, ids["consumers"], &out);
  if (key_auth != nullptr) {
    validateKeyAuthTable(*key_auth, ids["consumers"], &out);
  }
  if (check_entities) {
    schemaMemo().replace(std::move(passed_now));
  }
  return out;
}

}  // namespace portico::config
