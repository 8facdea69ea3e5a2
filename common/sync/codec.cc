#include "common/sync/codec.h"

#include <openssl/evp.h>
#include <zstd.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace portico::sync {
namespace {

using sync::v1::ConfigChunk;
using sync::v1::Encoding;

constexpr uint64_t kMaxChunkCount = uint64_t{1} << 20;

bool sameHeader(const ConfigChunk& a, const ConfigChunk& b) {
  return a.generation() == b.generation() && a.config_hash() == b.config_hash() &&
         a.kind() == b.kind() && a.encoding() == b.encoding() &&
         a.chunk_count() == b.chunk_count() && a.total_size() == b.total_size() &&
         a.base_generation() == b.base_generation() && a.base_hash() == b.base_hash() &&
         a.payload_hash() == b.payload_hash();
}

// The largest encoded payload that can decompress to at most `max_payload` bytes.
uint64_t maxEncodedBytes(Encoding encoding, uint64_t max_payload) {
  if (encoding == sync::v1::ENCODING_ZSTD) {
    return ZSTD_compressBound(static_cast<size_t>(max_payload));
  }
  return max_payload;
}

// Compresses and chunks `serialized` into `encoded` (whose header fields are already set).
absl::Status packPayload(std::string serialized, const EncodeOptions& options,
                         EncodedSnapshot* encoded) {
  if (options.chunk_data_bytes == 0) {
    return absl::InvalidArgumentError("chunk_data_bytes must be at least 1");
  }
  encoded->payload_size = serialized.size();
  std::string payload;
  if (options.compress) {
    payload.resize(ZSTD_compressBound(serialized.size()));
    const size_t n = ZSTD_compress(payload.data(), payload.size(), serialized.data(),
                                   serialized.size(), options.zstd_level);
    if (ZSTD_isError(n)) {
      return absl::InternalError(absl::StrCat("zstd: ", ZSTD_getErrorName(n)));
    }
    payload.resize(n);
    encoded->encoding = sync::v1::ENCODING_ZSTD;
  } else {
    payload = std::move(serialized);
    encoded->encoding = sync::v1::ENCODING_UNSPECIFIED;
  }
  encoded->encoded_size = payload.size();

  const uint64_t step = options.chunk_data_bytes;
  const uint64_t count = payload.empty() ? 1 : (payload.size() + step - 1) / step;
  if (count > kMaxChunkCount) {
    return absl::InvalidArgumentError("snapshot needs too many chunks");
  }
  encoded->messages.resize(count);
  for (uint64_t i = 0; i < count; ++i) {
    ConfigChunk* c = encoded->messages[i].mutable_chunk();
    c->set_generation(encoded->generation);
    c->set_config_hash(encoded->config_hash);
    c->set_kind(encoded->kind);
    c->set_encoding(encoded->encoding);
    c->set_chunk_index(static_cast<uint32_t>(i));
    c->set_chunk_count(static_cast<uint32_t>(count));
    c->set_total_size(encoded->encoded_size);
    if (encoded->kind == sync::v1::PAYLOAD_KIND_DELTA) {
      c->set_base_generation(encoded->base_generation);
      c->set_base_hash(encoded->base_hash);
      c->set_payload_hash(encoded->payload_hash);
    }
    const uint64_t begin = i * step;
    if (begin < payload.size()) {
      c->set_data(payload.substr(begin, step));
    }
    encoded->serialized.push_back(
        std::make_shared<const std::string>(encoded->messages[i].SerializeAsString()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> compressPayload(std::string_view raw, int zstd_level) {
  std::string out;
  out.resize(ZSTD_compressBound(raw.size()));
  const size_t n = ZSTD_compress(out.data(), out.size(), raw.data(), raw.size(), zstd_level);
  if (ZSTD_isError(n)) {
    return absl::InternalError(absl::StrCat("zstd: ", ZSTD_getErrorName(n)));
  }
  out.resize(n);
  return out;
}

absl::StatusOr<std::string> serializeDeterministic(const google::protobuf::Message& message) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    // Map order would otherwise depend on hash-table iteration; the hash must not.
    coded.SetSerializationDeterministic(true);
    if (!message.SerializeToCodedStream(&coded) || coded.HadError()) {
      return absl::InternalError("cannot serialize snapshot");
    }
  }
  return out;
}

std::string sha256Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr) != 1) {
    return std::string();  // only on OpenSSL misconfiguration; never matches a real hash
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 0xf]);
  }
  return out;
}

