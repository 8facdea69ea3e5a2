#include "data_plane/sync_client/sync_client.h"

#include <openssl/rand.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/sync/delta.h"
#include "common/sync/grpc_args.h"
#include "common/sync/grpc_status.h"
#include "data_plane/sync_client/backoff.h"
#include "data_plane/sync_client/snapshot_cache.h"
#include "data_plane/sync_client/vitals_stream.h"
#include "grpcpp/grpcpp.h"
#include "portico/sync/v1/sync.grpc.pb.h"

namespace portico::dp {
namespace {

using sync::v1::ControlPlaneMessage;
using sync::v1::DataPlaneMessage;

constexpr char kLog[] = "sync";
constexpr int kMaxErrorsInNack = 1000;  // keeps a NACK far below the CP's 4 MiB receive limit
constexpr uint32_t kMinHeartbeatMs = 100;
constexpr uint32_t kDefaultHeartbeatMs = 5000;

absl::StatusOr<std::string> readFile(const std::string& what, const std::string& path) {
  if (path.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cluster TLS needs a ", what, " (--cluster_cert and --cluster_key, plus --cluster_ca "
        "with --cluster_mtls=pki), or --cluster_insecure for plain text"));
  }
  return sync::readPemFile(what, path);
}

std::string localHostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof(buf) - 1) != 0) {
    return "unknown";
  }
  return buf;
}

std::string shortHash(const std::string& h) { return h.substr(0, 12); }

}  // namespace

std::string generateUuid() {
  unsigned char b[16];
  if (RAND_bytes(b, sizeof(b)) != 1) {
    // OpenSSL's CSPRNG failing is near impossible; fall back to a seeded PRNG, not a crash.
    std::random_device rd;
    for (auto& x : b) {
      x = static_cast<unsigned char>(rd());
    }
  }
  b[6] = (b[6] & 0x0f) | 0x40;  // version 4
  b[8] = (b[8] & 0x3f) | 0x80;  // RFC 4122 variant
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) {
      out.push_back('-');
    }
    out.push_back(kHex[b[i] >> 4]);
    out.push_back(kHex[b[i] & 0xf]);
  }
  return out;
}

namespace {

// A DP keeps its node id across restarts (one entry in the fleet, not one per restart): it is
// stored beside the config cache as "<cache>.node_id". Without a cache, or when the file
// cannot be read or written, a fresh UUID is used.
std::string persistentNodeId(const std::string& cache_path) {
  if (cache_path.empty()) {
    return generateUuid();
  }
  const std::string path = cache_path + ".node_id";
  {
    std::ifstream in(path);
    std::string id;
    if (in && std::getline(in, id) && id.size() == 36 &&
        id.find_first_not_of("0123456789abcdef-") == std::string::npos) {
      return id;
    }
  }
  const std::string id = generateUuid();
  std::ofstream out(path, std::ios::trunc);
  out << id << "\n";
  return id;
}

}  // namespace

class SyncClient::Impl {
 public:
  Impl(Options options, SharedApplyFn apply)
      : options_(std::move(options)), apply_(std::move(apply)) {
    if (options_.node_id.empty()) {
      options_.node_id = persistentNodeId(options_.cache_path);
    }
    if (options_.hostname.empty()) {
      options_.hostname = localHostname();
    }
  }

  ~Impl() { stop(); }

