#include "control_plane/sync/sync_server_impl.h"
#include "control_plane/sync/vitals_stream.h"

#include <algorithm>
#include <cstdio>
#include <chrono>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "openssl/crypto.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "common/sync/cluster_tls.h"
#include "common/sync/delta.h"
#include "common/sync/grpc_args.h"
#include "common/sync/grpc_status.h"
#include "control_plane/sync/compat.h"

namespace portico::cp {
namespace {

using sync::v1::ControlPlaneMessage;
using sync::v1::DataPlaneMessage;

constexpr char kSyncLog[] = "sync";
constexpr char kDefaultGroup[] = "default";
// A NACK with every error of a huge config could be large; chunks are CP->DP only.
constexpr int kMaxReceiveMessageBytes = 4 << 20;

std::string groupName(const std::string& g) { return g.empty() ? kDefaultGroup : g; }

// NACK reasons as metric labels: a known status code and entity type, else a fixed word, so
// a DP cannot grow the series (or the map behind them) with what it sends.
std::string nackCodeLabel(int code) {
  return code >= 0 && code <= 16 ? absl::StatusCodeToString(static_cast<absl::StatusCode>(code))
                                 : "UNKNOWN_CODE";
}
std::string nackEntityLabel(const std::string& entity_type) {
  if (entity_type.empty()) return "none";
  return sync::isEntityType(entity_type) ? entity_type : "other";
}

// The one translation of our refusals into what the transport sends (grpc-status is
// google.rpc.Code, which absl::StatusCode is).
wire::GrpcStatus rpcStatus(absl::StatusCode code, std::string message) {
  return wire::GrpcStatus{static_cast<int>(code), std::move(message), {}};
}

absl::StatusOr<std::string> readFile(const std::string& what, const std::string& path) {
  if (path.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cluster TLS needs a ", what, " (--cluster_cert and --cluster_key, plus --cluster_ca "
        "with --cluster_mtls=pki), or --cluster_insecure for plain text"));
  }
  return sync::readPemFile(what, path);
}

std::string shortHash(const std::string& h) { return h.substr(0, 12); }

// "ipv4:10.0.0.1:5000" / "ipv6:[::1]:5000" -> the address without port.
std::string peerIp(const std::string& peer) {
  std::string s = peer;
  const size_t colon = s.find(':');
  if (colon != std::string::npos && (s.rfind("ipv4", 0) == 0 || s.rfind("ipv6", 0) == 0)) {
    s = s.substr(colon + 1);
  }
  const size_t port = s.rfind(':');
  if (port != std::string::npos) {
    s = s.substr(0, port);
  }
  if (s.size() >= 2 && s.front() == '[' && s.back() == ']') {
    s = s.substr(1, s.size() - 2);
  }
  return s;
}

}  // namespace

std::optional<SemVer> parseSemVer(const std::string& version) {
  SemVer v;
  char rest = 0;
  // "1.2.3", "1.2.3-dev", "1.2"; anything else is not a version.
  const int n = std::sscanf(version.c_str(), "%u.%u.%u%c", &v.major, &v.minor, &v.patch, &rest);
  if (n < 2 || (n == 4 && rest != '-' && rest != '+')) {
    return std::nullopt;
  }
  return v;
}