std::string EncodedSnapshot::encodedPayload() const {
  std::string out;
  out.reserve(encoded_size);
  for (const auto& m : messages) {
    out.append(m.chunk().data());
  }
  return out;
}

absl::StatusOr<EncodedSnapshotConstSharedPtr> encodeSnapshot(const config::v1::Snapshot& snapshot,
                                                              const EncodeOptions& options) {
  auto serialized = serializeDeterministic(snapshot);
  if (!serialized.ok()) {
    return serialized.status();
  }
  auto encoded = std::make_shared<EncodedSnapshot>();
  encoded->generation = snapshot.generation();
  encoded->group = snapshot.group();
  encoded->config_hash = sha256Hex(*serialized);
  encoded->kind = sync::v1::PAYLOAD_KIND_SNAPSHOT;
  if (absl::Status st = packPayload(std::move(*serialized), options, encoded.get()); !st.ok()) {
    return st;
  }
  return EncodedSnapshotConstSharedPtr(std::move(encoded));
}

absl::StatusOr<EncodedSnapshotConstSharedPtr> encodeDelta(const sync::v1::SnapshotDelta& delta,
                                                           const std::string& base_hash,
                                                           const std::string& target_hash,
                                                           const EncodeOptions& options) {
  auto serialized = serializeDeterministic(delta);
  if (!serialized.ok()) {
    return serialized.status();
  }
  auto encoded = std::make_shared<EncodedSnapshot>();
  encoded->generation = delta.generation();
  encoded->group = delta.group();
  encoded->config_hash = target_hash;
  encoded->kind = sync::v1::PAYLOAD_KIND_DELTA;
  encoded->base_generation = delta.base_generation();
  encoded->base_hash = base_hash;
  encoded->payload_hash = sha256Hex(*serialized);
  if (absl::Status st = packPayload(std::move(*serialized), options, encoded.get()); !st.ok()) {
    return st;
  }
  return EncodedSnapshotConstSharedPtr(std::move(encoded));
}

absl::StatusOr<config::v1::Snapshot> decodePayload(Encoding encoding, std::string_view payload,
                                                   std::string_view expected_hash,
                                                   uint64_t max_payload_bytes) {
  auto raw = decompressPayload(encoding, payload, expected_hash, max_payload_bytes);
  if (!raw.ok()) {
    return raw.status();
  }
  config::v1::Snapshot snapshot;
  if (!snapshot.ParseFromArray(raw->data(), static_cast<int>(raw->size()))) {
    return absl::InvalidArgumentError("payload is not a valid portico.config.v1.Snapshot");
  }
  return snapshot;
}

absl::Status decodePayloadSplit(Encoding encoding, std::string_view payload,
                                std::string_view expected_hash, uint64_t max_payload_bytes,
                                config::v1::Snapshot* rest,
                                std::shared_ptr<const config::KeyAuthTable>* key_auth) {
  auto raw = decompressPayload(encoding, payload, expected_hash, max_payload_bytes);
  if (!raw.ok()) {
    return raw.status();
  }
  return parseSnapshotSplit(*raw, rest, key_auth);
}

