// PushState: the push rules for one DP stream, as plain logic without gRPC so they can be
// tested exhaustively. At most one unacknowledged push; a newer generation replaces a queued
// one; a (generation, hash) the DP rejected is never offered to it again; nothing is sent
// that the DP already runs or that is older than what it runs. What is sent for a target is
// chosen when it goes out: a delta from what the DP runs if the target has one, else the
// full snapshot; a NACKed delta falls back to the full snapshot of the same generation.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/sync/codec.h"
#include "control_plane/sync/node_registry.h"

namespace portico::cp {

// One generation of one group, as offered to its streams. The encoded payloads are filled
// in by the server's config thread (the full snapshot lazily, deltas per base generation)
// and shared by every stream. Thread-safe.
class Target {
 public:
  Target(std::string group, uint64_t generation, std::string hash,
         std::set<std::string> plugin_names = {}, std::string epoch = "")
      : group_(std::move(group)),
        generation_(generation),
        hash_(std::move(hash)),
        plugin_names_(std::move(plugin_names)),
        epoch_(std::move(epoch)) {}

  const std::string& group() const { return group_; }
  uint64_t generation() const { return generation_; }
  const std::string& hash() const { return hash_; }
  // Every plugin name the config uses (enabled or not): a DP must implement them all.
  const std::set<std::string>& pluginNames() const { return plugin_names_; }
  // The group's config history this generation belongs to (migrations/0007).
  const std::string& epoch() const { return epoch_; }

  void setFull(sync::EncodedSnapshotConstSharedPtr full);
  void addDelta(sync::EncodedSnapshotConstSharedPtr delta);  // keyed by its base generation
  // The server found no delta possible from `base_generation` (outside the window).
  void markNoDelta(uint64_t base_generation);
  // The full snapshot as DPs of an older compatibility class get it (see compat.h), and the
  // issues (stripped values) it carries. Encoded once per (generation, class).
  void setCompat(const std::string& compat_class, sync::EncodedSnapshotConstSharedPtr payload,
                 std::shared_ptr<const std::vector<CompatibilityIssue>> issues);
  std::shared_ptr<const std::vector<CompatibilityIssue>> compatIssues(
      const std::string& compat_class) const;

  struct Choice {
    sync::EncodedSnapshotConstSharedPtr payload;  // set: send this
    bool need_full = false;                       // else: ask the server for the full one
    bool need_delta = false;                      // else: ask for a delta from applied
  };
  // What to send a DP running (applied_generation, applied_hash). A DP of a compatibility
  // class ("" = native) always gets that class's full payload (need_full until it exists).
  Choice choose(uint64_t applied_generation, const std::string& applied_hash,
                bool allow_delta, const std::string& compat_class = "") const;

 private:
  const std::string group_;
  const uint64_t generation_;
  const std::string hash_;
  const std::set<std::string> plugin_names_;
  const std::string epoch_;
  mutable absl::Mutex mu_;
  sync::EncodedSnapshotConstSharedPtr full_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, sync::EncodedSnapshotConstSharedPtr> deltas_ ABSL_GUARDED_BY(mu_);
  std::set<uint64_t> no_delta_ ABSL_GUARDED_BY(mu_);
  struct Compat {
    sync::EncodedSnapshotConstSharedPtr payload;
    std::shared_ptr<const std::vector<CompatibilityIssue>> issues;
  };
  std::map<std::string, Compat> compat_ ABSL_GUARDED_BY(mu_);
};
using TargetConstSharedPtr = std::shared_ptr<const Target>;
using TargetSharedPtr = std::shared_ptr<Target>;

// Not thread-safe: owned by one stream, used under that stream's lock.
class PushState {
 public:
  // What the DP runs, from Hello (and from each matching Ack).
  void setApplied(uint64_t generation, std::string hash);
  // The epoch of what it runs (Hello; an ACK of a push carries the push's epoch over).
  void setAppliedEpoch(std::string epoch) { applied_epoch_ = std::move(epoch); }
  // A (generation, hash) this DP rejected, possibly on an earlier stream.
  void addRejected(uint64_t generation, std::string hash);
  // Whether the DP announced the "delta" capability.
  void setDeltaCapable(bool capable) { delta_capable_ = capable; }
  // The DP's compatibility class ("" = native); such DPs get full snapshots only.
  void setCompatClass(std::string compat_class) { compat_class_ = std::move(compat_class); }
  const std::string& compatClass() const { return compat_class_; }

  // A new target for this DP. Replaces any queued, not yet started push.
  void offer(TargetConstSharedPtr target);

  struct Next {
    sync::EncodedSnapshotConstSharedPtr payload;  // write all its chunks, await the answer
    TargetConstSharedPtr waiting_for;             // a payload the server must prepare first
    bool need_full = false;
    std::string compat_class;                     // of the payload to prepare
  };
  // If nothing is in flight and a queued target is still worth sending, picks its payload
  // and makes it the in-flight push. If the payload is not encoded yet, the target stays
  // queued and `waiting_for` says what to ask the server for.
  Next takeNext();

  // The DP's answers. Return true if the answer closed the in-flight push.
  bool onAck(uint64_t generation, const std::string& hash);
  bool onNack(uint64_t generation, const std::string& hash);

  bool inFlight() const { return in_flight_ != nullptr; }
  const sync::EncodedSnapshotConstSharedPtr& inFlightPayload() const { return in_flight_; }
  const TargetConstSharedPtr& queued() const { return queued_; }
  const TargetConstSharedPtr& inFlightTarget() const { return in_flight_target_; }
  uint64_t appliedGeneration() const { return applied_generation_; }
  const std::string& appliedHash() const { return applied_hash_; }
  bool needsFull() const { return needs_full_; }

 private:
  bool worthSending(const Target& t) const;
  bool isRejected(uint64_t generation, const std::string& hash) const;

  static constexpr size_t kMaxRejected = 16;

  uint64_t applied_generation_ = 0;
  std::string applied_hash_;
  std::string applied_epoch_;
  bool delta_capable_ = false;
  bool needs_full_ = false;  // a delta was NACKed: full snapshots until the next ACK
  std::string compat_class_;
  sync::EncodedSnapshotConstSharedPtr in_flight_;
  TargetConstSharedPtr in_flight_target_;
  TargetConstSharedPtr queued_;
  std::deque<std::pair<uint64_t, std::string>> rejected_;  // newest last, bounded
};

}  // namespace portico::cp
