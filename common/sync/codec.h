// Snapshot payload codec shared by both planes. The CP encodes each generation of a group ONCE
// (serialize, hash, zstd, split into ≤ 1 MiB ConfigChunk messages) and every stream of that
// group sends the same immutable EncodedSnapshot. The DP feeds received chunks to a
// Reassembler, which checks order, sizes, hash and limits before it parses anything.
// Nothing here throws or aborts on bad input: every failure is an absl::Status.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/config/key_auth_table.h"
#include "portico/config/v1/config.pb.h"
#include "portico/sync/v1/sync.pb.h"

namespace portico::sync {

// A whole ControlPlaneMessage carrying one chunk stays at or under 1 MiB; the envelope
// (hash, sizes, indexes) needs well under the 1 KiB of headroom we leave for it.
inline constexpr uint64_t kMaxChunkMessageBytes = uint64_t{1} << 20;
inline constexpr uint64_t kDefaultChunkDataBytes = kMaxChunkMessageBytes - 1024;
inline constexpr uint64_t kDefaultMaxSnapshotBytes = uint64_t{256} << 20;

// Lower-case hex SHA-256 of `data` (64 characters).
std::string sha256Hex(std::string_view data);

// Deterministic serialization of any message (map order fixed); the bytes config_hash and
// payload_hash are computed over. kInternal only if serialization fails.
absl::StatusOr<std::string> serializeDeterministic(const google::protobuf::Message& message);

struct EncodeOptions {
  uint64_t chunk_data_bytes = kDefaultChunkDataBytes;  // payload bytes per chunk, ≥ 1
  int zstd_level = 3;
  bool compress = true;  // false: ENCODING_UNSPECIFIED (raw payload), for tests and old DPs
};

// One generation of one group, ready to send. Immutable once built; shared by every stream.
struct EncodedSnapshot {
  uint64_t generation = 0;
  std::string group;
  std::string config_hash;       // hex SHA-256 of the serialized (uncompressed) Snapshot
  uint64_t payload_size = 0;     // serialized Snapshot size
  uint64_t encoded_size = 0;     // compressed size = ConfigChunk.total_size
  sync::v1::Encoding encoding = sync::v1::ENCODING_UNSPECIFIED;
  // PAYLOAD_KIND_SNAPSHOT, or PAYLOAD_KIND_DELTA from (base_generation, base_hash) to
  // (generation, config_hash); payload_hash is the delta's own hash.
  sync::v1::PayloadKind kind = sync::v1::PAYLOAD_KIND_SNAPSHOT;
  uint64_t base_generation = 0;
  std::string base_hash;
  std::string payload_hash;
  // The encoded payload, pre-split: messages[i].chunk() is chunk i of messages.size(). The
  // fan-out copies nothing: see `serialized`.
  std::vector<sync::v1::ControlPlaneMessage> messages;
  // messages[i] serialized, as the CP's streams write them: every stream sends these same
  // bytes (a second copy of the compressed payload, kept once per generation).
  std::vector<std::shared_ptr<const std::string>> serialized;

