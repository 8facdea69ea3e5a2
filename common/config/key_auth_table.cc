#include "common/config/key_auth_table.h"

#include <algorithm>
#include <utility>

namespace portico::config {
namespace {

constexpr std::string_view kEntity = "keyauth_credentials";
constexpr char kHex[] = "0123456789abcdef";
// Snapshot.keyauth_credentials is field 12, length-delimited: (12 << 3) | 2.
constexpr char kSnapshotField12 = 0x62;

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void appendVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

// A varint at `p` (bounded by `end`); false when truncated or longer than 10 bytes.
bool readVarint(const char*& p, const char* end, uint64_t* v) {
  *v = 0;
  for (int shift = 0; shift < 70 && p < end; shift += 7) {
    const auto byte = static_cast<uint8_t>(*p++);
    *v |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      return true;
    }
  }
  return false;
}

void appendUuidField(char tag, const Uuid& id, std::string* out) {
  char text[36];
  formatUuid(id, text);
  out->push_back(tag);
  out->push_back(36);
  out->append(text, sizeof(text));
}

}  // namespace

bool parseUuid(std::string_view text, Uuid* out) {
  if (text.size() != 36) {
    return false;
  }
  size_t byte = 0;
  for (size_t i = 0; i < 36;) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (text[i] != '-') {
        return false;
      }
      ++i;
      continue;
    }
    const int hi = hexValue(text[i]);
    const int lo = hexValue(text[i + 1]);
    if (hi < 0 || lo < 0) {
      return false;
    }
    (*out)[byte++] = static_cast<uint8_t>(hi << 4 | lo);
    i += 2;
  }
  return true;
}

void formatUuid(const Uuid& id, char out[36]) {
  size_t o = 0;
  for (size_t b = 0; b < id.size(); ++b) {
    if (b == 4 || b == 6 || b == 8 || b == 10) {
      out[o++] = '-';
    }
    out[o++] = kHex[id[b] >> 4];
    out[o++] = kHex[id[b] & 0xf];
  }
}

std::string formatUuid(const Uuid& id) {
  std::string out(36, '\0');
  formatUuid(id, out.data());
  return out;
}

// ---- Builder -------------------------------------------------------------------------------

KeyAuthTable::Builder::Builder(size_t expected) : table_(new KeyAuthTable()) {
  table_->rows_.reserve(expected);
  table_->keys_.reserve(expected * 36);
}

void KeyAuthTable::Builder::add(const v1::KeyAuthCredential& credential) {
  canonical_.clear();
  credential.SerializeToString(&canonical_);  // no map fields: deterministic
  addRow(credential, canonical_);
}

bool KeyAuthTable::Builder::addSerialized(std::string_view serialized,
                                          v1::KeyAuthCredential* scratch) {
  scratch->Clear();
  if (!scratch->ParseFromArray(serialized.data(), static_cast<int>(serialized.size()))) {
    return false;
  }
  addRow(*scratch, serialized);
  return true;
}

void KeyAuthTable::Builder::addRow(const v1::KeyAuthCredential& k, std::string_view canonical) {
  KeyAuthTable& t = *table_;
  Row row;
  if (!parseUuid(k.id(), &row.id)) {
    t.errors_.push_back({std::string(kEntity), k.id(), "id",
                         k.id().empty() ? "required field missing" : "expected a valid UUID"});
    return;
  }
  if (!k.has_consumer() || k.consumer().id().empty()) {
    t.errors_.push_back({std::string(kEntity), k.id(), "consumer", "required field missing"});
    return;
  }
  if (!parseUuid(k.consumer().id(), &row.consumer)) {
    t.errors_.push_back({std::string(kEntity), k.id(), "consumer.id", "expected a valid UUID"});
    return;
  }
  row.created_at = k.created_at();
  row.ttl = k.has_ttl() ? k.ttl() : kNoTtl;
  row.key = static_cast<uint32_t>(t.keys_.size());
  appendVarint(k.key().size(), &t.keys_);
  t.keys_.append(k.key());
  if (!t.rows_.empty() && !(t.rows_.back().id < row.id)) {
    sorted_ = false;
  }
  t.rows_.push_back(row);
  // Tags, upper-case ids, a ttl equal to kNoTtl or fields this build does not know: the
  // row alone would not give back these bytes, so they are kept.
  rebuilt_.clear();
  t.appendRebuilt(row, &rebuilt_);
  if (rebuilt_ != canonical) {
    irregular_[row.id] = std::string(canonical);
  }
}