absl::Status parseSnapshotSplit(std::string_view raw, config::v1::Snapshot* rest,
                                std::shared_ptr<const config::KeyAuthTable>* key_auth) {
  const auto invalid = [] {
    return absl::InvalidArgumentError("payload is not a valid portico.config.v1.Snapshot");
  };
  // One walk over the top-level fields: field 12 (keyauth_credentials) goes to the table one
  // message at a time; every other field's bytes are parsed as the rest. Parsing the
  // concatenation of those bytes is what parsing them in place would give (protobuf merges
  // repeated and singular fields the same way across a split).
  std::string other;
  config::KeyAuthTable::Builder builder;
  config::v1::KeyAuthCredential scratch;
  const char* p = raw.data();
  const char* const end = p + raw.size();
  const char* run = p;  // start of the current run of non-credential bytes
  while (p < end) {
    const char* field_start = p;
    uint64_t tag = 0;
    google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(p),
                                              static_cast<int>(end - p));
    if (!in.ReadVarint64(&tag) || (tag >> 3) == 0) {
      return invalid();
    }
    uint64_t skip = 0;
    std::string_view body;
    switch (tag & 7) {
      case 0: {
        uint64_t v;
        if (!in.ReadVarint64(&v)) return invalid();
        break;
      }
      case 1: skip = 8; break;
      case 5: skip = 4; break;
      case 2: {
        uint32_t n = 0;
        if (!in.ReadVarint32(&n)) return invalid();
        skip = n;
        break;
      }
      default:
        return invalid();  // groups (3, 4) are not in our protos; 6, 7 do not exist
    }
    p += in.CurrentPosition();
    if (static_cast<uint64_t>(end - p) < skip) {
      return invalid();
    }
    body = std::string_view(p, static_cast<size_t>(skip));
    p += skip;
    if ((tag >> 3) == 12) {
      if ((tag & 7) != 2) {
        return invalid();
      }
      other.append(run, static_cast<size_t>(field_start - run));
      run = p;
      if (!builder.addSerialized(body, &scratch)) {
        return invalid();
      }
    }
  }
  other.append(run, static_cast<size_t>(end - run));
  if (!rest->ParseFromString(other)) {
    return invalid();
  }
  *key_auth = std::move(builder).finish();
  return absl::OkStatus();
}

absl::StatusOr<std::string> serializeDeterministic(const config::v1::Snapshot& rest,
                                                   const config::KeyAuthTable& key_auth) {
  auto bytes = serializeDeterministic(rest);
  if (!bytes.ok() || key_auth.size() == 0) {
    return bytes;
  }
  if (!rest.keyauth_credentials().empty()) {
    return absl::InternalError("snapshot holds key-auth credentials besides its table");
  }
  // Fields are written in number order (unknown ones last): the credentials go before the
  // first field numbered above 12.
  const char* p = bytes->data();
  const char* const end = p + bytes->size();
  while (p < end) {
    google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(p),
                                              static_cast<int>(end - p));
    uint64_t tag = 0;
    in.ReadVarint64(&tag);
    if ((tag >> 3) > 12) {
      break;
    }
    uint64_t v = 0;
    uint32_t n = 0;
    switch (tag & 7) {
      case 0: in.ReadVarint64(&v); break;
      case 1: in.Skip(8); break;
      case 5: in.Skip(4); break;
      case 2: in.ReadVarint32(&n); in.Skip(static_cast<int>(n)); break;
      default: return absl::InternalError("cannot splice credentials into the snapshot");
    }
    p += in.CurrentPosition();
  }
  std::string out;
  out.reserve(bytes->size() + key_auth.size() * 128);
  out.append(bytes->data(), static_cast<size_t>(p - bytes->data()));
  key_auth.appendWire(&out);
  out.append(p, static_cast<size_t>(end - p));
  return out;
}

absl::StatusOr<std::string> decompressPayload(Encoding encoding, std::string_view payload,
                                              std::string_view expected_hash,
                                              uint64_t max_payload_bytes) {
  std::string decompressed;
  std::string_view raw;
  switch (encoding) {
    case sync::v1::ENCODING_UNSPECIFIED:
      if (payload.size() > max_payload_bytes) {
        return absl::ResourceExhaustedError(absl::StrFormat(
            "snapshot of %d bytes exceeds the limit of %d", payload.size(), max_payload_bytes));
      }
      raw = payload;
      break;
    case sync::v1::ENCODING_ZSTD: {
      // Our encoder writes one frame that records its content size; a frame without it is
      // refused rather than streamed, so the limit is checked before memory is committed. A
      // payload of several frames fails below (destination too small).
      const unsigned long long size = ZSTD_getFrameContentSize(payload.data(), payload.size());
      if (size == ZSTD_CONTENTSIZE_ERROR) {
        return absl::InvalidArgumentError("payload is not a valid zstd frame");
      }
      if (size == ZSTD_CONTENTSIZE_UNKNOWN) {
        return absl::InvalidArgumentError("zstd frame does not declare its content size");
      }
      if (size > max_payload_bytes) {
        return absl::ResourceExhaustedError(absl::StrFormat(
            "snapshot of %d bytes exceeds the limit of %d", size, max_payload_bytes));
      }
      decompressed.resize(static_cast<size_t>(size));
      const size_t n =
          ZSTD_decompress(decompressed.data(), decompressed.size(), payload.data(), payload.size());
      if (ZSTD_isError(n)) {
        return absl::InvalidArgumentError(absl::StrCat("zstd: ", ZSTD_getErrorName(n)));
      }
      if (n != decompressed.size()) {
        return absl::InvalidArgumentError("zstd payload shorter than its declared size");
      }
      raw = decompressed;
      break;
    }
    default:
      return absl::UnimplementedError(
          absl::StrFormat("unknown payload encoding %d", static_cast<int>(encoding)));
  }
  const std::string actual = sha256Hex(raw);
  if (actual != expected_hash) {
    return absl::DataLossError(
        absl::StrCat("config hash mismatch: expected ", std::string(expected_hash), ", got ", actual));
  }
  if (decompressed.empty()) {
    return std::string(raw);
  }
  return decompressed;
}

