// key-auth credentials held compactly: what a data plane keeps instead of the
// `keyauth_credentials` list of config::v1::Snapshot.
//
// Why: key-auth keys come by the million (one or more per API client). As protobuf messages a
// credential costs ~440 bytes (a message, a ForeignKey message and three heap strings, each
// with malloc overhead); here it is a 48-byte row plus its key, and the key lookup the
// key-auth plugin needs is part of the table (4 bytes and a control byte per slot), so
// 1,000,000 credentials take ~95 MB instead of ~530 MB.
//
// The table is exact: appendWire() writes the same bytes the credentials have in the
// deterministic serialization of a Snapshot (so a DP that holds its config split in two still
// computes the config_hash of a delta result, see common/sync/delta.h). Rows that the compact
// form cannot reproduce byte for byte (tags, fields this build does not know) keep their
// serialized message beside the row.
//
// Immutable once built (Builder::finish()); shared by the sync client (delta base) and the
// served snapshot. A new generation that changes credentials builds a new table (applyDelta).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "common/config/validate.h"
#include "portico/config/v1/config.pb.h"

namespace portico::config {

// A UUID as its 16 bytes. Byte order equals the order of the lower-case text (PostgreSQL's
// uuid order, the snapshot's canonical entity order).
using Uuid = std::array<uint8_t, 16>;
// Parses 8-4-4-4-12 hex, either case. False for anything else.
bool parseUuid(std::string_view text, Uuid* out);
// Lower-case 8-4-4-4-12 text into out[0..35].
void formatUuid(const Uuid& id, char out[36]);
std::string formatUuid(const Uuid& id);

class KeyAuthTable {
 public:
  static constexpr int32_t kNoTtl = INT32_MIN;  // Row::ttl when the credential has none

  struct Row {
    Uuid id;
    Uuid consumer;
    int64_t created_at = 0;
    int32_t ttl = kNoTtl;
    uint32_t key = 0;  // offset in keys_: a varint length, then the key's bytes
  };

  // Collects credentials in any order; finish() sorts them by id and indexes the keys.
  // A credential the table cannot hold (an id or consumer id that is not a UUID) and
  // duplicate ids or keys become errors() of the finished table, with the messages
  // validateSnapshot() gives for the same entity; validation refuses such a table.
  class Builder {
   public:
    explicit Builder(size_t expected = 0);
    void add(const v1::KeyAuthCredential& credential);
    // `serialized` is the credential's message as it appears in a Snapshot payload; it is
    // kept verbatim if the compact row would not reproduce it. False if it does not parse.
    bool addSerialized(std::string_view serialized, v1::KeyAuthCredential* scratch);
    std::shared_ptr<const KeyAuthTable> finish() &&;

   private:
    friend class KeyAuthTable;
    void addRow(const v1::KeyAuthCredential& k, std::string_view canonical);
    void addCopy(const KeyAuthTable& from, size_t row);

    std::unique_ptr<KeyAuthTable> table_;
    bool sorted_ = true;
    absl::flat_hash_map<Uuid, std::string, absl::Hash<Uuid>> irregular_;  // by row id
    std::string canonical_, rebuilt_;  // reused per row
  };

  // What a delta does to the credentials: the upserted ones (replacing rows with their id),
  // ids deleted, and consumers deleted (their credentials go too, as PostgreSQL cascades).
  struct Changes {
    std::vector<const v1::KeyAuthCredential*> upserts;
    std::vector<std::string_view> deleted_ids;
    std::vector<std::string_view> deleted_consumers;
  };

  static std::shared_ptr<const KeyAuthTable> empty();
  // Moves `snapshot`'s keyauth_credentials into a table (the list is left empty).
  static std::shared_ptr<const KeyAuthTable> extract(v1::Snapshot* snapshot);

  KeyAuthTable(const KeyAuthTable&) = delete;
  KeyAuthTable& operator=(const KeyAuthTable&) = delete;

  size_t size() const { return rows_.size(); }
  const Row& row(size_t i) const { return rows_[i]; }
  std::string_view key(const Row& row) const;
  // The row whose key is `key`, or nullptr. One hash lookup.
  const Row* find(std::string_view key) const;
  // Problems found while building (see Builder); empty for a table built from a valid config.
  const FieldErrors& errors() const { return errors_; }
  // The tags of row `i` (rare: only rows kept serialized have any).
  std::vector<std::string> tags(size_t i) const;

  // The credential as its proto message.
  void toProto(size_t i, v1::KeyAuthCredential* out) const;
  // Appends every credential to `snapshot->keyauth_credentials` (tests and tools).
  void appendTo(v1::Snapshot* snapshot) const;
  // Appends the Snapshot wire encoding of field 12 for every row, in id order: exactly the
  // bytes the deterministic serialization of a Snapshot holding these credentials has there.
  void appendWire(std::string* out) const;
  // A new table with `changes` applied; this one is unchanged.
  std::shared_ptr<const KeyAuthTable> apply(const Changes& changes) const;
  // Bytes held (rows, keys, index, serialized rows); for logs and benchmarks.
  size_t memoryBytes() const;

 private:
  KeyAuthTable() : index_(0, KeyHash{this}, KeyEq{this}) {}

  // The key index holds row numbers; hashing and comparing go through the table's keys, and
  // a lookup by string_view hashes the same way (heterogeneous lookup).
  struct KeyHash {
    using is_transparent = void;
    const KeyAuthTable* table;
    size_t operator()(uint32_t row) const;
    size_t operator()(std::string_view key) const;
  };
  struct KeyEq {
    using is_transparent = void;
    const KeyAuthTable* table;
    bool operator()(uint32_t a, uint32_t b) const;
    bool operator()(uint32_t a, std::string_view b) const;
    bool operator()(std::string_view a, uint32_t b) const;
  };

  // The row's message bytes (serialized form kept, or rebuilt from the row).
  void appendMessage(size_t i, std::string* out) const;
  void appendRebuilt(const Row& row, std::string* out) const;

  std::vector<Row> rows_;  // by id
  std::string keys_;
  absl::flat_hash_set<uint32_t, KeyHash, KeyEq> index_;
  absl::flat_hash_map<uint32_t, std::string> serialized_;  // row -> message, when irregular
  FieldErrors errors_;
};

}  // namespace portico::config
