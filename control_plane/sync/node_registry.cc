#include "control_plane/sync/node_registry.h"

#include <utility>

#include "absl/time/clock.h"

namespace portico::cp {

std::optional<NodeStatus> NodeRegistry::onHello(uint64_t session, const std::string& node_id,
                                                const std::string& hostname,
                                                const std::string& version,
                                                const std::string& group, uint64_t generation,
                                                const std::string& hash, const std::string& ip,
                                                const std::map<std::string, std::string>& labels) {
  absl::MutexLock lock(&mu_);
  std::optional<NodeStatus> before;
  auto it = nodes_.find(node_id);
  if (it != nodes_.end()) {
    before = it->second.status;
  } else {
    it = nodes_.emplace(node_id, Entry{}).first;
  }
  Entry& e = it->second;
  e.session = session;
  NodeStatus& s = e.status;
  const absl::Time now = absl::Now();
  s.node_id = node_id;
  s.hostname = hostname;
  s.version = version;
  if (s.group != group) {
    // A node that moved groups carries no rejection across.
    s.rejected_generation = 0;
    s.rejected_hash.clear();
    s.rejected_message.clear();
    s.rejected_errors.clear();
  }
  s.group = group;
  s.ip = ip;
  s.labels = labels;
  s.sync_status = "normal";
  s.compatibility_issues.clear();
  s.connected = true;
  s.connected_at = now;
  s.last_seen = now;
  s.applied_generation = generation;
  s.applied_hash = hash;
  dirty(node_id);
  return before;
}

void NodeRegistry::onRefused(const std::string& node_id, const std::string& hostname,
                             const std::string& version, const std::string& group,
                             const std::string& ip, std::string sync_status,
                             std::vector<CompatibilityIssue> issues) {
  absl::MutexLock lock(&mu_);
  NodeStatus& s = nodes_[node_id].status;
  s.node_id = node_id;
  s.hostname = hostname;
  s.version = version;
  s.group = group;
  s.ip = ip;
  s.connected = false;
  s.last_seen = absl::Now();
  s.sync_status = std::move(sync_status);
  s.compatibility_issues = std::move(issues);
  dirty(node_id);
}

void NodeRegistry::setSyncStatus(const std::string& node_id, std::string sync_status,
                                 std::vector<CompatibilityIssue> issues) {
  touch(node_id, [&](NodeStatus& s) {
    s.sync_status = std::move(sync_status);
    s.compatibility_issues = std::move(issues);
  });
}

void NodeRegistry::setCompatibilityIssues(const std::string& node_id,
                                          std::vector<CompatibilityIssue> issues) {
  absl::MutexLock lock(&mu_);
  auto it = nodes_.find(node_id);
  if (it == nodes_.end()) {
    return;
  }
  it->second.status.compatibility_issues = std::move(issues);
  dirty(node_id);
}

std::vector<NodeStatus> NodeRegistry::takeDirty() {
  absl::MutexLock lock(&mu_);
  std::vector<NodeStatus> out;
  out.reserve(dirty_.size());
  for (const auto& id : dirty_) {
    auto it = nodes_.find(id);
    if (it != nodes_.end()) {
      out.push_back(it->second.status);
    }
  }
  dirty_.clear();
  return out;
}

void NodeRegistry::onAck(const std::string& node_id, uint64_t generation,
                         const std::string& hash) {
  touch(node_id, [&](NodeStatus& s) {
    s.applied_generation = generation;
    s.applied_hash = hash;
    ++s.acks;
  });
}

void NodeRegistry::onNack(const std::string& node_id, uint64_t generation,
                          const std::string& hash, const std::string& message,
                          config::FieldErrors errors) {
  touch(node_id, [&](NodeStatus& s) {
    s.rejected_generation = generation;
    s.rejected_hash = hash;
    s.rejected_message = message;
    s.rejected_errors = std::move(errors);
    ++s.nacks;
  });
}

void NodeRegistry::onHeartbeat(const std::string& node_id, uint64_t generation,
                               const std::string& hash) {
  touch(node_id, [&](NodeStatus& s) {
    s.applied_generation = generation;
    s.applied_hash = hash;
  });
}

void NodeRegistry::onDisconnect(uint64_t session, const std::string& node_id) {
  absl::MutexLock lock(&mu_);
  auto it = nodes_.find(node_id);
  if (it == nodes_.end() || it->second.session != session) {
    return;
  }
  it->second.status.connected = false;
  dirty(node_id);
}

void NodeRegistry::onHealth(const std::string& node_id, UpstreamHealthReport upstreams) {
  auto report = std::make_shared<const UpstreamHealthReport>(std::move(upstreams));
  absl::MutexLock lock(&mu_);
  auto it = nodes_.find(node_id);
  if (it == nodes_.end()) {
    return;
  }
  it->second.health = std::move(report);  // the old report is freed under the lock: small
  it->second.health_at = absl::Now();
}

std::vector<NodeHealth> NodeRegistry::health(const std::string& group) const {
  absl::MutexLock lock(&mu_);
  std::vector<NodeHealth> out;
  for (const auto& [id, e] : nodes_) {
    if (e.health == nullptr || e.status.group != group) {
      continue;
    }
    out.push_back(NodeHealth{id, e.status.hostname, e.status.connected, e.health_at, e.health});
  }
  return out;
}

std::optional<NodeStatus> NodeRegistry::get(const std::string& node_id) const {
  absl::MutexLock lock(&mu_);
  auto it = nodes_.find(node_id);
  if (it == nodes_.end()) {
    return std::nullopt;
  }
  return it->second.status;
}

std::vector<NodeStatus> NodeRegistry::list() const {
  absl::MutexLock lock(&mu_);
  std::vector<NodeStatus> out;
  out.reserve(nodes_.size());
  for (const auto& [id, e] : nodes_) {
    out.push_back(e.status);
  }
  return out;
}

}  // namespace portico::cp