Reassembler::Reassembler(ReassemblerOptions options) : options_(options) {}

void Reassembler::reset() {
  in_progress_ = false;
  next_index_ = 0;
  buffer_.clear();
  buffer_.shrink_to_fit();
  header_.Clear();
}

absl::Status Reassembler::fail(const ConfigChunk& chunk, absl::Status status) {
  reset();
  // Swallow the rest of this push unless `chunk` was its last.
  discarding_ = chunk.chunk_index() + uint64_t{1} < chunk.chunk_count();
  discard_generation_ = chunk.generation();
  discard_hash_ = chunk.config_hash();
  discard_count_ = chunk.chunk_count();
  return status;
}

absl::Status Reassembler::startPush(const ConfigChunk& chunk) {
  if (chunk.kind() != sync::v1::PAYLOAD_KIND_SNAPSHOT &&
      chunk.kind() != sync::v1::PAYLOAD_KIND_DELTA) {
    return absl::UnimplementedError(
        absl::StrFormat("unsupported payload kind %d", static_cast<int>(chunk.kind())));
  }
  if (chunk.encoding() != sync::v1::ENCODING_UNSPECIFIED &&
      chunk.encoding() != sync::v1::ENCODING_ZSTD) {
    return absl::UnimplementedError(
        absl::StrFormat("unknown payload encoding %d", static_cast<int>(chunk.encoding())));
  }
  if (chunk.chunk_count() == 0 || chunk.chunk_count() > kMaxChunkCount) {
    return absl::InvalidArgumentError(
        absl::StrFormat("invalid chunk_count %d", chunk.chunk_count()));
  }
  const uint64_t max_encoded = maxEncodedBytes(chunk.encoding(), options_.max_snapshot_bytes);
  if (chunk.total_size() > max_encoded) {
    return absl::ResourceExhaustedError(
        absl::StrFormat("push of %d encoded bytes exceeds the limit of %d", chunk.total_size(),
                        max_encoded));
  }
  in_progress_ = true;
  header_ = chunk;
  header_.clear_data();
  header_.clear_chunk_index();
  next_index_ = 0;
  buffer_.clear();
  buffer_.reserve(static_cast<size_t>(chunk.total_size()));
  return absl::OkStatus();
}