  // Reads the TLS material from its files into creds_. Called at start and again before
  // every connection attempt, so a DP given a new certificate (rotation) uses it at its next
  // connect without a restart; a file that became unreadable keeps the previous material.
  absl::Status loadCredentials() {
    if (options_.insecure) {
      creds_ = grpc::InsecureChannelCredentials();
    } else {
      // pki mode with an issued join token: the CA certificate is all a DP needs.
      const bool token_only = options_.mtls == sync::ClusterMtls::kPki &&
                              !options_.join_token.empty() && options_.cert_path.empty() &&
                              options_.key_path.empty();
      absl::StatusOr<std::string> cert = std::string(), key = std::string();
      if (!token_only) {
        cert = readFile("cluster certificate", options_.cert_path);
        if (!cert.ok()) {
          return cert.status();
        }
        key = readFile("cluster key", options_.key_path);
        if (!key.ok()) {
          return key.status();
        }
        // A file that is no certificate would only show as failed handshakes: say so now.
        if (auto digest = sync::certificateSha256(*cert); !digest.ok()) {
          return absl::InvalidArgumentError(absl::StrCat(
              "cluster certificate ", options_.cert_path, ": ", digest.status().message()));
        }
      }
      grpc::SslCredentialsOptions ssl;
      ssl.pem_cert_chain = *cert;
      ssl.pem_private_key = *key;
      if (options_.mtls == sync::ClusterMtls::kShared) {
        // Kong's shared mode: our own (self-signed) certificate is the only trust anchor, so
        // the CP must present it; the pin check after the handshake makes that exact.
        auto digest = sync::certificateSha256(*cert);
        auto name = sync::certificateName(*cert);
        if (!digest.ok() || !name.ok()) {
          return absl::InvalidArgumentError(absl::StrCat(
              "cluster certificate ", options_.cert_path, ": ",
              (!digest.ok() ? digest.status() : name.status()).message()));
        }
        pinned_sha256_ = *digest;
        ssl.pem_root_certs = *cert;
        if (options_.server_name.empty()) {
          options_.server_name = *name;
        }
      } else {
        auto ca = readFile("cluster CA", options_.ca_path);
        if (!ca.ok()) {
          return ca.status();
        }
        ssl.pem_root_certs = *ca;
      }
      creds_ = grpc::SslCredentials(ssl);
    }
    return absl::OkStatus();
  }

  absl::Status start() {
    if (options_.cp_address.empty()) {
      return absl::InvalidArgumentError("cp_address is required");
    }
    if (absl::Status st = loadCredentials(); !st.ok()) {
      return st;
    }
    {
      absl::MutexLock lock(&mu_);
      if (started_) {
        return absl::FailedPreconditionError("SyncClient already started");
      }
      started_ = true;
    }
    applyCache();
    thread_ = std::thread([this] { run(); });
    return absl::OkStatus();
  }