std::optional<std::string> versionIncompatibility(const std::string& cp_version,
                                                  const std::string& dp_version) {
  const std::optional<SemVer> cp = parseSemVer(cp_version);
  const std::optional<SemVer> dp = parseSemVer(dp_version);
  if (!dp.has_value()) {
    return absl::StrCat("data plane version '", dp_version, "' is not a semantic version");
  }
  if (!cp.has_value()) {
    return std::nullopt;  // a development CP build serves everyone
  }
  if (dp->major != cp->major) {
    return absl::StrCat("data plane version ", dp_version, " has another major than the control ",
                        "plane's ", cp_version, " (the major must match)");
  }
  if (dp->minor > cp->minor) {
    return absl::StrCat("data plane version ", dp_version, " is newer than the control plane's ",
                        cp_version, " (a data plane's minor must not exceed the control plane's)");
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// SyncStream

SyncStream::SyncStream(SyncServerImpl* server, uint64_t session, wire::ServerCall* call,
                       std::string peer, std::vector<std::string> cert_groups,
                       std::vector<std::string> credentials)
    : server_(server), session_(session), call_(call), peer_(std::move(peer)),
      cert_groups_(std::move(cert_groups)),
      credentials_(std::move(credentials)) {}

namespace {

std::set<std::string> pluginNamesOf(const config::v1::Snapshot& snapshot) {
  std::set<std::string> names;
  for (const config::v1::Plugin& p : snapshot.plugins()) {
    names.insert(p.name());
  }
  return names;
}

}  // namespace

void SyncStream::begin(std::optional<wire::GrpcStatus> refusal) {
  if (refusal.has_value()) {
    finish(std::move(*refusal));
  }
  // Otherwise messages arrive by themselves (onMessage).
}

void SyncStream::maybeReleaseSlotLocked() {
  if (holds_slot_.load() && !push_.inFlight() && push_.queued() == nullptr &&
      sending_ == nullptr && offered_) {
    server_->releaseSlot(this);
  }
}

void SyncStream::offer(TargetConstSharedPtr target) {
  // Kong's plugin_set_incompatible: a DP that lacks a plugin the config names would refuse it
  // (never run it without the plugin); it is not sent, and the node is listed with the gap.
  if (dp_plugins_.has_value()) {
    std::vector<CompatibilityIssue> missing;
    for (const std::string& name : target->pluginNames()) {
      if (!dp_plugins_->contains(name)) {
        missing.push_back({"plugin_missing", "error",
                           "plugin '" + name + "' is configured in group " + group_ +
                               " but this data plane does not implement it",
                           "plugins", "", "name"});
      }
    }
    if (!missing.empty()) {
      LOG_WARN(kSyncLog, "node %s lacks %d plugin(s) of group %s generation %d; not sending it",
               node_id_, missing.size(), group_, target->generation());
      plugin_set_incompatible_ = true;
      server_->registry().setSyncStatus(node_id_, "plugin_set_incompatible", std::move(missing));
      return;
    }
    if (plugin_set_incompatible_) {
      plugin_set_incompatible_ = false;
      server_->registry().setSyncStatus(node_id_, "normal", {});
    }
  }
  {
    absl::MutexLock lock(&mu_);
    offered_ = true;
    push_.offer(std::move(target));
  }
  repump();
}

void SyncStream::repump() {
  if (std::optional<Prep> prep = pump(); prep.has_value()) {
    server_->requestPayloadLocked(*prep);
  }
}

void SyncStream::pumpAndRequest() {
  if (std::optional<Prep> prep = pump(); prep.has_value()) {
    server_->requestPayload(*prep);
  }
}

void SyncStream::sendControl(wire::SharedBytes message) {
  {
    absl::MutexLock lock(&mu_);
    if (finished_ || finish_requested_) {
      return;
    }
    control_.push_back(std::move(message));
  }
  repump();
}

absl::Time SyncStream::lastSeen() const {
  absl::MutexLock lock(&mu_);
  return last_seen_;
}

void SyncStream::finish(wire::GrpcStatus status) {
  {
    absl::MutexLock lock(&mu_);
    if (finish_requested_) {
      return;
    }
    finish_requested_ = true;
    final_status_ = status;
    // Trailers go after the outstanding write; onWriteDone finishes instead.
    if (write_in_progress_) {
      return;
    }
    finished_ = true;
  }
  call_->finish(std::move(status));
}

std::optional<SyncStream::Prep> SyncStream::pump() {
  wire::SharedBytes next;
  std::optional<Prep> prep;
  std::shared_ptr<const std::vector<CompatibilityIssue>> issues;
  {
    absl::MutexLock lock(&mu_);
    if (write_in_progress_ || finish_requested_) {
      return prep;
    }
    if (!control_.empty()) {
      next = control_.front();
      writing_control_ = true;
    } else {
      if (sending_ == nullptr) {
        PushState::Next n = push_.takeNext();
        if (n.waiting_for != nullptr) {
          prep = Prep{n.waiting_for, n.need_full, n.need_full ? 0 : push_.appliedGeneration(),
                      n.compat_class};
        }
        sending_ = std::move(n.payload);
        next_chunk_ = 0;
        if (sending_ != nullptr) {
          server_->counters().pushes++;
          if (sending_->kind == sync::v1::PAYLOAD_KIND_DELTA) {
            server_->counters().delta_pushes++;
          } else {
            server_->counters().full_pushes++;
          }
          if (!compat_class_.empty() && push_.inFlightTarget() != nullptr) {
            issues = push_.inFlightTarget()->compatIssues(compat_class_);
          }
          LOG_DEBUG(kSyncLog, "pushing generation %d (%s, %s from %d, %d bytes) to node %s",
                    sending_->generation, shortHash(sending_->config_hash),
                    sending_->kind == sync::v1::PAYLOAD_KIND_DELTA ? "delta" : "full",
                    sending_->base_generation, sending_->encoded_size, node_id_);
        }
      }
      if (sending_ != nullptr) {
        next = sending_->serialized[next_chunk_];
        writing_control_ = false;
      }
    }
    if (next == nullptr) {
      maybeReleaseSlotLocked();
      return prep;
    }
    write_in_progress_ = true;
  }
  if (issues != nullptr) {
    // What this node gets differs from the native config: list each difference on it.
    server_->registry().setCompatibilityIssues(node_id_, *issues);
  }
  // Outside our lock (the transport never calls back from write()).
  call_->write(std::move(next));
  return prep;
}

void SyncStream::onWriteDone(bool ok) {
  wire::GrpcStatus status;
  bool do_finish = false;
  {
    absl::MutexLock lock(&mu_);
    write_in_progress_ = false;
    if (!ok) {
      // The stream is broken (peer gone or cancelled); nothing more can be written.
      if (!finish_requested_) {
        finish_requested_ = true;
        final_status_ = rpcStatus(absl::StatusCode::kUnavailable, "write failed");
      }
    } else if (writing_control_) {
      control_.erase(control_.begin());
    } else {
      server_->counters().chunks_sent++;
      server_->counters().bytes_sent += sending_->serialized[next_chunk_]->size();
      if (++next_chunk_ >= sending_->serialized.size()) {
        sending_.reset();  // all chunks out; push_ keeps it in flight until Ack/Nack
        next_chunk_ = 0;
      }
    }
    if (finish_requested_ && !finished_) {
      finished_ = true;
      do_finish = true;
      status = final_status_;
    }
  }
  if (do_finish) {
    call_->finish(std::move(status));
    return;
  }
  pumpAndRequest();
}

void SyncStream::onReadsDone() {
  // Half-close, reset or a lost connection: either way the stream is over.
  finish(rpcStatus(absl::StatusCode::kOk, ""));
}

void SyncStream::onMessage(std::string_view bytes) {
  {
    absl::MutexLock lock(&mu_);
    if (finish_requested_) {
      return;  // ending; what the DP still sends changes nothing
    }
  }
  DataPlaneMessage message;
  if (!message.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    finish(rpcStatus(absl::StatusCode::kInvalidArgument,
                     "malformed DataPlaneMessage (protobuf parse failed)"));
    return;
  }
  handle(message);
}

void SyncStream::handle(const DataPlaneMessage& message) {
  {
    absl::MutexLock lock(&mu_);
    last_seen_ = absl::Now();
  }
  if (!hello_seen_ && message.kind_case() != DataPlaneMessage::kHello) {
    finish(rpcStatus(absl::StatusCode::kFailedPrecondition, "the first message must be Hello"));
    return;
  }
  switch (message.kind_case()) {
    case DataPlaneMessage::kHello:
      if (hello_seen_) {
        finish(rpcStatus(absl::StatusCode::kInvalidArgument, "duplicate Hello"));
        return;
      }
      onHello(message.hello());
      return;
    case DataPlaneMessage::kAck:
      onAck(message.ack());
      return;
    case DataPlaneMessage::kNack:
      onNack(message.nack());
      return;
    case DataPlaneMessage::kHeartbeat: {
      const sync::v1::Heartbeat& heartbeat = message.heartbeat();
      server_->registry().onHeartbeat(node_id_, heartbeat.generation(), heartbeat.config_hash());
      if (heartbeat.health_report()) {  // sent only when it changed (and now and then)
        server_->registry().onHealth(
            node_id_, UpstreamHealthReport(heartbeat.upstreams().begin(),
                                           heartbeat.upstreams().end()));
      }
      return;
    }
    case DataPlaneMessage::kCachePurgeResult:
      server_->onPurgeResult(message.cache_purge_result());
      return;
    case DataPlaneMessage::KIND_NOT_SET:
      // A newer DP may send kinds we don't know yet; ignoring them keeps it compatible.
      return;
  }
}

// What a Hello says of its node is shown on /clustering/data-planes and becomes Prometheus
// label values (kong_data_plane_*, portico_cp_data_plane_generation): a long field or a
// control character (a newline forging series) must not get there. (Invalid UTF-8 never
// does: protobuf refuses it in string fields while parsing.) "" when `value` may be used.
std::string helloFieldProblem(const char* field, const std::string& value, size_t max) {
  if (value.size() > max) {
    return absl::StrCat("hello.", field, " is longer than ", max, " bytes");
  }
  for (unsigned char c : value) {
    if (c < 0x20 || c == 0x7f) {
      return absl::StrCat("hello.", field, " contains a control character");
    }
  }
  return "";
}

std::optional<std::string> groupRefusal(const SyncServerOptions& options,
                                        const std::vector<std::string>& cert_groups,
                                        const std::string& requested, std::string* group) {
  *group = groupName(requested);
  if (options.insecure || options.mtls != sync::ClusterMtls::kPki) {
    return std::nullopt;
  }
  if (requested.empty() && cert_groups.size() == 1) {
    *group = cert_groups.front();
  }
  const bool allowed =
      cert_groups.empty()
          ? *group == kDefaultGroup
          : std::find(cert_groups.begin(), cert_groups.end(), *group) != cert_groups.end();
  if (allowed) {
    return std::nullopt;
  }
  return cert_groups.empty()
             ? absl::StrCat("its certificate names no group (SAN URI ", sync::kGroupUriPrefix,
                            "<name>) and it has no join token, so it may only join the ",
                            "default group, not ", *group)
             : absl::StrCat("its certificate and join token allow groups [",
                            absl::StrJoin(cert_groups, ","), "], not ", *group);
}

void SyncStream::onHello(const sync::v1::Hello& hello) {
  if (hello.node_id().empty()) {
    finish(rpcStatus(absl::StatusCode::kInvalidArgument, "hello.node_id is required"));
    return;
  }
  for (const std::string& problem : {helloFieldProblem("node_id", hello.node_id(), 128),
                                     helloFieldProblem("hostname", hello.hostname(), 255),
                                     helloFieldProblem("version", hello.version(), 64)}) {
    if (!problem.empty()) {
      server_->counters().refused++;
      LOG_WARN(kSyncLog, "refusing a data plane from %s: %s", peerIp(peer_), problem);
      finish(rpcStatus(absl::StatusCode::kInvalidArgument, problem));
      return;
    }
  }
  const std::string ip = peerIp(peer_);
  if (std::optional<std::string> why =
          versionIncompatibility(server_->options().cp_version, hello.version());
      why.has_value()) {
    // Kong's kong_version_incompatible: the node is listed with the reason, and gets nothing.
    server_->counters().refused++;
    server_->registry().onRefused(hello.node_id(), hello.hostname(), hello.version(),
                                  groupName(hello.group()), ip, "version_incompatible",
                                  {{"version", "error", *why}});
    LOG_WARN(kSyncLog, "refusing node %s (%s) from %s: %s", hello.node_id(), hello.hostname(), ip,
             *why);
    finish(rpcStatus(absl::StatusCode::kFailedPrecondition, *why));
    return;
  }
  // PKI mode: the certificate says which groups this DP may join.
  std::string group;
  if (std::optional<std::string> why =
          groupRefusal(server_->options(), cert_groups_, hello.group(), &group);
      why.has_value()) {
    server_->counters().refused++;
    server_->registry().onRefused(hello.node_id(), hello.hostname(), hello.version(), group,
                                  ip, "group_not_allowed", {{"group", "error", *why}});
    LOG_WARN(kSyncLog, "refusing node %s (%s) from %s: %s", hello.node_id(), hello.hostname(), ip,
             *why);
    finish(rpcStatus(absl::StatusCode::kPermissionDenied, *why));
    return;
  }
  // An issued join token admits the node that joined with it first, and no other.
  if (CredentialAuthority* authority = server_->options().credentials; authority != nullptr) {
    for (const std::string& id : credentials_) {
      if (std::string why = authority->claimToken(id, hello.node_id()); !why.empty()) {
        server_->counters().refused++;
        LOG_WARN(kSyncLog, "refusing node %s (%s) from %s: %s", hello.node_id(), hello.hostname(),
                 ip, why);
        finish(rpcStatus(absl::StatusCode::kPermissionDenied, why));
        return;
      }
    }
  }
  // Load shedding: a DP that needs config waits for a slot (it retries after our hint).
  if (!server_->admit(this, group, hello.generation(), hello.config_hash())) {
    server_->counters().shed++;
    const uint64_t retry_ms = server_->retryAfterMs();
    LOG_DEBUG(kSyncLog, "shedding node %s: %d initial syncs in progress; retry in %d ms",
              hello.node_id(), server_->options().max_concurrent_syncs, retry_ms);
    wire::GrpcStatus status = rpcStatus(absl::StatusCode::kResourceExhausted,
                                        "too many data planes syncing; retry later");
    status.trailers.emplace_back("retry-after-ms", std::to_string(retry_ms));
    finish(std::move(status));
    return;
  }
  compat_class_ = compatClass(hello.version(), server_->options().compat_rules);
  if (std::find(hello.capabilities().begin(), hello.capabilities().end(), "plugin-set") !=
      hello.capabilities().end()) {
    dp_plugins_.emplace(hello.plugins().begin(), hello.plugins().end());
  }
  hello_seen_ = true;
  purge_capable_ = std::find(hello.capabilities().begin(), hello.capabilities().end(),
                             "cache-purge") != hello.capabilities().end();
  node_id_ = hello.node_id();
  group_ = group;
  std::map<std::string, std::string> labels(hello.labels().begin(), hello.labels().end());
  std::optional<NodeStatus> before =
      server_->registry().onHello(session_, node_id_, hello.hostname(), hello.version(), group_,
                                  hello.generation(), hello.config_hash(), ip, labels);
  LOG_INFO(kSyncLog, "node %s (%s, version %s) connected to group %s at generation %d (%s)%s",
           node_id_, hello.hostname(), hello.version(), group_, hello.generation(),
           shortHash(hello.config_hash()),
           compat_class_.empty() ? "" : absl::StrCat("; compatibility rules ", compat_class_));
  {
    absl::MutexLock lock(&mu_);
    push_.setApplied(hello.generation(), hello.config_hash());
    push_.setAppliedEpoch(hello.epoch());
    push_.setCompatClass(compat_class_);
    push_.setDeltaCapable(server_->options().delta_window > 0 &&
                          std::find(hello.capabilities().begin(), hello.capabilities().end(),
                                    "delta") != hello.capabilities().end());
    // The node rejected this on an earlier stream: a reconnect must not bring it back.
    if (before.has_value() && before->group == group_ && !before->rejected_hash.empty()) {
      push_.addRejected(before->rejected_generation, before->rejected_hash);
    }
    ControlPlaneMessage reply;
    reply.mutable_hello_reply()->set_heartbeat_interval_ms(server_->heartbeatIntervalMs());
    reply.mutable_hello_reply()->set_cp_version(server_->options().cp_version);
    for (const CompatibilityIssue& issue :
         compatRuleIssues(compat_class_, server_->options().compat_rules)) {
      sync::v1::CompatibilityIssue* out = reply.mutable_hello_reply()->add_compatibility_issues();
      out->set_id(issue.id);
      out->set_severity(issue.severity);
      out->set_entity_type(issue.entity_type);
      out->set_field(issue.field);
      out->set_description(issue.description);
    }
    control_.push_back(std::make_shared<const std::string>(reply.SerializeAsString()));
  }
  server_->attach(this);
  server_->checkAhead(group_, hello.epoch(), hello.generation());
  pumpAndRequest();
}

void SyncStream::onAck(const sync::v1::Ack& ack) {
  server_->counters().acks++;
  server_->observeAck(group_, ack.generation());
  server_->registry().onAck(node_id_, ack.generation(), ack.config_hash());
  bool closed;
  {
    absl::MutexLock lock(&mu_);
    closed = push_.onAck(ack.generation(), ack.config_hash());
  }
  LOG_DEBUG(kSyncLog, "node %s acked generation %d%s", node_id_, ack.generation(),
            closed ? "" : " (not the push in flight)");
  pumpAndRequest();
}

void SyncStream::onNack(const sync::v1::Nack& nack) {
  server_->counters().nacks++;
  config::FieldErrors errors;
  errors.reserve(nack.errors_size());
  for (const auto& e : nack.errors()) {
    errors.push_back({e.entity_type(), e.entity_id(), e.field(), e.reason()});
  }
  server_->countNack(nack.code(), errors.empty() ? "" : errors[0].entity_type);
  std::string first;
  if (!errors.empty()) {
    first = absl::StrCat(" first error: ", errors[0].entity_type, " ", errors[0].entity_id, " ",
                         errors[0].field, ": ", errors[0].reason);
  }
  LOG_WARN(kSyncLog, "node %s rejected generation %d (%s): %s (%d errors)%s; not resending it",
           node_id_, nack.generation(), shortHash(nack.config_hash()), nack.message(),
           errors.size(), first);
  server_->registry().onNack(node_id_, nack.generation(), nack.config_hash(), nack.message(),
                             std::move(errors));
  {
    absl::MutexLock lock(&mu_);
    push_.onNack(nack.generation(), nack.config_hash());
  }
  pumpAndRequest();
}

void SyncStream::onDone() {
  server_->detach(this);
  delete this;
}

// ---------------------------------------------------------------------------------------------
// SyncServerImpl

SyncServerImpl::SyncServerImpl(ConfigStore& store, SyncServerOptions options)
    : store_(store),
      options_([&] {
        if (options.cp_version.empty()) {
          options.cp_version = PORTICO_VERSION;
        }
        return std::move(options);
      }()),
      sink_(std::make_shared<ChangeSink>()),
      rng_(std::random_device{}()) {}

SyncServerImpl::~SyncServerImpl() { shutdown(); }

absl::Status SyncServerImpl::init() {
  wire::ServerOptions wo;
  wo.listen_address = options_.listen_address;
  wo.workers = options_.workers;  // the transport runs at least one
  wo.max_receive_message_bytes = kMaxReceiveMessageBytes;
  wo.max_pending_connections = options_.max_pending_connections;
  wo.max_pending_connections_per_client = options_.max_pending_per_client;
  wo.handshake_timeout_ms = options_.handshake_timeout_ms;
  if (!options_.insecure) {
    auto cert = options_.cert_pem.empty() ? readFile("cluster certificate", options_.cert_path)
                                          : absl::StatusOr<std::string>(options_.cert_pem);
    if (!cert.ok()) {
      return cert.status();
    }
    auto key = options_.key_pem.empty() ? readFile("cluster key", options_.key_path)
                                        : absl::StatusOr<std::string>(options_.key_pem);
    if (!key.ok()) {
      return key.status();
    }
    wo.cert_pem = *cert;
    wo.key_pem = *key;
    if (options_.mtls == sync::ClusterMtls::kShared) {
      // Kong's cluster_mtls=shared: the DP must hold our certificate and key. TLS proves it
      // holds the key of what it presents, and the handshake refuses any other certificate
      // (checkPeer() checks it again per call).
      auto digest = sync::certificateSha256(*cert);
      if (!digest.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("cluster certificate ",
                                                       options_.cert_path, ": ",
                                                       digest.status().message()));
      }
      pinned_sha256_ = *digest;
      wo.client_cert = wire::ClientCertMode::kRequireAny;
      wo.pinned_client_cert_sha256 = *digest;  // refused in the TLS handshake already
    } else {
      auto ca = options_.ca_pem.empty() ? readFile("cluster CA", options_.ca_path)
                                        : absl::StatusOr<std::string>(options_.ca_pem);
      if (!ca.ok()) {
        return ca.status();
      }
      wo.ca_pem = *ca;
      wo.client_cert = wire::ClientCertMode::kRequireVerified;
      // Issued join tokens admit a DP that holds only the CA certificate.
      wo.client_cert_optional = options_.credentials != nullptr;
    }
  }
  wire::GrpcServer::Methods methods;
  methods["/portico.sync.v1.ConfigSync/Sync"] = [this](wire::ServerCall* call,
                                                       wire::CallInfo info) {
    return newStream(call, info);
  };
  if (options_.vitals != nullptr) {
    methods["/portico.sync.v1.ConfigSync/Report"] = [this](wire::ServerCall* call,
                                                           wire::CallInfo info) {
      return newReportStream(call, info);
    };
  }
  auto server = wire::GrpcServer::start(std::move(wo), std::move(methods));
  if (!server.ok()) {
    return server.status();
  }
  server_ = std::move(*server);
  port_ = server_->port();

  {
    absl::MutexLock lock(&sink_->mu);
    sink_->target = this;
  }
  std::shared_ptr<ChangeSink> sink = sink_;
  store_.setChangeCallback([sink](const std::string& group, uint64_t generation) {
    absl::MutexLock lock(&sink->mu);
    if (sink->target != nullptr) {
      sink->target->onStoreChange(group, generation);
    }
  });
  {
    absl::MutexLock lock(&mu_);
    // Warm the default group so the first DP does not wait for a store read.
    requestLoadLocked(kDefaultGroup, 0);
  }
  config_thread_ = std::thread([this] { configLoop(); });
  LOG_INFO(kSyncLog, "cluster sync listening on port %d (%s)", port_,
           options_.insecure                               ? "plain text (--cluster_insecure)"
           : options_.mtls == sync::ClusterMtls::kShared ? "mTLS, shared certificate pinned"
                                                           : "mTLS, PKI");
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<SyncServer>> SyncServer::start(ConfigStore& store,
                                                              const SyncServerOptions& options) {
  auto server = std::make_unique<SyncServerImpl>(store, options);
  if (absl::Status st = server->init(); !st.ok()) {
    return st;
  }
  return std::unique_ptr<SyncServer>(std::move(server));
}

SyncServerStats SyncServerImpl::stats() const {
  SyncServerStats s;
  {
    absl::MutexLock lock(&mu_);
    s.streams_active = streams_.size();
  }
  s.streams_total = counters_.streams_total.load();
  s.snapshot_loads = counters_.snapshot_loads.load();
  s.load_failures = counters_.load_failures.load();
  s.encodes = counters_.encodes.load();
  s.pushes = counters_.pushes.load();
  s.chunks_sent = counters_.chunks_sent.load();
  s.acks = counters_.acks.load();
  s.nacks = counters_.nacks.load();
  s.delta_loads = counters_.delta_loads.load();
  s.delta_encodes = counters_.delta_encodes.load();
  s.delta_pushes = counters_.delta_pushes.load();
  s.full_pushes = counters_.full_pushes.load();
  s.bytes_sent = counters_.bytes_sent.load();
  s.liveness_drops = counters_.liveness_drops.load();
  s.refused = counters_.refused.load();
  s.shed = counters_.shed.load();
  s.syncing = syncing_.load();
  s.compat_encodes = counters_.compat_encodes.load();
  if (server_ != nullptr) {
    const wire::ServerStats t = server_->stats();
    s.connections_active = t.connections_active;
    s.connections_total = t.connections_total;
    s.tls_handshake_failures = t.handshake_failures;
    s.protocol_errors = t.protocol_errors;
  }
  return s;
}

std::optional<wire::GrpcStatus> SyncServerImpl::checkPeer(const wire::CallInfo& info,
                                                          std::vector<std::string>* groups,
                                                          std::vector<std::string>* credentials) {
  if (options_.insecure) {
    return std::nullopt;
  }
  if (info.peer_cert_pem.empty()) {
    // Without a certificate only an issued join token admits a DP (pki mode).
    const std::string* token = info.header(sync::kJoinTokenMetadata);
    if (options_.mtls != sync::ClusterMtls::kPki || options_.credentials == nullptr ||
        token == nullptr) {
      return rpcStatus(absl::StatusCode::kUnauthenticated,
                       "no client certificate (and no join token)");
    }
    const CredentialAuthority::Verdict v = options_.credentials->token(*token);
    if (!v.known) {
      return rpcStatus(absl::StatusCode::kUnauthenticated, "unknown join token");
    }
    if (!v.refusal.empty()) {
      return rpcStatus(absl::StatusCode::kUnauthenticated, v.refusal);
    }
    groups->push_back(v.group);
    credentials->push_back(v.id);
    return std::nullopt;
  }
  const std::string& pem = info.peer_cert_pem;
  if (options_.mtls == sync::ClusterMtls::kShared) {
    auto digest = sync::certificateSha256(pem);
    if (!digest.ok() || *digest != pinned_sha256_) {
      return rpcStatus(
          absl::StatusCode::kUnauthenticated,
          absl::StrCat("client certificate (sha256 ", digest.ok() ? digest->substr(0, 16) : "?",
                       "...) is not the cluster certificate (sha256 ",
                       pinned_sha256_.substr(0, 16), "...); --cluster_mtls=shared pins it"));
    }
    return std::nullopt;
  }
  // A certificate this control plane issued may have been revoked since (the CA still
  // verifies it; expiry is checked in the TLS handshake).
  if (options_.credentials != nullptr) {
    auto digest = sync::certificateSha256(pem);
    if (digest.ok()) {
      const CredentialAuthority::Verdict v = options_.credentials->certificate(*digest);
      if (v.known) {
        if (!v.refusal.empty()) {
          return rpcStatus(absl::StatusCode::kUnauthenticated, v.refusal);
        }
        credentials->push_back(v.id);
      }
    }
  }
  auto g = sync::certificateGroups(pem);
  if (g.ok()) {
    *groups = std::move(*g);
  }
  // A join token (metadata `portico-join-token`, --cluster_join_token on the DP) adds the
  // group it was issued for: an issued one (POST .../data-plane-tokens), or one of
  // --cluster_join_tokens, each compared in constant time.
  if (const std::string* value = info.header(sync::kJoinTokenMetadata)) {
    const std::string& token = *value;
    if (options_.credentials != nullptr) {
      const CredentialAuthority::Verdict v = options_.credentials->token(token);
      if (v.known) {
        if (!v.refusal.empty()) {
          return rpcStatus(absl::StatusCode::kUnauthenticated, v.refusal);
        }
        groups->push_back(v.group);
        credentials->push_back(v.id);
        return std::nullopt;
      }
    }
    const std::string* found = nullptr;
    for (const auto& [known, group] : options_.join_tokens) {
      if (known.size() == token.size() &&
          CRYPTO_memcmp(known.data(), token.data(), token.size()) == 0) {
        found = &group;
      }
    }
    if (found == nullptr) {
      return rpcStatus(absl::StatusCode::kUnauthenticated, "unknown join token");
    }
    groups->push_back(*found);
  }
  return std::nullopt;
}

wire::CallHandler* SyncServerImpl::newStream(wire::ServerCall* call,
                                             const wire::CallInfo& info) {
  std::vector<std::string> groups, credentials;
  std::optional<wire::GrpcStatus> refusal = checkPeer(info, &groups, &credentials);
  if (refusal.has_value()) {
    counters_.refused++;
    LOG_WARN(kSyncLog, "refusing data plane %s: %s", peerIp(info.peer), refusal->message);
  }
  absl::MutexLock lock(&mu_);
  auto* stream = new SyncStream(this, next_session_++, call, info.peer, std::move(groups),
                                std::move(credentials));
  streams_.insert(stream);
  counters_.streams_total++;
  // Under mu_, so shutdown() either sees this stream in streams_ or we see shutting_down_.
  if (!refusal.has_value() && shutting_down_) {
    refusal = rpcStatus(absl::StatusCode::kUnavailable, "control plane is shutting down");
  }
  stream->begin(std::move(refusal));
  return stream;
}

wire::CallHandler* SyncServerImpl::newReportStream(wire::ServerCall* call,
                                                   const wire::CallInfo& info) {
  std::vector<std::string> groups, credentials;
  std::optional<wire::GrpcStatus> refusal = checkPeer(info, &groups, &credentials);
  if (refusal.has_value()) {
    LOG_WARN(kSyncLog, "refusing vitals from %s: %s", peerIp(info.peer), refusal->message);
  }
  auto* stream = new ReportStream(options_, *options_.vitals, call, info.peer, std::move(groups));
  stream->begin(std::move(refusal));
  return stream;
}

bool SyncServerImpl::admit(SyncStream* stream, const std::string& group, uint64_t generation,
                           const std::string& hash) {
  if (options_.max_concurrent_syncs == 0) {
    return true;
  }
  absl::MutexLock lock(&mu_);
  auto g = groups_.find(group);
  if (g != groups_.end() && g->second.current != nullptr && g->second.deferred == 0 &&
      g->second.current->generation() == generation && g->second.current->hash() == hash) {
    return true;  // already current: an idle stream costs no sync
  }
  if (syncing_.load() >= options_.max_concurrent_syncs) {
    return false;
  }
  syncing_++;
  stream->holdsSlot() = true;
  return true;
}

void SyncServerImpl::releaseSlot(SyncStream* stream) {
  if (stream->holdsSlot().exchange(false)) {
    syncing_--;
  }
}

uint64_t SyncServerImpl::retryAfterMs() {
  // splitmix64 over a shared counter: cheap, thread-safe, spreads the refused DPs' retries.
  uint64_t z = (hint_seed_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  const uint64_t base = std::max<uint32_t>(1, options_.retry_after_ms);
  return base + z % (base + 1);
}

void SyncServerImpl::attach(SyncStream* stream) {
  absl::MutexLock lock(&mu_);
  if (shutting_down_) {
    return;
  }
  GroupState& g = groups_[stream->group()];
  g.streams.insert(stream);
  if (g.current != nullptr) {
    stream->offer(g.current);
  }
  if (g.current == nullptr || g.deferred > g.current->generation()) {
    const uint64_t wanted = g.deferred;
    g.deferred = 0;
    requestLoadLocked(stream->group(), wanted);
  }
}

void SyncServerImpl::detach(SyncStream* stream) {
  releaseSlot(stream);
  absl::MutexLock lock(&mu_);
  streams_.erase(stream);
  if (!stream->group().empty()) {
    auto it = groups_.find(stream->group());
    if (it != groups_.end()) {
      it->second.streams.erase(stream);
    }
    registry_.onDisconnect(stream->session(), stream->nodeId());
    LOG_INFO(kSyncLog, "node %s disconnected", stream->nodeId());
  }
}

SyncServer::CachePurgeOutcome SyncServerImpl::purgeCache(const std::string& group,
                                                         const std::string& cache_key,
                                                         bool lookup, absl::Duration wait) {
  uint64_t id = 0;
  {
    absl::MutexLock lock(&purge_mu_);
    id = next_purge_id_++;
    purges_[id] = CachePurgeOutcome{};
  }
  ControlPlaneMessage msg;
  sync::v1::CachePurge* purge = msg.mutable_cache_purge();
  purge->set_id(id);
  purge->set_cache_key(cache_key);
  purge->set_lookup(lookup);
  const auto bytes = std::make_shared<const std::string>(msg.SerializeAsString());
  uint32_t sent = 0;
  {
    absl::MutexLock lock(&mu_);
    auto g = groups_.find(group);
    if (g != groups_.end()) {
      for (SyncStream* stream : g->second.streams) {
        if (stream->purgeCapable()) {
          stream->sendControl(bytes);
          ++sent;
        }
      }
    }
  }
  absl::MutexLock lock(&purge_mu_);
  auto done = [this, id, sent]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(purge_mu_) {
    return purges_[id].answered >= sent;
  };
  purge_mu_.AwaitWithTimeout(absl::Condition(&done), wait);
  CachePurgeOutcome out = std::move(purges_[id]);
  purges_.erase(id);
  out.data_planes = sent;
  return out;
}

void SyncServerImpl::onPurgeResult(const sync::v1::CachePurgeResult& result) {
  absl::MutexLock lock(&purge_mu_);
  auto it = purges_.find(result.id());
  if (it == purges_.end()) {
    return;  // answered after the Admin API stopped waiting
  }
  ++it->second.answered;
  it->second.purged += result.purged();
  if (it->second.entry_json.empty() && !result.entry_json().empty()) {
    it->second.entry_json = result.entry_json();
  }
}

void SyncServerImpl::checkAhead(const std::string& group, const std::string& epoch,
                                uint64_t generation) {
  if (epoch.empty() || generation == 0) {
    return;
  }
  absl::MutexLock lock(&mu_);
  auto g = groups_.find(group);
  if (g != groups_.end() && g->second.current != nullptr &&
      (g->second.current->epoch() != epoch || g->second.current->generation() >= generation)) {
    return;  // another epoch (it gets the full snapshot anyway), or nothing we lack
  }
  uint64_t& wanted = ahead_[{group, epoch}];
  wanted = std::max(wanted, generation);
  cv_.Signal();
}

void SyncServerImpl::resolveAhead(const std::string& group, const std::string& epoch,
                                  uint64_t generation) {
  // The database decides: a lagging replica of ours is not a rewound history.
  absl::StatusOr<bool> started = store_.startNewEpochIfBehind(group, epoch, generation);
  if (!started.ok()) {
    LOG_WARN(kSyncLog, "group %s: cannot check whether a data plane's generation %d is ahead of "
             "the database: %s", group, generation, started.status().ToString());
    return;
  }
  if (*started) {
    LOG_WARN(kSyncLog, "group %s: a data plane runs generation %d of epoch %s, which the database "
             "has not reached (restored from a backup?); started a new epoch, every data plane "
             "gets the full config", group, generation, epoch);
  }
}

void SyncServerImpl::onStoreChange(const std::string& group, uint64_t generation) {
  {
    absl::MutexLock lock(&metrics_mu_);
    auto& times = commit_times_[groupName(group)];
    if (times.empty() || times.back().first < generation) {
      times.emplace_back(generation, std::chrono::steady_clock::now());
      if (times.size() > kCommitTimes) times.pop_front();
    }
  }
  absl::MutexLock lock(&mu_);
  requestLoadLocked(groupName(group), generation);
}

void SyncServerImpl::observeAck(const std::string& group, uint64_t generation) {
  std::chrono::steady_clock::time_point committed;
  {
    absl::MutexLock lock(&metrics_mu_);
    auto it = commit_times_.find(group);
    if (it == commit_times_.end()) return;
    auto t = std::find_if(it->second.begin(), it->second.end(),
                          [generation](const auto& e) { return e.first == generation; });
    if (t == it->second.end()) return;  // committed before this CP started, or long ago
    committed = t->second;
  }
  propagation_.observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - committed).count());
}

void SyncServerImpl::countNack(int code, const std::string& entity_type) {
  absl::MutexLock lock(&metrics_mu_);
  nack_reasons_[{nackCodeLabel(code), nackEntityLabel(entity_type)}]++;
}

void SyncServerImpl::writeMetrics(metrics::Writer& w) const {
  w.beginHistogram("portico_cp_config_propagation_seconds",
                   "From a config commit (as this CP learned of it) to a data plane's ACK of "
                   "that generation, per ACK.");
  propagation_.write(w);
  {
    absl::MutexLock lock(&metrics_mu_);
    w.beginCounter("portico_cp_sync_nack_reasons_total",
                   "Pushes rejected by data planes, by status code and the first error's "
                   "entity type.");
    for (const auto& [key, count] : nack_reasons_) {
      w.sample(static_cast<double>(count), {{"code", key.first}, {"entity_type", key.second}});
    }
  }
  {
    absl::MutexLock lock(&mu_);
    w.beginGauge("portico_cp_config_generation",
                 "The newest config generation this control plane has read, per group (read while a "
                 "data plane of the group is connected to it).");
    for (const auto& [group, state] : groups_) {
      if (state.current != nullptr) {
        w.sample(static_cast<double>(state.current->generation()), {{"group", group}});
      }
    }
  }
  w.beginGauge("portico_cp_data_plane_generation",
               "The config generation each connected data plane runs.");
  for (const NodeStatus& n : registry_.list()) {
    if (n.connected) {
      w.sample(static_cast<double>(n.applied_generation),
               {{"node_id", n.node_id}, {"hostname", n.hostname}, {"group", n.group}});
    }
  }
}

void SyncServerImpl::requestLoadLocked(const std::string& group, uint64_t generation) {
  if (stop_) {
    return;
  }
  auto g = groups_.find(group);
  if (g != groups_.end() && g->second.current != nullptr &&
      g->second.current->generation() >= generation) {
    return;  // already have it (a late or duplicate notification, or a Hello)
  }
  if (generation > 0 && (g == groups_.end() || g->second.streams.empty())) {
    // No DP of this group is connected here: a read, hash and encode per commit would serve
    // nobody (during a sync tool's burst into a CP without DPs that was a third of the CP's
    // CPU and five statements per commit). The first DP to attach asks for it.
    uint64_t& deferred = groups_[group].deferred;
    deferred = std::max(deferred, generation);
    return;
  }
  auto [it, inserted] = loads_.try_emplace(group);
  it->second.wanted_generation = std::max(it->second.wanted_generation, generation);
  // An entry already waiting out a retry delay keeps it: the store is still down. A new one
  // waits until min_load_interval after the group's last read began: during a burst of
  // writes (a sync tool's thousand requests, ~5 per group commit) one read then covers many
  // generations instead of one each (32% of the CP's time went to per-generation reads and
  // hashes in porticoctl's burst.yml sync). A write after a quiet spell is read at once.
  if (inserted && g != groups_.end()) {
    it->second.not_before =
        g->second.last_load + absl::Milliseconds(options_.min_load_interval_ms);
  }
  cv_.Signal();
}

void SyncServerImpl::requestPayload(const SyncStream::Prep& prep) {
  absl::MutexLock lock(&mu_);
  requestPayloadLocked(prep);
}

void SyncServerImpl::requestPayloadLocked(const SyncStream::Prep& prep) {
  if (stop_) {
    return;
  }
  preps_.insert(PrepKey{prep.target->group(), prep.target->generation(),
                        prep.full ? 0 : prep.base_generation, prep.compat_class});
  cv_.Signal();
}

absl::Duration SyncServerImpl::retryDelay(uint32_t attempts) {
  const uint64_t cap = options_.store_retry_max_ms;
  const uint64_t base = std::max<uint64_t>(1, options_.store_retry_initial_ms);
  const uint64_t ceiling = std::min<uint64_t>(cap, base << std::min<uint32_t>(attempts, 20));
  // Full jitter, but never below the base: a down database is not hammered.
  std::uniform_int_distribution<uint64_t> dist(base, std::max(base, ceiling));
  return absl::Milliseconds(dist(rng_));
}

void SyncServerImpl::configLoop() {
  const absl::Duration sweep_every =
      absl::Milliseconds(std::max<uint32_t>(50, options_.heartbeat_interval_ms / 2));
  while (true) {
    std::string group;
    LoadRequest request;
    std::optional<PrepKey> prep;
    std::optional<std::pair<std::pair<std::string, std::string>, uint64_t>> ahead;
    {
      absl::MutexLock lock(&mu_);
      while (true) {
        if (stop_) {
          return;
        }
        const absl::Time now = absl::Now();
        if (now >= next_sweep_) {
          break;  // liveness sweep below, without mu_
        }
        // Loads (new generations) go before payload preparation: a prepared payload of an
        // outdated generation would be wasted.
        absl::Time earliest = next_sweep_;
        auto due = loads_.end();
        for (auto it = loads_.begin(); it != loads_.end(); ++it) {
          if (it->second.not_before <= now) {
            due = it;
            break;
          }
          earliest = std::min(earliest, it->second.not_before);
        }
        if (due != loads_.end()) {
          group = due->first;
          request = due->second;
          loads_.erase(due);
          groups_[group].last_load = now;
          break;
        }
        if (!preps_.empty()) {
          prep = *preps_.begin();
          preps_.erase(preps_.begin());
          break;
        }
        if (!ahead_.empty()) {
          ahead = *ahead_.begin();
          ahead_.erase(ahead_.begin());
          break;
        }
        cv_.WaitWithDeadline(&mu_, earliest);
      }
    }
    if (absl::Now() >= next_sweep_) {
      next_sweep_ = absl::Now() + sweep_every;
      sweepLiveness();
      if (group.empty() && !prep.has_value() && !ahead.has_value()) {
        continue;
      }
    }
    if (prep.has_value()) {
      prepare(*prep);
      continue;
    }
    if (ahead.has_value()) {
      resolveAhead(ahead->first.first, ahead->first.second, ahead->second);
      continue;
    }

    // Store reads and encoding happen without any lock: streams keep flowing meanwhile.
    const absl::Status st = loadGroup(group);
    if (!st.ok()) {
      counters_.load_failures++;
      absl::MutexLock lock(&mu_);
      if (st.code() == absl::StatusCode::kNotFound) {
        // No such control plane (never created, or deleted): its DPs are told so, in one
        // line, and keep retrying with backoff, so they join once it exists.
        auto g = groups_.find(group);
        const size_t n = g == groups_.end() ? 0 : g->second.streams.size();
        LOG_WARN(kSyncLog, "control plane '%s' does not exist; refusing its %d data plane(s)", group,
                 n);
        if (g != groups_.end()) {
          for (SyncStream* stream : g->second.streams) {
            counters_.refused++;
            stream->finish(rpcStatus(
                absl::StatusCode::kNotFound,
                absl::StrCat("control plane '", group,
                             "' does not exist (create it with POST /control-planes, or fix "
                             "--control_plane)")));
          }
        }
        continue;
      }
      const uint32_t attempts = request.attempts + 1;
      const absl::Duration delay = retryDelay(attempts);
      if (attempts == 1 || attempts % 10 == 0) {
        LOG_WARN(kSyncLog, "cannot load group %s (attempt %d): %s; retrying in %s", group, attempts,
                 st.ToString(), absl::FormatDuration(delay));
      }
      auto [it, inserted] = loads_.try_emplace(group);
      it->second.wanted_generation =
          std::max(it->second.wanted_generation, request.wanted_generation);
      it->second.attempts = attempts;
      it->second.not_before = absl::Now() + delay;
      continue;
    }
    if (request.attempts > 0) {
      LOG_INFO(kSyncLog, "loaded group %s after %d failed attempts", group, request.attempts);
    }
  }
}

absl::Status SyncServerImpl::loadGroup(const std::string& group) {
  auto snap = snapshots_.find(group);
  if (snap == snapshots_.end() || options_.delta_window == 0) {
    return loadFull(group);
  }
  config::v1::Snapshot& current = *snap->second;
  const uint64_t base_generation = current.generation();
  std::string base_hash;
  {
    absl::MutexLock lock(&mu_);
    const GroupState& g = groups_[group];
    if (g.current == nullptr || g.current->generation() != base_generation) {
      base_hash.clear();
    } else {
      base_hash = g.current->hash();
    }
  }
  if (base_hash.empty()) {
    return loadFull(group);
  }
  const absl::Time start = absl::Now();
  absl::StatusOr<ChangeSet> changes =
      store_.loadChanges(group, base_generation, options_.max_delta_entities);
  if (!changes.ok()) {
    const absl::StatusCode code = changes.status().code();
    if (code == absl::StatusCode::kOutOfRange || code == absl::StatusCode::kUnimplemented) {
      if (code == absl::StatusCode::kOutOfRange) {
        LOG_INFO(kSyncLog, "group %s: no delta from generation %d (%s); reading it in full", group,
                 base_generation, std::string(changes.status().message()));
      }
      return loadFull(group);
    }
    return changes.status();
  }
  counters_.delta_loads++;
  if (changes->epoch != current.epoch()) {
    LOG_INFO(kSyncLog, "group %s: new epoch %s; reading it in full", group, changes->epoch);
    return loadFull(group);
  }
  if (changes->generation <= base_generation) {
    return absl::OkStatus();  // a late or duplicate notification
  }
  sync::v1::SnapshotDelta delta;
  delta.set_base_generation(base_generation);
  delta.set_generation(changes->generation);
  delta.set_group(group);
  *delta.mutable_upserts() = std::move(changes->upserts);
  for (auto& [type, id] : changes->deletes) {
    sync::v1::EntityRef* ref = delta.add_deletes();
    ref->set_entity_type(type);
    ref->set_entity_id(id);
  }
  // The same code the DP runs: our in-memory copy stays exactly a fresh read.
  sync::canonicalize(delta.mutable_upserts());
  if (absl::Status st = sync::applyDelta(&current, delta); !st.ok()) {
    LOG_ERROR(kSyncLog, "group %s: cannot apply delta %d->%d (%s); reading it in full", group,
              base_generation, changes->generation, st.ToString());
    snapshots_.erase(snap);
    return loadFull(group);
  }
  auto hash = sync::hashSnapshot(current);
  if (!hash.ok()) {
    snapshots_.erase(snap);
    return hash.status();
  }
  auto encoded = sync::encodeDelta(delta, base_hash, *hash);
  if (!encoded.ok()) {
    snapshots_.erase(snap);
    return encoded.status();
  }
  counters_.delta_encodes++;
  LOG_INFO(kSyncLog, "group %s generation %d: delta from %d, %d entities changed, %d bytes (%s)",
           group, changes->generation, base_generation,
           sync::entityCount(delta.upserts()) + delta.deletes_size(), (*encoded)->encoded_size,
           absl::FormatDuration(absl::Now() - start));
  auto target = std::make_shared<Target>(group, changes->generation, *hash,
                                         pluginNamesOf(current), current.epoch());
  target->addDelta(std::move(*encoded));
  absl::MutexLock lock(&mu_);
  publishLocked(group, std::move(target));
  return absl::OkStatus();
}

absl::Status SyncServerImpl::loadFull(const std::string& group) {
  absl::StatusOr<config::v1::Snapshot> snapshot = store_.loadSnapshot(group);
  if (!snapshot.ok()) {
    return snapshot.status();
  }
  counters_.snapshot_loads++;
  if (snapshot->group().empty()) {
    snapshot->set_group(group);
  }
  sync::canonicalize(&*snapshot);
  const absl::Time start = absl::Now();
  auto encoded = sync::encodeSnapshot(*snapshot);
  if (!encoded.ok()) {
    LOG_ERROR(kSyncLog, "cannot encode group %s generation %d: %s", group, snapshot->generation(),
              encoded.status().ToString());
    return absl::OkStatus();  // not retryable; the next change tries again
  }
  counters_.encodes++;
  LOG_INFO(kSyncLog, "group %s generation %d: %d bytes, %d compressed, %d chunks, hash %s (%s)",
           group, (*encoded)->generation, (*encoded)->payload_size, (*encoded)->encoded_size,
           (*encoded)->messages.size(), shortHash((*encoded)->config_hash),
           absl::FormatDuration(absl::Now() - start));
  auto target =
      std::make_shared<Target>(group, (*encoded)->generation, (*encoded)->config_hash,
                               pluginNamesOf(*snapshot), snapshot->epoch());
  target->setFull(*encoded);
  snapshots_[group] = std::make_unique<config::v1::Snapshot>(std::move(*snapshot));
  absl::MutexLock lock(&mu_);
  publishLocked(group, std::move(target));
  return absl::OkStatus();
}

void SyncServerImpl::prepare(const PrepKey& key) {
  TargetSharedPtr target;
  std::string base_hash;
  {
    absl::MutexLock lock(&mu_);
    GroupState& g = groups_[key.group];
    if (g.current == nullptr || g.current->generation() != key.generation) {
      return;  // outdated: the streams were offered the newer target
    }
    target = g.current;
    if (key.base != 0) {
      for (const auto& [gen, hash] : g.window) {
        if (gen == key.base) {
          base_hash = hash;
        }
      }
    }
  }
  auto snap = snapshots_.find(key.group);
  if (!key.compat_class.empty() && target->compatIssues(key.compat_class) != nullptr) {
    // Two older DPs asked before the first encoding finished: it is done, only repump.
  } else if (!key.compat_class.empty()) {
    if (snap == snapshots_.end() || snap->second->generation() != key.generation) {
      return;
    }
    // Once per (generation, class), whatever the number of older DPs.
    config::v1::Snapshot copy = *snap->second;
    size_t total = 0;
    auto issues = std::make_shared<const std::vector<CompatibilityIssue>>(
        downgradeSnapshot(&copy, key.compat_class, options_.compat_rules, 100, &total));
    auto encoded = sync::encodeSnapshot(copy);
    if (!encoded.ok()) {
      LOG_ERROR(kSyncLog, "group %s generation %d: cannot encode for compatibility class %s: %s",
                key.group, key.generation, key.compat_class, encoded.status().ToString());
      return;
    }
    counters_.compat_encodes++;
    LOG_INFO(kSyncLog, "group %s generation %d for compatibility class %s: %d values stripped",
             key.group, key.generation, key.compat_class, total);
    target->setCompat(key.compat_class, std::move(*encoded), std::move(issues));
  } else if (key.base == 0) {
    if (snap == snapshots_.end() || snap->second->generation() != key.generation) {
      return;
    }
    auto encoded = sync::encodeSnapshot(*snap->second);
    if (!encoded.ok() || (*encoded)->config_hash != target->hash()) {
      LOG_ERROR(kSyncLog, "group %s generation %d: full encoding failed or differs from its hash",
                key.group, key.generation);
      return;
    }
    counters_.encodes++;
    target->setFull(std::move(*encoded));
  } else if (base_hash.empty()) {
    target->markNoDelta(key.base);  // outside the retained window
  } else {
    absl::StatusOr<ChangeSet> changes =
        store_.loadChanges(key.group, key.base, options_.max_delta_entities);
    if (!changes.ok() || changes->generation != key.generation) {
      // Out of range, store trouble or the group moved on: a full snapshot is always right.
      target->markNoDelta(key.base);
    } else {
      counters_.delta_loads++;
      sync::v1::SnapshotDelta delta;
      delta.set_base_generation(key.base);
      delta.set_generation(changes->generation);
      delta.set_group(key.group);
      *delta.mutable_upserts() = std::move(changes->upserts);
      sync::canonicalize(delta.mutable_upserts());
      for (auto& [type, id] : changes->deletes) {
        sync::v1::EntityRef* ref = delta.add_deletes();
        ref->set_entity_type(type);
        ref->set_entity_id(id);
      }
      auto encoded = sync::encodeDelta(delta, base_hash, target->hash());
      if (encoded.ok()) {
        counters_.delta_encodes++;
        target->addDelta(std::move(*encoded));
      } else {
        target->markNoDelta(key.base);
      }
    }
  }
  absl::MutexLock lock(&mu_);
  repumpGroupLocked(key.group);
}

void SyncServerImpl::repumpGroupLocked(const std::string& group) {
  auto it = groups_.find(group);
  if (it == groups_.end()) {
    return;
  }
  for (SyncStream* stream : it->second.streams) {
    stream->repump();
  }
}

void SyncServerImpl::publishLocked(const std::string& group, TargetSharedPtr target) {
  GroupState& g = groups_[group];
  if (g.current != nullptr) {
    if (target->generation() < g.current->generation()) {
      return;  // an older read finished late
    }
    if (target->generation() == g.current->generation() &&
        target->hash() == g.current->hash()) {
      return;
    }
  }
  g.current = target;
  if (g.deferred <= target->generation()) {
    g.deferred = 0;
  }
  g.window.emplace_back(target->generation(), target->hash());
  while (g.window.size() > std::max<uint32_t>(1, options_.delta_window)) {
    g.window.pop_front();
  }
  LOG_INFO(kSyncLog, "group %s now at generation %d; offering it to %d streams", group,
           target->generation(), g.streams.size());
  for (SyncStream* stream : g.streams) {
    stream->offer(target);
  }
}

void SyncServerImpl::sweepLiveness() {
  const absl::Duration limit =
      absl::Milliseconds(uint64_t{options_.heartbeat_interval_ms} *
                         std::max<uint32_t>(1, options_.missed_heartbeats_offline));
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&mu_);
  for (SyncStream* stream : streams_) {
    if (now - stream->lastSeen() > limit) {
      counters_.liveness_drops++;
      LOG_WARN(kSyncLog, "node %s missed %d heartbeats; dropping its stream (offline)",
               stream->nodeId().empty() ? "(no hello)" : stream->nodeId(),
               options_.missed_heartbeats_offline);
      stream->finish(rpcStatus(absl::StatusCode::kUnavailable, "missed heartbeats"));
      continue;
    }
    // A credential revoked (or expired) since the stream opened: the DP is dropped now and
    // refused when it reconnects.
    if (options_.credentials != nullptr) {
      for (const std::string& id : stream->credentials()) {
        if (std::string why = options_.credentials->invalidated(id); !why.empty()) {
          counters_.refused++;
          LOG_WARN(kSyncLog, "dropping node %s: %s",
                   stream->nodeId().empty() ? "(no hello)" : stream->nodeId(), why);
          stream->finish(rpcStatus(absl::StatusCode::kUnauthenticated, why));
          break;
        }
      }
    }
  }
}

void SyncServerImpl::shutdown() {
  {
    absl::MutexLock lock(&sink_->mu);
    sink_->target = nullptr;
  }
  {
    absl::MutexLock lock(&mu_);
    if (shutting_down_) {
      return;
    }
    shutting_down_ = true;
    stop_ = true;
    cv_.SignalAll();
    // Tell every DP now, so it reconnects (to another replica) instead of timing out.
    for (SyncStream* stream : streams_) {
      stream->finish(rpcStatus(absl::StatusCode::kUnavailable, "control plane shutting down"));
    }
  }
  if (config_thread_.joinable()) {
    config_thread_.join();
  }
  if (server_ != nullptr) {
    // Streams whose peer does not read any more are cut off after 2 s.
    server_->shutdown(2000);
  }
  absl::MutexLock lock(&mu_);
  auto no_streams = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return streams_.empty(); };
  if (!mu_.AwaitWithTimeout(absl::Condition(&no_streams), absl::Seconds(5))) {
    LOG_ERROR(kSyncLog, "%d streams still open after shutdown", streams_.size());
  }
  LOG_INFO(kSyncLog, "cluster sync stopped");
}

}  // namespace portico::cp