absl::StatusOr<std::optional<AssembledSnapshot>> Reassembler::add(const ConfigChunk& chunk) {
  if (discarding_) {
    if (chunk.generation() == discard_generation_ && chunk.config_hash() == discard_hash_ &&
        chunk.chunk_count() == discard_count_ && chunk.chunk_index() != 0) {
      if (chunk.chunk_index() + 1 >= discard_count_) {
        discarding_ = false;
      }
      return std::optional<AssembledSnapshot>();
    }
    discarding_ = false;
  }

  if (!in_progress_) {
    if (chunk.chunk_index() != 0) {
      return fail(chunk, absl::InvalidArgumentError(absl::StrFormat(
                             "chunk %d of generation %d arrived without chunk 0",
                             chunk.chunk_index(), chunk.generation())));
    }
    if (absl::Status st = startPush(chunk); !st.ok()) {
      return fail(chunk, std::move(st));
    }
  } else {
    if (!sameHeader(header_, chunk)) {
      return fail(chunk, absl::InvalidArgumentError(absl::StrFormat(
                             "chunk %d does not belong to the push of generation %d in progress",
                             chunk.chunk_index(), header_.generation())));
    }
    if (chunk.chunk_index() != next_index_) {
      return fail(chunk, absl::InvalidArgumentError(absl::StrFormat(
                             "chunk %d arrived out of order (expected %d)", chunk.chunk_index(),
                             next_index_)));
    }
  }
  if (chunk.chunk_index() >= header_.chunk_count()) {
    return fail(chunk, absl::InvalidArgumentError(absl::StrFormat(
                           "chunk_index %d out of range (chunk_count %d)", chunk.chunk_index(),
                           header_.chunk_count())));
  }
  if (buffer_.size() + chunk.data().size() > header_.total_size()) {
    return fail(chunk, absl::InvalidArgumentError(absl::StrFormat(
                           "chunks exceed the declared total_size %d", header_.total_size())));
  }
  buffer_.append(chunk.data());
  ++next_index_;
  if (next_index_ < header_.chunk_count()) {
    return std::optional<AssembledSnapshot>();
  }

  if (buffer_.size() != header_.total_size()) {
    return fail(chunk, absl::InvalidArgumentError(
                           absl::StrFormat("push truncated: %d of %d bytes", buffer_.size(),
                                           header_.total_size())));
  }
  AssembledSnapshot out;
  if (header_.kind() == sync::v1::PAYLOAD_KIND_DELTA) {
    auto raw = decompressPayload(header_.encoding(), buffer_, header_.payload_hash(),
                                 options_.max_snapshot_bytes);
    if (!raw.ok()) {
      return fail(chunk, raw.status());
    }
    sync::v1::SnapshotDelta delta;
    if (!delta.ParseFromArray(raw->data(), static_cast<int>(raw->size()))) {
      return fail(chunk, absl::InvalidArgumentError(
                             "payload is not a valid portico.sync.v1.SnapshotDelta"));
    }
    if (delta.generation() != header_.generation() ||
        delta.base_generation() != header_.base_generation()) {
      return fail(chunk, absl::InvalidArgumentError(absl::StrFormat(
                             "delta is %d->%d but the push says %d->%d", delta.base_generation(),
                             delta.generation(), header_.base_generation(),
                             header_.generation())));
    }
    out.generation = header_.generation();
    out.config_hash = header_.config_hash();
    out.base_generation = header_.base_generation();
    out.base_hash = header_.base_hash();
    out.payload_size = raw->size();
    out.delta = std::move(delta);
    in_progress_ = false;
    buffer_.clear();
    header_.Clear();
    next_index_ = 0;
    return std::optional<AssembledSnapshot>(std::move(out));
  }
  auto raw = decompressPayload(header_.encoding(), buffer_, header_.config_hash(),
                               options_.max_snapshot_bytes);
  if (!raw.ok()) {
    return fail(chunk, raw.status());
  }
  out.payload_size = raw->size();
  if (options_.split_key_auth) {
    if (absl::Status st = parseSnapshotSplit(*raw, &out.snapshot, &out.key_auth); !st.ok()) {
      return fail(chunk, st);
    }
  } else if (!out.snapshot.ParseFromString(*raw)) {
    return fail(chunk, absl::InvalidArgumentError(
                           "payload is not a valid portico.config.v1.Snapshot"));
  }
  raw->clear();
  raw->shrink_to_fit();
  if (out.snapshot.generation() != header_.generation()) {
    return fail(chunk, absl::InvalidArgumentError(absl::StrFormat(
                           "payload is generation %d but the push says %d",
                           out.snapshot.generation(), header_.generation())));
  }
  out.generation = header_.generation();
  out.config_hash = header_.config_hash();
  out.encoding = header_.encoding();
  out.encoded_payload = std::move(buffer_);
  in_progress_ = false;
  buffer_.clear();
  header_.Clear();
  next_index_ = 0;
  return std::optional<AssembledSnapshot>(std::move(out));
}

}  // namespace portico::sync