void KeyAuthTable::Builder::addCopy(const KeyAuthTable& from, size_t i) {
  KeyAuthTable& t = *table_;
  Row row = from.rows_[i];
  const std::string_view key = from.key(row);
  row.key = static_cast<uint32_t>(t.keys_.size());
  appendVarint(key.size(), &t.keys_);
  t.keys_.append(key);
  if (!t.rows_.empty() && !(t.rows_.back().id < row.id)) {
    sorted_ = false;
  }
  t.rows_.push_back(row);
  if (auto it = from.serialized_.find(static_cast<uint32_t>(i)); it != from.serialized_.end()) {
    irregular_[row.id] = it->second;
  }
}

std::shared_ptr<const KeyAuthTable> KeyAuthTable::Builder::finish() && {
  KeyAuthTable& t = *table_;
  if (!sorted_) {
    std::stable_sort(t.rows_.begin(), t.rows_.end(),
                     [](const Row& a, const Row& b) { return a.id < b.id; });
    // Equal ids are adjacent now: the first one stays, as validateSnapshot keeps the first.
    auto out = t.rows_.begin();
    for (auto it = t.rows_.begin(); it != t.rows_.end(); ++it) {
      if (out != t.rows_.begin() && (out - 1)->id == it->id) {
        const std::string id = formatUuid(it->id);
        t.errors_.push_back({std::string(kEntity), id, "id", "duplicate id: " + id});
        continue;
      }
      *out++ = *it;
    }
    t.rows_.erase(out, t.rows_.end());
  }
  t.rows_.shrink_to_fit();
  t.keys_.shrink_to_fit();
  for (uint32_t i = 0; i < t.rows_.size(); ++i) {
    if (auto it = irregular_.find(t.rows_[i].id); it != irregular_.end()) {
      t.serialized_.emplace(i, std::move(it->second));
    }
  }
  irregular_.clear();
  // Keys validation refuses (empty or over the cap) are not indexed: they authenticate
  // nothing, and validateSnapshot() reports them.
  t.index_.reserve(t.rows_.size());
  for (uint32_t i = 0; i < t.rows_.size(); ++i) {
    const std::string_view key = t.key(t.rows_[i]);
    if (key.empty() || key.size() > kMaxSecretLength) {
      continue;
    }
    if (!t.index_.insert(i).second) {
      t.errors_.push_back({std::string(kEntity), formatUuid(t.rows_[i].id), "key",
                           "duplicate value: {key=\"" + std::string(key) + "\"}"});
    }
  }
  return std::shared_ptr<const KeyAuthTable>(std::move(table_));
}

// ---- KeyAuthTable --------------------------------------------------------------------------

std::shared_ptr<const KeyAuthTable> KeyAuthTable::empty() {
  static const auto* const kEmpty =
      new std::shared_ptr<const KeyAuthTable>(Builder().finish());
  return *kEmpty;
}

std::shared_ptr<const KeyAuthTable> KeyAuthTable::extract(v1::Snapshot* snapshot) {
  if (snapshot->keyauth_credentials().empty()) {
    return empty();
  }
  Builder builder(static_cast<size_t>(snapshot->keyauth_credentials_size()));
  for (const v1::KeyAuthCredential& k : snapshot->keyauth_credentials()) {
    builder.add(k);
  }
  snapshot->clear_keyauth_credentials();
  return std::move(builder).finish();
}

std::string_view KeyAuthTable::key(const Row& row) const {
  const char* p = keys_.data() + row.key;
  uint64_t n = 0;
  readVarint(p, keys_.data() + keys_.size(), &n);  // written by us: never truncated
  return std::string_view(p, n);
}

const KeyAuthTable::Row* KeyAuthTable::find(std::string_view key) const {
  auto it = index_.find(key);
  return it == index_.end() ? nullptr : &rows_[*it];
}

size_t KeyAuthTable::KeyHash::operator()(uint32_t row) const {
  return absl::Hash<std::string_view>()(table->key(table->rows_[row]));
}
size_t KeyAuthTable::KeyHash::operator()(std::string_view key) const {
  return absl::Hash<std::string_view>()(key);
}
bool KeyAuthTable::KeyEq::operator()(uint32_t a, uint32_t b) const {
  return table->key(table->rows_[a]) == table->key(table->rows_[b]);
}
bool KeyAuthTable::KeyEq::operator()(uint32_t a, std::string_view b) const {
  return table->key(table->rows_[a]) == b;
}
bool KeyAuthTable::KeyEq::operator()(std::string_view a, uint32_t b) const {
  return a == table->key(table->rows_[b]);
}

std::vector<std::string> KeyAuthTable::tags(size_t i) const {
  auto it = serialized_.find(static_cast<uint32_t>(i));
  if (it == serialized_.end()) {
    return {};
  }
  v1::KeyAuthCredential k;
  k.ParseFromString(it->second);
  return {k.tags().begin(), k.tags().end()};
}

