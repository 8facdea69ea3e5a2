#include "common/sync/delta.h"

#include <algorithm>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/sync/codec.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "google/protobuf/repeated_field.h"

namespace portico::sync {
namespace {

namespace pb = google::protobuf;
using config::v1::Snapshot;

// The Snapshot fields that are entity lists (repeated messages with a string `id`), and
// for each the fields of its message that are foreign keys (ForeignKey messages).
struct EntityField {
  const pb::FieldDescriptor* list;
  const pb::FieldDescriptor* id;
  std::vector<const pb::FieldDescriptor*> foreign_keys;
};

const std::vector<EntityField>& entityFields() {
  static const auto* const kFields = [] {
    auto* out = new std::vector<EntityField>();
    const pb::Descriptor* d = Snapshot::descriptor();
    const pb::Descriptor* fk = config::v1::ForeignKey::descriptor();
    for (int i = 0; i < d->field_count(); ++i) {
      const pb::FieldDescriptor* f = d->field(i);
      if (!f->is_repeated() || f->type() != pb::FieldDescriptor::TYPE_MESSAGE) {
        continue;
      }
      const pb::FieldDescriptor* id = f->message_type()->FindFieldByName("id");
      if (id == nullptr || id->type() != pb::FieldDescriptor::TYPE_STRING || id->is_repeated()) {
        continue;
      }
      EntityField e{f, id, {}};
      for (int j = 0; j < f->message_type()->field_count(); ++j) {
        const pb::FieldDescriptor* g = f->message_type()->field(j);
        if (!g->is_repeated() && g->message_type() == fk) {
          e.foreign_keys.push_back(g);
        }
      }
      out->push_back(std::move(e));
    }
    return out;
  }();
  return *kFields;
}

const EntityField* findEntityField(const std::string& name) {
  for (const auto& e : entityFields()) {
    if (e.list->name() == name) {
      return &e;
    }
  }
  return nullptr;
}

const std::string& idOf(const pb::Message& m, const pb::FieldDescriptor* id) {
  return m.GetReflection()->GetStringReference(m, id, nullptr);
}

// MutableRepeatedPtrField is deprecated in favour of MutableRepeatedFieldRef, which has no
// pointer-level access; sorting and inserting by pointer moves is what keeps canonicalize()
// and applyDelta() cheap on 30k-entity snapshots, so we keep using it here only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
pb::RepeatedPtrField<pb::Message>* listOf(Snapshot* s, const EntityField& e) {
  return s->GetReflection()->MutableRepeatedPtrField<pb::Message>(s, e.list);
}
#pragma GCC diagnostic pop

// Index of the first element with id >= `id` in the sorted list.
int lowerBound(const pb::RepeatedPtrField<pb::Message>& list, const pb::FieldDescriptor* idf,
               const std::string& id) {
  int lo = 0;
  int hi = list.size();
  while (lo < hi) {
    const int mid = lo + (hi - lo) / 2;
    if (idOf(list.Get(mid), idf) < id) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

}  // namespace

bool isEntityType(const std::string& entity_type) {
  return findEntityField(entity_type) != nullptr;
}

uint64_t entityCount(const Snapshot& snapshot) {
  uint64_t n = 0;
  for (const auto& e : entityFields()) {
    n += static_cast<uint64_t>(snapshot.GetReflection()->FieldSize(snapshot, e.list));
  }
  return n;
}

void canonicalize(Snapshot* snapshot) {
  for (const auto& e : entityFields()) {
    pb::RepeatedPtrField<pb::Message>* list = listOf(snapshot, e);
    const pb::FieldDescriptor* idf = e.id;
    auto less = [idf](const pb::Message* a, const pb::Message* b) {
      return idOf(*a, idf) < idOf(*b, idf);
    };
    if (!std::is_sorted(list->pointer_begin(), list->pointer_end(), less)) {
      std::stable_sort(list->pointer_begin(), list->pointer_end(), less);
    }
  }
}

absl::Status applyDelta(Snapshot* snapshot, const sync::v1::SnapshotDelta& delta) {
  // Upserts: every entity list of delta.upserts().
  const Snapshot& up = delta.upserts();
  for (const auto& e : entityFields()) {
    const int n = up.GetReflection()->FieldSize(up, e.list);
    if (n == 0) {
      continue;
    }
    pb::RepeatedPtrField<pb::Message>* list = listOf(snapshot, e);
    for (int i = 0; i < n; ++i) {
      const pb::Message& entity = up.GetReflection()->GetRepeatedMessage(up, e.list, i);
      const std::string& id = idOf(entity, e.id);
      if (id.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("delta upserts a ", e.list->name(), " entity without id"));
      }
      const int pos = lowerBound(*list, e.id, id);
      if (pos < list->size() && idOf(list->Get(pos), e.id) == id) {
        list->Mutable(pos)->CopyFrom(entity);
        continue;
      }
      // RepeatedPtrField<Message>::Add() has no prototype to create from; reflection does.
      pb::Message* added = snapshot->GetReflection()->AddMessage(snapshot, e.list);
      added->CopyFrom(entity);
      // Move the new last element to its sorted place (pointer moves only).
      std::rotate(list->pointer_begin() + pos, list->pointer_end() - 1, list->pointer_end());
    }
  }

  // Deletions, then cascades until nothing else references a deleted id.
  std::set<std::string> deleted;
  for (const auto& ref : delta.deletes()) {
    const EntityField* e = findEntityField(ref.entity_type());
    if (e == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("delta deletes unknown entity type '", ref.entity_type(), "'"));
    }
    pb::RepeatedPtrField<pb::Message>* list = listOf(snapshot, *e);
    const int pos = lowerBound(*list, e->id, ref.entity_id());
    if (pos < list->size() && idOf(list->Get(pos), e->id) == ref.entity_id()) {
      list->DeleteSubrange(pos, 1);
    }
    deleted.insert(ref.entity_id());
  }
  bool removed = !deleted.empty();
  while (removed) {
    removed = false;
    for (const auto& e : entityFields()) {
      if (e.foreign_keys.empty()) {
        continue;
      }
      pb::RepeatedPtrField<pb::Message>* list = listOf(snapshot, e);
      int out = 0;
      for (int i = 0; i < list->size(); ++i) {
        const pb::Message& m = list->Get(i);
        const pb::Reflection* r = m.GetReflection();
        bool dangling = false;
        for (const pb::FieldDescriptor* fk : e.foreign_keys) {
          if (r->HasField(m, fk)) {
            const auto& key = static_cast<const config::v1::ForeignKey&>(r->GetMessage(m, fk));
            if (deleted.count(key.id()) > 0) {
              dangling = true;
              break;
            }
          }
        }
        if (dangling) {
          deleted.insert(idOf(m, e.id));
          removed = true;
          continue;
        }
        if (out != i) {
          list->SwapElements(out, i);
        }
        ++out;
      }
      if (out < list->size()) {
        list->DeleteSubrange(out, list->size() - out);
      }
    }
  }
  snapshot->set_generation(delta.generation());
  return absl::OkStatus();
}

absl::Status applyDelta(Snapshot* rest, std::shared_ptr<const config::KeyAuthTable>* key_auth,
                        const sync::v1::SnapshotDelta& delta) {
  if (!rest->keyauth_credentials().empty()) {
    return absl::InvalidArgumentError("split snapshot holds key-auth credentials");
  }
  // The rest takes the delta as usual: upserted credentials land in its (empty) list, where
  // the cascades drop those of consumers the same delta deletes. They then move to the table.
  RETURN_IF_ERROR(applyDelta(rest, delta));
  config::KeyAuthTable::Changes changes;
  for (const config::v1::KeyAuthCredential& k : rest->keyauth_credentials()) {
    changes.upserts.push_back(&k);
  }
  for (const auto& ref : delta.deletes()) {
    if (ref.entity_type() == "keyauth_credentials") {
      changes.deleted_ids.push_back(ref.entity_id());
    } else if (ref.entity_type() == "consumers") {
      changes.deleted_consumers.push_back(ref.entity_id());
    }
  }
  if (!changes.upserts.empty() || !changes.deleted_ids.empty() ||
      !changes.deleted_consumers.empty()) {
    *key_auth = (*key_auth == nullptr ? config::KeyAuthTable::empty() : *key_auth)
                    ->apply(changes);
  }
  rest->clear_keyauth_credentials();
  return absl::OkStatus();
}

absl::StatusOr<std::string> hashSnapshot(const Snapshot& snapshot) {
  auto bytes = serializeDeterministic(snapshot);
  if (!bytes.ok()) {
    return bytes.status();
  }
  return sha256Hex(*bytes);
}

}  // namespace portico::sync