  // The encoded payload reassembled (a copy; for tests and tools, not the send path).
  std::string encodedPayload() const;
};
using EncodedSnapshotConstSharedPtr = std::shared_ptr<const EncodedSnapshot>;

// Serializes `snapshot` deterministically, hashes, compresses and chunks it. Fails only if
// serialization or compression fails (kInternal) or the options are invalid.
absl::StatusOr<EncodedSnapshotConstSharedPtr> encodeSnapshot(const config::v1::Snapshot& snapshot,
                                                              const EncodeOptions& options = {});

// Encodes a delta whose application to the snapshot (base_generation, base_hash) gives the
// snapshot (delta.generation(), target_hash). Same chunking and compression as snapshots.
absl::StatusOr<EncodedSnapshotConstSharedPtr> encodeDelta(const sync::v1::SnapshotDelta& delta,
                                                           const std::string& base_hash,
                                                           const std::string& target_hash,
                                                           const EncodeOptions& options = {});

// zstd-compresses `raw` as one frame that declares its size (what decompressPayload reads).
absl::StatusOr<std::string> compressPayload(std::string_view raw, int zstd_level = 3);

// Decompresses one whole payload (refusing more than `max_payload_bytes`) and checks its hex
// SHA-256 against `expected_hash`; returns the raw serialized bytes. Errors as decodePayload.
absl::StatusOr<std::string> decompressPayload(sync::v1::Encoding encoding,
                                              std::string_view payload,
                                              std::string_view expected_hash,
                                              uint64_t max_payload_bytes);

// Decodes one whole payload: decompresses (refusing more than `max_payload_bytes`), checks
// the hex SHA-256 against `expected_hash`, and parses. Used by the Reassembler and to load
// the DP's cache file. Errors: kInvalidArgument (corrupt), kDataLoss (hash mismatch),
// kResourceExhausted (too large), kUnimplemented (unknown encoding).
absl::StatusOr<config::v1::Snapshot> decodePayload(sync::v1::Encoding encoding,
                                                   std::string_view payload,
                                                   std::string_view expected_hash,
                                                   uint64_t max_payload_bytes);

// decodePayload for the data plane: the key-auth credentials go into `*key_auth` as a table
// (never materialized as messages: 1M of them would take ~440 MB), everything else into
// `*rest`, whose keyauth_credentials list stays empty. Same errors as decodePayload.
absl::Status decodePayloadSplit(sync::v1::Encoding encoding, std::string_view payload,
                                std::string_view expected_hash, uint64_t max_payload_bytes,
                                config::v1::Snapshot* rest,
                                std::shared_ptr<const config::KeyAuthTable>* key_auth);
// The parsing half of decodePayloadSplit, on raw serialized Snapshot bytes.
absl::Status parseSnapshotSplit(std::string_view raw, config::v1::Snapshot* rest,
                                std::shared_ptr<const config::KeyAuthTable>* key_auth);

// serializeDeterministic() of the whole snapshot that `rest` (keyauth_credentials empty) and
// `key_auth` together hold: the same bytes, so the same config_hash.
absl::StatusOr<std::string> serializeDeterministic(const config::v1::Snapshot& rest,
                                                   const config::KeyAuthTable& key_auth);

// What a completed push yields on the DP. For a delta push, `delta` is set and `snapshot`
// is empty until the DP applied the delta to what it runs (common/sync/delta.h).
struct AssembledSnapshot {
  uint64_t generation = 0;
  std::string config_hash;
  config::v1::Snapshot snapshot;
  // With ReassemblerOptions::split_key_auth (and after a delta is materialized): the
  // snapshot's key-auth credentials, which `snapshot` then does not hold. Else null.
  std::shared_ptr<const config::KeyAuthTable> key_auth;
  std::optional<sync::v1::SnapshotDelta> delta;
  uint64_t base_generation = 0;
  std::string base_hash;
  // The encoded payload as received, kept so the DP can cache it without re-encoding.
  sync::v1::Encoding encoding = sync::v1::ENCODING_UNSPECIFIED;
  std::string encoded_payload;
  uint64_t payload_size = 0;
};

struct ReassemblerOptions {
  uint64_t max_snapshot_bytes = kDefaultMaxSnapshotBytes;  // uncompressed limit
  bool split_key_auth = false;  // decode with decodePayloadSplit (the DP)
};

// Reassembles the chunks of one push at a time. Not thread-safe; owned by the DP's sync
// thread. Chunks must arrive as index 0..count-1 with identical generation, hash, kind,
// encoding, count and total_size. A chunk that breaks a rule fails the whole push: add()
// returns the error once, the partial push is dropped, and the remaining chunks of that same
// push are swallowed (add() returns nullopt) so the caller reports each bad push once.
class Reassembler {
 public:
  explicit Reassembler(ReassemblerOptions options = {});

  // Returns nullopt while more chunks are needed, the snapshot when `chunk` completes a push,
  // or an error (see above) that belongs to the push `chunk` claims to be part of.
  absl::StatusOr<std::optional<AssembledSnapshot>> add(const sync::v1::ConfigChunk& chunk);

  // Drops any partial push (e.g. when the stream ends).
  void reset();
  bool inProgress() const { return in_progress_; }

 private:
  absl::Status fail(const sync::v1::ConfigChunk& chunk, absl::Status status);
  absl::Status startPush(const sync::v1::ConfigChunk& chunk);

  ReassemblerOptions options_;
  bool in_progress_ = false;
  sync::v1::ConfigChunk header_;  // the first chunk's fields, without data
  uint32_t next_index_ = 0;
  std::string buffer_;
  // The push that failed last; its later chunks are swallowed.
  bool discarding_ = false;
  uint64_t discard_generation_ = 0;
  std::string discard_hash_;
  uint32_t discard_count_ = 0;
};

}  // namespace portico::sync