void KeyAuthTable::toProto(size_t i, v1::KeyAuthCredential* out) const {
  out->Clear();
  if (auto it = serialized_.find(static_cast<uint32_t>(i)); it != serialized_.end()) {
    out->ParseFromString(it->second);
    return;
  }
  const Row& row = rows_[i];
  out->set_id(formatUuid(row.id));
  out->mutable_consumer()->set_id(formatUuid(row.consumer));
  out->set_key(std::string(key(row)));
  if (row.ttl != kNoTtl) {
    out->set_ttl(row.ttl);
  }
  out->set_created_at(row.created_at);
}

void KeyAuthTable::appendTo(v1::Snapshot* snapshot) const {
  snapshot->mutable_keyauth_credentials()->Reserve(
      snapshot->keyauth_credentials_size() + static_cast<int>(rows_.size()));
  for (size_t i = 0; i < rows_.size(); ++i) {
    toProto(i, snapshot->add_keyauth_credentials());
  }
}

// The bytes protobuf writes for a KeyAuthCredential without tags or unknown fields: id (1),
// consumer (2, a ForeignKey with its id), key (3) when not empty, ttl (4) when present,
// created_at (6) when not zero. Builder::addRow() compares this with protobuf's own bytes.
void KeyAuthTable::appendRebuilt(const Row& row, std::string* out) const {
  appendUuidField(0x0a, row.id, out);
  out->push_back(0x12);
  out->push_back(38);
  appendUuidField(0x0a, row.consumer, out);
  const std::string_view k = key(row);
  if (!k.empty()) {
    out->push_back(0x1a);
    appendVarint(k.size(), out);
    out->append(k);
  }
  if (row.ttl != kNoTtl) {
    out->push_back(0x20);
    appendVarint(static_cast<uint64_t>(static_cast<int64_t>(row.ttl)), out);
  }
  if (row.created_at != 0) {
    out->push_back(0x30);
    appendVarint(static_cast<uint64_t>(row.created_at), out);
  }
}

void KeyAuthTable::appendMessage(size_t i, std::string* out) const {
  if (auto it = serialized_.find(static_cast<uint32_t>(i)); it != serialized_.end()) {
    out->append(it->second);
    return;
  }
  appendRebuilt(rows_[i], out);
}

void KeyAuthTable::appendWire(std::string* out) const {
  std::string message;
  for (size_t i = 0; i < rows_.size(); ++i) {
    message.clear();
    appendMessage(i, &message);
    out->push_back(kSnapshotField12);
    appendVarint(message.size(), out);
    out->append(message);
  }
}

std::shared_ptr<const KeyAuthTable> KeyAuthTable::apply(const Changes& changes) const {
  absl::flat_hash_set<Uuid, absl::Hash<Uuid>> gone;  // deleted or replaced ids
  absl::flat_hash_set<Uuid, absl::Hash<Uuid>> gone_consumers;
  Uuid id;
  for (std::string_view d : changes.deleted_ids) {
    if (parseUuid(d, &id)) gone.insert(id);
  }
  for (std::string_view d : changes.deleted_consumers) {
    if (parseUuid(d, &id)) gone_consumers.insert(id);
  }
  // Upserts in id order, merged into the (sorted) rows so finish() need not sort.
  std::vector<std::pair<Uuid, const v1::KeyAuthCredential*>> upserts;
  std::vector<const v1::KeyAuthCredential*> unparsable;
  for (const v1::KeyAuthCredential* k : changes.upserts) {
    Uuid consumer;
    if (!parseUuid(k->id(), &id)) {
      unparsable.push_back(k);  // the builder reports it
      continue;
    }
    if (parseUuid(k->consumer().id(), &consumer) && gone_consumers.contains(consumer)) {
      continue;
    }
    gone.insert(id);
    upserts.emplace_back(id, k);
  }
  std::stable_sort(upserts.begin(), upserts.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  Builder builder(rows_.size() + upserts.size());
  size_t u = 0;
  for (size_t i = 0; i < rows_.size(); ++i) {
    const Row& row = rows_[i];
    for (; u < upserts.size() && upserts[u].first < row.id; ++u) {
      builder.add(*upserts[u].second);
    }
    if (gone.contains(row.id) || gone_consumers.contains(row.consumer)) {
      continue;
    }
    builder.addCopy(*this, i);
  }
  for (; u < upserts.size(); ++u) {
    builder.add(*upserts[u].second);
  }
  for (const v1::KeyAuthCredential* k : unparsable) {
    builder.add(*k);
  }
  return std::move(builder).finish();
}

size_t KeyAuthTable::memoryBytes() const {
  size_t n = rows_.capacity() * sizeof(Row) + keys_.capacity() +
             index_.capacity() * (sizeof(uint32_t) + 1);
  for (const auto& [row, bytes] : serialized_) {
    n += sizeof(row) + sizeof(bytes) + bytes.capacity();
  }
  return n;
}

}  // namespace portico::config
