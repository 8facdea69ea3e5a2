// PushState: the push rules for one DP stream, as plain logic without gRPC so they can be
// tested exhaustively. At most one unacknowledged push; a newer generation replaces a queued
// one; a (generation, hash) the DP rejected is never offered to it again; nothing is sent
// that the DP already runs or that is older than what it runs.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <utility>

#include "common/sync/codec.h"

namespace portico::cp {

// Not thread-safe: owned by one stream, used under that stream's lock.
class PushState {
 public:
  // What the DP runs, from Hello (and from each matching Ack).
  void setApplied(uint64_t generation, std::string hash);
  // A (generation, hash) this DP rejected, possibly on an earlier stream.
  void addRejected(uint64_t generation, std::string hash);

  // A new target for this DP. Replaces any queued, not yet started push.
  void offer(sync::EncodedSnapshotConstSharedPtr snapshot);

  // If nothing is in flight and a queued push is still worth sending, makes it the in-flight
  // push and returns it; the caller writes all its chunks and waits for the DP's answer.
  sync::EncodedSnapshotConstSharedPtr takeNext();

  // The DP's answers. Return true if the answer closed the in-flight push.
  bool onAck(uint64_t generation, const std::string& hash);
  bool onNack(uint64_t generation, const std::string& hash);

  bool inFlight() const { return in_flight_ != nullptr; }
  const sync::EncodedSnapshotConstSharedPtr& queued() const { return queued_; }
  uint64_t appliedGeneration() const { return applied_generation_; }
  const std::string& appliedHash() const { return applied_hash_; }

 private:
  bool worthSending(const sync::EncodedSnapshot& s) const;
  bool isRejected(uint64_t generation, const std::string& hash) const;
  static bool matches(const sync::EncodedSnapshotConstSharedPtr& s, uint64_t generation,
                      const std::string& hash);

  static constexpr size_t kMaxRejected = 16;

  uint64_t applied_generation_ = 0;
  std::string applied_hash_;
  sync::EncodedSnapshotConstSharedPtr in_flight_;
  sync::EncodedSnapshotConstSharedPtr queued_;
  std::deque<std::pair<uint64_t, std::string>> rejected_;  // newest last, bounded
};

}  // namespace portico::cp
