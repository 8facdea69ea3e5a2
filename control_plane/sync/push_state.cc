#include "control_plane/sync/push_state.h"

#include <algorithm>

namespace portico::cp {

void PushState::setApplied(uint64_t generation, std::string hash) {
  applied_generation_ = generation;
  applied_hash_ = std::move(hash);
}

void PushState::addRejected(uint64_t generation, std::string hash) {
  if (isRejected(generation, hash)) {
    return;
  }
  rejected_.emplace_back(generation, std::move(hash));
  if (rejected_.size() > kMaxRejected) {
    rejected_.pop_front();
  }
}

bool PushState::matches(const sync::EncodedSnapshotConstSharedPtr& s, uint64_t generation,
                        const std::string& hash) {
  return s != nullptr && s->generation == generation && s->config_hash == hash;
}

bool PushState::isRejected(uint64_t generation, const std::string& hash) const {
  return std::any_of(rejected_.begin(), rejected_.end(), [&](const auto& r) {
    return r.first == generation && r.second == hash;
  });
}

bool PushState::worthSending(const sync::EncodedSnapshot& s) const {
  if (s.config_hash == applied_hash_ && s.generation == applied_generation_) {
    return false;  // already running it
  }
  if (s.generation < applied_generation_) {
    return false;  // the DP runs something newer (e.g. from another CP replica); it would NACK
  }
  return !isRejected(s.generation, s.config_hash);
}

void PushState::offer(sync::EncodedSnapshotConstSharedPtr snapshot) {
  if (snapshot == nullptr) {
    return;
  }
  if (matches(in_flight_, snapshot->generation, snapshot->config_hash)) {
    queued_.reset();  // what is in flight is already the newest
    return;
  }
  queued_ = std::move(snapshot);
}

sync::EncodedSnapshotConstSharedPtr PushState::takeNext() {
  if (in_flight_ != nullptr || queued_ == nullptr) {
    return nullptr;
  }
  sync::EncodedSnapshotConstSharedPtr next = std::move(queued_);
  queued_.reset();
  if (!worthSending(*next)) {
    return nullptr;
  }
  in_flight_ = next;
  return next;
}

bool PushState::onAck(uint64_t generation, const std::string& hash) {
  setApplied(generation, hash);
  if (matches(in_flight_, generation, hash)) {
    in_flight_.reset();
    return true;
  }
  return false;
}

bool PushState::onNack(uint64_t generation, const std::string& hash) {
  addRejected(generation, hash);
  if (matches(in_flight_, generation, hash)) {
    in_flight_.reset();
    return true;
  }
  return false;
}

}  // namespace portico::cp
