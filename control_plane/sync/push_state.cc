#include "control_plane/sync/push_state.h"

#include <algorithm>

namespace portico::cp {

void Target::setFull(sync::EncodedSnapshotConstSharedPtr full) {
  absl::MutexLock lock(&mu_);
  full_ = std::move(full);
}

void Target::addDelta(sync::EncodedSnapshotConstSharedPtr delta) {
  absl::MutexLock lock(&mu_);
  const uint64_t base = delta->base_generation;
  deltas_[base] = std::move(delta);
}

void Target::markNoDelta(uint64_t base_generation) {
  absl::MutexLock lock(&mu_);
  no_delta_.insert(base_generation);
}

void Target::setCompat(const std::string& compat_class,
                       sync::EncodedSnapshotConstSharedPtr payload,
                       std::shared_ptr<const std::vector<CompatibilityIssue>> issues) {
  absl::MutexLock lock(&mu_);
  compat_[compat_class] = Compat{std::move(payload), std::move(issues)};
}

std::shared_ptr<const std::vector<CompatibilityIssue>> Target::compatIssues(
    const std::string& compat_class) const {
  absl::MutexLock lock(&mu_);
  auto it = compat_.find(compat_class);
  return it == compat_.end() ? nullptr : it->second.issues;
}

Target::Choice Target::choose(uint64_t applied_generation, const std::string& applied_hash,
                              bool allow_delta, const std::string& compat_class) const {
  absl::MutexLock lock(&mu_);
  Choice c;
  if (!compat_class.empty()) {
    auto it = compat_.find(compat_class);
    if (it != compat_.end()) {
      c.payload = it->second.payload;
    } else {
      c.need_full = true;
    }
    return c;
  }
  if (allow_delta && applied_generation > 0 && applied_generation < generation_ &&
      !applied_hash.empty() && no_delta_.count(applied_generation) == 0) {
    auto it = deltas_.find(applied_generation);
    if (it != deltas_.end()) {
      if (it->second->base_hash == applied_hash) {
        c.payload = it->second;
        return c;
      }
      // The DP runs another content under that generation number: only a full one helps.
    } else {
      c.need_delta = true;
      return c;
    }
  }
  if (full_ != nullptr) {
    c.payload = full_;
  } else {
    c.need_full = true;
  }
  return c;
}

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

bool PushState::isRejected(uint64_t generation, const std::string& hash) const {
  return std::any_of(rejected_.begin(), rejected_.end(), [&](const auto& r) {
    return r.first == generation && r.second == hash;
  });
}

bool PushState::worthSending(const Target& t) const {
  if (t.hash() == applied_hash_ && t.generation() == applied_generation_) {
    return false;  // already running it
  }
  // Generations compare only within one epoch: a DP of another one (a restored or rebuilt
  // database, or a cache from before either) takes the full snapshot whatever they say.
  if (t.generation() < applied_generation_ && t.epoch() == applied_epoch_) {
    return false;  // the DP runs something newer (e.g. from another CP replica); it would NACK
  }
  return !isRejected(t.generation(), t.hash());
}

void PushState::offer(TargetConstSharedPtr target) {
  if (target == nullptr) {
    return;
  }
  if (in_flight_target_ != nullptr && in_flight_target_->generation() == target->generation() &&
      in_flight_target_->hash() == target->hash()) {
    queued_.reset();  // what is in flight is already the newest
    return;
  }
  queued_ = std::move(target);
}

PushState::Next PushState::takeNext() {
  Next next;
  if (in_flight_ != nullptr || queued_ == nullptr) {
    return next;
  }
  if (!worthSending(*queued_)) {
    queued_.reset();
    return next;
  }
  const bool same_epoch = queued_->epoch() == applied_epoch_;
  const Target::Choice c = queued_->choose(
      applied_generation_, applied_hash_,
      delta_capable_ && !needs_full_ && compat_class_.empty() && same_epoch, compat_class_);
  if (c.payload == nullptr) {
    next.waiting_for = queued_;  // stays queued; a newer offer may still replace it
    next.need_full = c.need_full;
    next.compat_class = compat_class_;
    return next;
  }
  // A compatibility-class payload has its own hash: the DP may run exactly it already, or
  // have rejected it (the target's own hash said neither).
  if ((c.payload->generation == applied_generation_ &&
       c.payload->config_hash == applied_hash_) ||
      isRejected(c.payload->generation, c.payload->config_hash)) {
    queued_.reset();
    return next;
  }
  in_flight_ = c.payload;
  in_flight_target_ = std::move(queued_);
  queued_.reset();
  next.payload = in_flight_;
  return next;
}

bool PushState::onAck(uint64_t generation, const std::string& hash) {
  setApplied(generation, hash);
  needs_full_ = false;
  if (in_flight_ != nullptr && in_flight_->generation == generation &&
      in_flight_->config_hash == hash) {
    applied_epoch_ = in_flight_target_ != nullptr ? in_flight_target_->epoch() : applied_epoch_;
    in_flight_.reset();
    in_flight_target_.reset();
    return true;
  }
  return false;
}

bool PushState::onNack(uint64_t generation, const std::string& hash) {
  const bool matches = in_flight_ != nullptr && in_flight_->generation == generation &&
                       in_flight_->config_hash == hash;
  if (matches && in_flight_->kind == sync::v1::PAYLOAD_KIND_DELTA) {
    // The DP could not use the delta (its base differed, or the result did not match): the
    // same generation goes out once more, in full. Only a NACKed full push is final.
    needs_full_ = true;
    if (queued_ == nullptr) {
      queued_ = in_flight_target_;
    }
  } else {
    addRejected(generation, hash);
  }
  if (matches) {
    in_flight_.reset();
    in_flight_target_.reset();
    return true;
  }
  return false;
}

}  // namespace portico::cp