  void stop() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
      if (context_ != nullptr) {
        context_->TryCancel();
      }
    }
    if (thread_.joinable()) {
      thread_.join();
    }
  }

  const std::string& nodeId() const { return options_.node_id; }

  State state() const {
    absl::MutexLock lock(&mu_);
    return state_;
  }

 private:
  // Per-stream state shared by the sync thread (reads, ACK/NACK) and the heartbeat thread.
  struct Session {
    grpc::ClientReaderWriter<DataPlaneMessage, ControlPlaneMessage>* stream = nullptr;
    absl::Mutex write_mu;  // one Write at a time; a Read may run concurrently
    absl::Mutex mu;
    bool over ABSL_GUARDED_BY(mu) = false;
    uint32_t interval_ms ABSL_GUARDED_BY(mu) = kDefaultHeartbeatMs;
  };

  void applyCache() {
    if (options_.cache_path.empty()) {
      return;
    }
    auto cached = loadSnapshotCache(options_.cache_path, options_.max_snapshot_bytes);
    if (!cached.ok()) {
      if (cached.status().code() != absl::StatusCode::kNotFound) {
        LOG_WARN(kLog, "ignoring config cache: %s", cached.status().ToString());
      }
      return;
    }
    config::FieldErrors errors;
    auto shared = std::make_shared<const config::v1::Snapshot>(std::move(cached->snapshot));
    absl::Status st = callApply(shared, cached->key_auth, cached->config_hash, &errors);
    if (!st.ok()) {
      LOG_WARN(kLog, "cached generation %d does not apply (%s); waiting for the control plane",
               cached->generation, st.ToString());
      return;
    }
    LOG_INFO(kLog, "serving cached generation %d (%s) from %s", cached->generation,
             shortHash(cached->config_hash), options_.cache_path);
    current_ = std::move(shared);
    current_key_auth_ = std::move(cached->key_auth);
    absl::MutexLock lock(&mu_);
    state_.generation = cached->generation;
    state_.config_hash = cached->config_hash;
    state_.from_cache = true;
    state_.applies++;
  }

  // ApplyFn is the embedder's code; a throw there must not take the sync thread down.
  absl::Status callApply(const std::shared_ptr<const config::v1::Snapshot>& snapshot,
                         std::shared_ptr<const config::KeyAuthTable> key_auth,
                         const std::string& hash, config::FieldErrors* errors) {
    if (key_auth == nullptr) {
      key_auth = config::KeyAuthTable::empty();
    }
    try {
      return apply_(snapshot, std::move(key_auth), hash, errors);
    } catch (const std::exception& e) {
      return absl::InternalError(absl::StrCat("apply threw: ", e.what()));
    } catch (...) {
      return absl::InternalError("apply threw");
    }
  }

  void run() {
    Backoff backoff(absl::Milliseconds(options_.backoff_initial_ms),
                    absl::Milliseconds(options_.backoff_max_ms));
    bool in_outage = false;  // the current burst of failures has been logged
    uint64_t failed_attempts = 0;
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        if (stopping_) {
          return;
        }
      }
      bool connected = false;
      const grpc::Status status = session(&connected, in_outage, failed_attempts);
      {
        absl::MutexLock lock(&mu_);
        state_.connected = false;
        if (stopping_) {
          return;
        }
        if (!connected) {
          state_.connect_failures++;
        }
      }
      // A refusal (no such control plane, a revoked credential, a group the certificate does
      // not allow) is not a connection that worked: back off, and say it once per reason.
      const grpc::StatusCode code = status.error_code();
      const bool refused = code == grpc::StatusCode::NOT_FOUND ||
                           code == grpc::StatusCode::PERMISSION_DENIED ||
                           code == grpc::StatusCode::UNAUTHENTICATED ||
                           code == grpc::StatusCode::FAILED_PRECONDITION ||
                           code == grpc::StatusCode::INVALID_ARGUMENT;
      if (connected && !refused) {
        backoff.reset();
        in_outage = true;
        failed_attempts = 0;
        last_refusal_.clear();
        LOG_WARN(kLog, "stream to control plane %s ended (code %d: %s); reconnecting",
                 options_.cp_address, static_cast<int>(code), status.error_message());
      } else if (refused) {
        ++failed_attempts;
        in_outage = true;
        if (status.error_message() != last_refusal_) {
          last_refusal_ = status.error_message();
          LOG_ERROR(kLog, "control plane %s refused this data plane: %s; retrying with backoff",
                    options_.cp_address, last_refusal_);
        }
      } else {
        ++failed_attempts;
        if (!in_outage) {
          // Logged once per burst of attempts; the recovery line reports how many it took.
          LOG_WARN(kLog, "cannot reach control plane %s: %s; retrying with backoff",
                   options_.cp_address, status.error_message());
          in_outage = true;
        }
      }
      absl::Duration delay = backoff.next();
      if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED && retry_after_ms_ > 0) {
        // The CP is shedding load: wait at least its hint (plus jitter up to half of it, so
        // the refused DPs do not come back together), whatever our own backoff says.
        std::uniform_int_distribution<uint64_t> jitter(0, retry_after_ms_ / 2);
        delay = std::max(delay, absl::Milliseconds(retry_after_ms_ + jitter(rng_)));
        LOG_DEBUG(kLog, "control plane is busy; retrying in %s", absl::FormatDuration(delay));
        absl::MutexLock lock(&mu_);
        state_.retry_hints++;
        state_.last_retry_after_ms = retry_after_ms_;
      }
      absl::MutexLock lock(&mu_);
      auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
      mu_.AwaitWithTimeout(absl::Condition(&stopping), delay);
    }
  }

  // One stream, from Hello to its end. Sets *connected once the CP answered Hello.
  grpc::Status session(bool* connected, bool& in_outage, uint64_t failed_attempts) {
    grpc::ChannelArguments args;
    // A private subchannel per attempt: our backoff decides when to dial, not a subchannel
    // shared with (and backing off for) an earlier, failed channel.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetMaxReceiveMessageSize(4 << 20);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 20000);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
    // common/sync/grpc_args.h: no BDP probes, a fixed 1 MiB receive window.
    args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
    args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, sync::kClientLookaheadBytes);
    sync::forEachGrpcArgFromEnv("PORTICO_SYNC_CLIENT_GRPC_ARGS",
                                [&](const std::string& k, int v) { args.SetInt(k, v); });
    if (!options_.server_name.empty()) {
      args.SetSslTargetNameOverride(options_.server_name);
    }
    if (absl::Status st = loadCredentials(); !st.ok()) {
      LOG_WARN(kLog, "cannot reload the cluster TLS material (%s); using what was loaded before",
               st.message());
    }
    auto channel = grpc::CreateCustomChannel(options_.cp_address, creds_, args);
    auto stub = sync::v1::ConfigSync::NewStub(channel);
    grpc::ClientContext context;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) {
        return grpc::Status::CANCELLED;
      }
      context_ = &context;
    }
    if (!options_.join_token.empty()) {
      context.AddMetadata(sync::kJoinTokenMetadata, options_.join_token);
    }
    auto stream = stub->Sync(&context);
    Session session;
    session.stream = stream.get();

    DataPlaneMessage hello_msg;
    {
      sync::v1::Hello* hello = hello_msg.mutable_hello();
      hello->set_node_id(options_.node_id);
      hello->set_hostname(options_.hostname);
      hello->set_group(options_.group);
      hello->set_version(options_.version);
      hello->add_capabilities("zstd");
      if (options_.deltas) {
        hello->add_capabilities("delta");
      }
      hello->add_capabilities("plugin-set");
      if (options_.cache_purge) {
        hello->add_capabilities("cache-purge");
      }
      for (const std::string& plugin : options_.plugins) {
        hello->add_plugins(plugin);
      }
      for (const auto& [k, v] : options_.labels) {
        (*hello->mutable_labels())[k] = v;
      }
      if (current_ != nullptr) {
        hello->set_epoch(current_->epoch());
      }
      absl::MutexLock lock(&mu_);
      hello->set_generation(state_.generation);
      hello->set_config_hash(state_.config_hash);
    }
    std::thread heartbeat;
    std::unique_ptr<VitalsStream> vitals;
    std::thread vitals_thread;
    if (write(session, hello_msg)) {
      sync::Reassembler reassembler(sync::ReassemblerOptions{
          .max_snapshot_bytes = options_.max_snapshot_bytes, .split_key_auth = true});
      ControlPlaneMessage msg;
      while (stream->Read(&msg)) {
        {
          absl::MutexLock lock(&mu_);
          state_.last_contact_unix_ms = absl::ToUnixMillis(absl::Now());
        }
        switch (msg.kind_case()) {
          case ControlPlaneMessage::kHelloReply: {
            if (!pinned_sha256_.empty() && !peerIsPinned(context)) {
              // Only a holder of the shared key can present it; this is defence in depth
              // for a shared certificate that is itself a CA.
              LOG_ERROR(kLog, "control plane %s does not present the shared cluster "
                        "certificate; disconnecting", options_.cp_address);
              context.TryCancel();
              break;
            }
            if (msg.hello_reply().compatibility_issues_size() > 0 && !*connected) {
              LOG_WARN(kLog, "control plane %s strips %d field(s) this older version does not "
                       "know (first: %s %s.%s)", options_.cp_address,
                       msg.hello_reply().compatibility_issues_size(),
                       msg.hello_reply().compatibility_issues(0).id(),
                       msg.hello_reply().compatibility_issues(0).entity_type(),
                       msg.hello_reply().compatibility_issues(0).field());
            }
            const uint32_t interval =
                std::max(kMinHeartbeatMs, msg.hello_reply().heartbeat_interval_ms());
            {
              absl::MutexLock lock(&session.mu);
              session.interval_ms = interval;
            }
            if (!*connected) {
              *connected = true;
              if (in_outage) {
                if (last_refusal_.empty()) {  // a refusal loop logs its reason once, not this
                  LOG_INFO(kLog, "connected to control plane %s after %d failed attempts",
                           options_.cp_address, failed_attempts);
                }
                in_outage = false;
              } else {
                LOG_INFO(kLog, "connected to control plane %s (version %s) as node %s",
                         options_.cp_address, msg.hello_reply().cp_version(), options_.node_id);
              }
              {
                absl::MutexLock lock(&mu_);
                state_.connected = true;
                state_.connects++;
                state_.heartbeat_interval_ms = interval;
              }
              heartbeat = std::thread([this, &session] { heartbeatLoop(session); });
              if (options_.vitals != nullptr) {
                // Vitals ride the same connection, on their own stream (Report).
                vitals = std::make_unique<VitalsStream>(
                    channel,
                    VitalsStream::Options{options_.node_id, options_.group, vitals_instance_,
                                          options_.join_token},
                    *options_.vitals);
                vitals_thread = std::thread([&vitals] { vitals->run(); });
              }
            }
            break;
          }
          case ControlPlaneMessage::kChunk:
            onChunk(session, reassembler, msg.chunk());
            break;
          case ControlPlaneMessage::kCachePurge:
            if (options_.cache_purge) {
              DataPlaneMessage reply;
              *reply.mutable_cache_purge_result() = options_.cache_purge(msg.cache_purge());
              reply.mutable_cache_purge_result()->set_id(msg.cache_purge().id());
              write(session, reply);
            }
            break;
          case ControlPlaneMessage::KIND_NOT_SET:
            break;  // a newer CP's message kind; ignored for compatibility
        }
      }
    }
    {
      absl::MutexLock lock(&session.mu);
      session.over = true;
    }
    if (heartbeat.joinable()) {
      heartbeat.join();
    }
    if (vitals != nullptr) {
      vitals->cancel();
      vitals_thread.join();
    }
    grpc::Status status = stream->Finish();
    retry_after_ms_ = 0;
    const auto& trailers = context.GetServerTrailingMetadata();
    if (auto it = trailers.find("retry-after-ms"); it != trailers.end()) {
      retry_after_ms_ = std::min<uint64_t>(
          600000, std::strtoull(std::string(it->second.data(), it->second.size()).c_str(),
                                nullptr, 10));
    }
    absl::MutexLock lock(&mu_);
    context_ = nullptr;
    return status;
  }

  bool peerIsPinned(const grpc::ClientContext& context) const {
    const std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
    if (auth == nullptr) {
      return false;
    }
    const std::vector<grpc::string_ref> pems = auth->FindPropertyValues("x509_pem_cert");
    if (pems.empty()) {
      return false;
    }
    auto digest = sync::certificateSha256(std::string(pems.front().data(), pems.front().size()));
    return digest.ok() && *digest == pinned_sha256_;
  }

  bool write(Session& session, const DataPlaneMessage& msg) {
    absl::MutexLock lock(&session.write_mu);
    return session.stream->Write(msg);
  }

  void heartbeatLoop(Session& session) {
    // The last health report sent on this stream (serialized), and heartbeats since.
    std::string last_health;
    uint32_t since_health = 0;
    bool health_sent = false;
    while (true) {
      {
        absl::MutexLock lock(&session.mu);
        auto over = [&session]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(session.mu) {
          return session.over;
        };
        session.mu.AwaitWithTimeout(absl::Condition(&over),
                                    absl::Milliseconds(session.interval_ms));
        if (session.over) {
          return;
        }
      }
      DataPlaneMessage msg;
      {
        absl::MutexLock lock(&mu_);
        msg.mutable_heartbeat()->set_generation(state_.generation);
        msg.mutable_heartbeat()->set_config_hash(state_.config_hash);
      }
      bool with_health = false;
      if (options_.health) {
        // Only when it changed (or now and then): an idle fleet's heartbeats stay tiny.
        sync::v1::Heartbeat report;
        for (sync::v1::UpstreamHealth& u : options_.health()) {
          *report.add_upstreams() = std::move(u);
        }
        std::string bytes;
        report.SerializeToString(&bytes);
        ++since_health;
        if (!health_sent || bytes != last_health ||
            since_health >= std::max<uint32_t>(1, options_.health_refresh_heartbeats)) {
          msg.mutable_heartbeat()->mutable_upstreams()->Swap(report.mutable_upstreams());
          msg.mutable_heartbeat()->set_health_report(true);
          last_health = std::move(bytes);
          since_health = 0;
          health_sent = true;
          with_health = true;
        }
      }
      if (!write(session, msg)) {
        return;  // the stream is gone; the read loop will notice
      }
      absl::MutexLock lock(&mu_);
      state_.heartbeats++;
      state_.health_reports += with_health ? 1 : 0;
    }
  }

  void onChunk(Session& session, sync::Reassembler& reassembler,
               const sync::v1::ConfigChunk& chunk) {
    const absl::Time start = absl::Now();
    auto result = reassembler.add(chunk);
    if (!result.ok()) {
      // A push we cannot even decode is rejected like an invalid one: keep serving and tell
      // the CP, which will not resend it (a reconnect would only fetch the same bytes again).
      LOG_WARN(kLog, "rejecting generation %d: %s", chunk.generation(),
               result.status().ToString());
      sendNack(session, chunk.generation(), chunk.config_hash(), result.status(), {});
      return;
    }
    if (!result->has_value()) {
      return;
    }
    // The chunk that completes a push is where it is decompressed, hash-checked and parsed.
    handleSnapshot(session, std::move(**result), absl::Now() - start);
  }

  void handleSnapshot(Session& session, sync::AssembledSnapshot assembled,
                      absl::Duration decode_time) {
    const absl::Time start = absl::Now();
    uint64_t running_generation;
    std::string running_hash;
    {
      absl::MutexLock lock(&mu_);
      running_generation = state_.generation;
      running_hash = state_.config_hash;
    }
    if (assembled.config_hash == running_hash) {
      sendAck(session, assembled.generation, assembled.config_hash);  // already serving it
      return;
    }
    if (assembled.delta.has_value()) {
      if (absl::Status st = materializeDelta(running_generation, running_hash, &assembled);
          !st.ok()) {
        LOG_WARN(kLog, "cannot use delta %d->%d: %s", assembled.base_generation,
                 assembled.generation, st.ToString());
        sendNack(session, assembled.generation, assembled.config_hash, st, {});
        return;
      }
    }
    // Generations compare only within one epoch: the CP's history restarted (a restored or
    // rebuilt database) when its epoch differs, and what it sends is current.
    const bool same_epoch =
        current_ == nullptr || current_->epoch() == assembled.snapshot.epoch();
    if (same_epoch && assembled.generation < running_generation) {
      sendNack(session, assembled.generation, assembled.config_hash,
               absl::FailedPreconditionError(absl::StrCat(
                   "generation ", assembled.generation, " is older than the applied ",
                   running_generation)),
               {});
      return;
    }
    config::FieldErrors errors;
    auto shared = std::make_shared<const config::v1::Snapshot>(std::move(assembled.snapshot));
    absl::Status st = callApply(shared, assembled.key_auth, assembled.config_hash, &errors);
    if (!st.ok()) {
      LOG_WARN(kLog, "generation %d (%s) rejected: %s (%d errors); still serving generation %d",
               assembled.generation, shortHash(assembled.config_hash), st.ToString(),
               errors.size(), running_generation);
      sendNack(session, assembled.generation, assembled.config_hash, st, errors);
      return;
    }
    const absl::Time applied = absl::Now();
    {
      absl::MutexLock lock(&mu_);
      state_.generation = assembled.generation;
      state_.config_hash = assembled.config_hash;
      state_.from_cache = false;
      state_.applies++;
    }
    if (!options_.cache_path.empty()) {
      // The config already serves traffic, so the ACK stays truthful even if this fails; the
      // cost is a stale cache on the next cold start, which the log says.
      if (absl::Status cst = persist(&assembled); !cst.ok()) {
        LOG_ERROR(kLog, "cannot persist generation %d: %s", assembled.generation,
                  cst.ToString());
      }
    }
    current_ = std::move(shared);
    current_key_auth_ = std::move(assembled.key_auth);
    sendAck(session, assembled.generation, assembled.config_hash);
    // From the last chunk's arrival to the ACK: what a push costs this DP (sync_bench reads it).
    const absl::Time done = absl::Now();
    LOG_INFO(kLog, "applied generation %d (%s) in %s (decode %s, delta+validate+build+swap %s, "
             "persist %s)", assembled.generation, shortHash(assembled.config_hash),
             absl::FormatDuration(done - start + decode_time), absl::FormatDuration(decode_time),
             absl::FormatDuration(applied - start), absl::FormatDuration(done - applied));
    {
      absl::MutexLock lock(&mu_);
      state_.last_apply_ms = absl::ToDoubleMilliseconds(done - start + decode_time);
    }
  }

  // Turns a delta push into the full snapshot it leads to: the base must be what we run,
  // and the result must hash to the push's config_hash (exactly a full snapshot's state).
  absl::Status materializeDelta(uint64_t running_generation, const std::string& running_hash,
                                sync::AssembledSnapshot* assembled) {
    if (current_ == nullptr || assembled->base_generation != running_generation ||
        assembled->base_hash != running_hash) {
      return absl::FailedPreconditionError(absl::StrCat(
          "delta base ", assembled->base_generation, " is not the applied generation ",
          running_generation));
    }
    // Copies (the credentials' table is copied only if the delta changes it): a failure
    // leaves what we run intact.
    config::v1::Snapshot next = *current_;
    std::shared_ptr<const config::KeyAuthTable> key_auth = current_key_auth_;
    RETURN_IF_ERROR(sync::applyDelta(&next, &key_auth, *assembled->delta));
    auto raw = sync::serializeDeterministic(next, *key_auth);
    if (!raw.ok()) {
      return raw.status();
    }
    if (max_snapshot_bytes_ < raw->size()) {
      return absl::ResourceExhaustedError("snapshot after delta exceeds the size limit");
    }
    const std::string hash = sync::sha256Hex(*raw);
    if (hash != assembled->config_hash) {
      return absl::DataLossError(absl::StrCat("delta result hash ", shortHash(hash),
                                              " differs from the pushed ",
                                              shortHash(assembled->config_hash)));
    }
    assembled->snapshot = std::move(next);
    assembled->key_auth = std::move(key_auth);
    assembled->payload_size = raw->size();
    assembled->encoding = sync::v1::ENCODING_UNSPECIFIED;
    assembled->encoded_payload = std::move(*raw);  // compressed only if persisted
    assembled->delta.reset();
    return absl::OkStatus();
  }

  absl::Status persist(sync::AssembledSnapshot* assembled) {
    if (assembled->encoding == sync::v1::ENCODING_UNSPECIFIED) {
      auto compressed = sync::compressPayload(assembled->encoded_payload, 1);
      if (compressed.ok()) {
        assembled->encoded_payload = std::move(*compressed);
        assembled->encoding = sync::v1::ENCODING_ZSTD;
      }
    }
    return saveSnapshotCache(options_.cache_path, *assembled);
  }

  void sendAck(Session& session, uint64_t generation, const std::string& hash) {
    DataPlaneMessage msg;
    msg.mutable_ack()->set_generation(generation);
    msg.mutable_ack()->set_config_hash(hash);
    if (write(session, msg)) {
      absl::MutexLock lock(&mu_);
      state_.acks++;
    }
  }

  void sendNack(Session& session, uint64_t generation, const std::string& hash,
                const absl::Status& status, const config::FieldErrors& errors) {
    DataPlaneMessage msg;
    sync::v1::Nack* nack = msg.mutable_nack();
    nack->set_generation(generation);
    nack->set_config_hash(hash);
    nack->set_code(static_cast<int32_t>(status.code()));
    nack->set_message(std::string(status.message().data(), status.message().size()));
    const size_t n = std::min<size_t>(errors.size(), kMaxErrorsInNack);
    for (size_t i = 0; i < n; ++i) {
      sync::v1::ConfigError* e = nack->add_errors();
      e->set_entity_type(errors[i].entity_type);
      e->set_entity_id(errors[i].entity_id);
      e->set_field(errors[i].field);
      e->set_reason(errors[i].reason);
    }
    if (write(session, msg)) {
      absl::MutexLock lock(&mu_);
      state_.nacks++;
    }
  }

  Options options_;
  const uint64_t max_snapshot_bytes_ = options_.max_snapshot_bytes;
  const SharedApplyFn apply_;
  // The snapshot applied last (canonical), the base for deltas. Sync thread only (and
  // start() before the thread exists).
  std::shared_ptr<const config::v1::Snapshot> current_;  // also held by the served config
  // Its key-auth credentials (never null once current_ is set; same sharing).
  std::shared_ptr<const config::KeyAuthTable> current_key_auth_ = config::KeyAuthTable::empty();
  std::shared_ptr<grpc::ChannelCredentials> creds_;
  std::string pinned_sha256_;     // shared mode: the certificate the CP must present
  uint64_t retry_after_ms_ = 0;   // the last stream's hint (sync thread only)
  std::mt19937_64 rng_{std::random_device{}()};  // sync thread only
  std::string last_refusal_;  // sync thread only: the refusal last logged
  // Vitals sequence numbers restart with the process: the CP de-duplicates per instance.
  const std::string vitals_instance_ = generateUuid();
  std::thread thread_;

  mutable absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;  // the live stream's
  State state_ ABSL_GUARDED_BY(mu_);
};

SyncClient::SyncClient(Options options, SharedApplyFn apply)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(apply))) {}

SyncClient::SyncClient(Options options, ApplyFn apply)
    : SyncClient(std::move(options),
                 SharedApplyFn([apply = std::move(apply)](
                                   std::shared_ptr<const config::v1::Snapshot> snapshot,
                                   std::shared_ptr<const config::KeyAuthTable> key_auth,
                                   const std::string& hash, config::FieldErrors* errors) {
                   if (!key_auth->errors().empty()) {  // rows the table could not hold
                     *errors = key_auth->errors();
                     return absl::InvalidArgumentError("snapshot failed validation");
                   }
                   if (key_auth->size() == 0) {
                     return apply(*snapshot, hash, errors);
                   }
                   config::v1::Snapshot whole = *snapshot;
                   key_auth->appendTo(&whole);
                   return apply(whole, hash, errors);
                 })) {}

SyncClient::~SyncClient() = default;

absl::Status SyncClient::start() { return impl_->start(); }
void SyncClient::stop() { impl_->stop(); }
const std::string& SyncClient::nodeId() const { return impl_->nodeId(); }
SyncClient::State SyncClient::state() const { return impl_->state(); }

}  // namespace portico::dp
