// fleet_sim: N simulated data planes in one process, each on its own gRPC channel (its own
// TCP connection, as real DPs) to a portico-cp, speaking ConfigSync like portico-dp: Hello,
// reassemble the chunks, decode, apply a delta or take the full snapshot, verify the hash,
// ACK (or NACK), heartbeat at the CP's cadence, reconnect honouring a retry-after-ms hint.
// It measures what the sync benchmark reports (tests/bench/sync_bench.sh, RESULTS.md):
// time until every node is current, per-node time from an Admin API write to its ACK, bytes
// per node per change, and the CP's CPU per change (utime+stime from /proc/<cp_pid>/stat).
//
// Memory: every node buffers and SHA-256-checks the payload bytes it received, but the
// decode + delta apply + hash verification of one push is done once per process and shared
// by every node that received the same bytes (a real DP does that work itself; here 1,000
// copies of a 30k-entity snapshot would measure the simulator, not the CP).
//
// --inprocess runs its own SyncServer on an in-memory store and commits changes to it
// directly: the bench-smoke CTest uses it so the simulator cannot rot without PostgreSQL.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "common/flags.h"
#include "common/log_flags.h"
#include "common/logging.h"
#include "common/sync/cluster_tls.h"
#include "common/sync/codec.h"
#include "common/sync/delta.h"
#include "common/sync/grpc_args.h"
#include "control_plane/sync/sync_server.h"
#include "grpcpp/grpcpp.h"
#include "portico/sync/v1/sync.grpc.pb.h"
#include "tests/integration/sync/fake_store.h"
#include "tests/support/test_support.h"

ABSL_FLAG(std::string, cp, "127.0.0.1:8005", "control plane cluster address");
ABSL_FLAG(std::string, tls_cert, "",
          "cluster TLS in shared mode: the CP's --cluster_cert, also presented by every node "
          "(plain text without it)");
ABSL_FLAG(std::string, tls_key, "", "the key of --tls_cert");
ABSL_FLAG(std::string, tls_ca, "",
          "cluster TLS in pki mode: the CA that signed the CP's certificate; --tls_cert is then "
          "every node's client certificate (e.g. one issued by POST .../data-plane-certificates)");
ABSL_FLAG(std::string, tls_server_name, "localhost", "pki mode: the name the CP's certificate has");
ABSL_FLAG(int32_t, nodes, 200, "simulated data planes");
ABSL_FLAG(std::string, group, "", "group the nodes join (\"\" = default)");
ABSL_FLAG(std::string, dp_version, "0.1.0", "version the nodes announce");
ABSL_FLAG(bool, resume, false,
          "connect one node first, then every other node says Hello with its generation and "
          "hash (idle streams that need no config)");
ABSL_FLAG(int32_t, connect_timeout_s, 60, "give up if the fleet is not current by then");
ABSL_FLAG(std::string, admin, "", "Admin API host:port for --changes");
ABSL_FLAG(std::string, route, "", "route id or name PATCHed by --changes");
ABSL_FLAG(int32_t, changes, 0, "single-route changes to make, one at a time");
ABSL_FLAG(int32_t, change_gap_ms, 20, "pause between one change being everywhere and the next");
ABSL_FLAG(int32_t, cp_pid, 0, "measure this process' CPU time over the changes");
ABSL_FLAG(int32_t, settle_ms, 1500,
          "with --cp_pid: wait this long after the fleet is current before the CPU window, so "
          "the connect's aftermath (registry flush of the new nodes, transport clean-up) is "
          "not counted as change work; its CPU is printed as cp_cpu_ms_settle");
ABSL_FLAG(bool, idle_window, true,
          "with --cp_pid: after the changes, measure the CP's CPU over an idle window as long "
          "as the change batch (heartbeats, registry flushes: cost per stream and second, not "
          "per change) and print cp_cpu_ms_per_change_net = (changes - idle) / changes");
ABSL_FLAG(int32_t, hold_s, 0, "when current, print HOLDING and keep the streams this long");
ABSL_FLAG(bool, inprocess, false, "run an in-process SyncServer on an in-memory store");
ABSL_FLAG(int32_t, inprocess_routes, 100, "routes of the in-memory config (--inprocess)");
ABSL_FLAG(int32_t, inprocess_max_syncs, 0, "max_concurrent_syncs of the in-process server");

namespace portico::bench {
namespace {

using Clock = std::chrono::steady_clock;
using sync::v1::ControlPlaneMessage;
using sync::v1::DataPlaneMessage;

double msSince(Clock::time_point t0, Clock::time_point t1) {
  return std::chrono::duration<double, std::milli>(t1 - t0).count();
}

// ---------------------------------------------------------------------------------------------
// The work shared by every node: one decode + verification per distinct push.

struct VerifiedPush {
  std::mutex mu;
  bool done = false;
  std::string encoded_sha;  // SHA-256 of the encoded bytes the decoder checked
  absl::Status status;
};

class VerifiedCache {
 public:
  std::shared_ptr<VerifiedPush> entry(const std::string& key) {
    std::lock_guard<std::mutex> lock(mu_);
    auto& e = pushes_[key];
    if (e == nullptr) {
      e = std::make_shared<VerifiedPush>();
    }
    return e;
  }
  std::shared_ptr<const config::v1::Snapshot> snapshot(const std::string& hash) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = snapshots_.find(hash);
    return it == snapshots_.end() ? nullptr : it->second;
  }
  void addSnapshot(const std::string& hash, std::shared_ptr<const config::v1::Snapshot> s) {
    std::lock_guard<std::mutex> lock(mu_);
    if (snapshots_.emplace(hash, std::move(s)).second) {
      order_.push_back(hash);
    }
    while (order_.size() > 4) {  // a node on an evicted base NACKs and gets a full push
      snapshots_.erase(order_.front());
      order_.erase(order_.begin());
    }
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<VerifiedPush>> pushes_;
  std::map<std::string, std::shared_ptr<const config::v1::Snapshot>> snapshots_;
  std::vector<std::string> order_;
};

// ---------------------------------------------------------------------------------------------

class Sim;

struct AckRecord {
  uint64_t generation;
  Clock::time_point at;
  uint64_t bytes;  // chunk message bytes of that push
};

// One node's state across its streams (reconnects).
struct Node {
  int index = 0;
  std::string id;
  std::mutex mu;
  uint64_t generation = 0;
  std::string hash;
  bool connected = false;
  uint32_t heartbeat_ms = 5000;
  std::vector<AckRecord> acks;
  uint64_t nacks = 0;
  uint64_t refusals = 0;  // RESOURCE_EXHAUSTED
  uint64_t failures = 0;
  class Stream* stream = nullptr;  // the live stream, cleared before it is deleted
  std::shared_ptr<grpc::Channel> channel;
};

class Stream final : public grpc::ClientBidiReactor<DataPlaneMessage, ControlPlaneMessage> {
 public:
  Stream(Sim* sim, Node* node, std::shared_ptr<grpc::Channel> channel);
  void start(uint64_t generation, const std::string& hash);
  // Queues a message; false once the stream is over. Thread-safe.
  bool send(DataPlaneMessage msg);
  void cancel() { context_.TryCancel(); }

  // Interface: grpc::ClientBidiReactor
  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;

 private:
  void onChunk(const sync::v1::ConfigChunk& chunk);
  void finishPush();

  Sim* const sim_;
  Node* const node_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<sync::v1::ConfigSync::Stub> stub_;
  grpc::ClientContext context_;
  ControlPlaneMessage in_;
  std::mutex mu_;
  std::deque<DataPlaneMessage> out_;  // front is being written when writing_ (a deque keeps
                                     // its address stable while we push more)
  bool writing_ = false;
  bool over_ = false;
  // The push being reassembled (reads are serialized: reaction thread only).
  bool in_push_ = false;
  sync::v1::ConfigChunk header_;
  uint32_t next_index_ = 0;
  std::string buffer_;
  uint64_t push_bytes_ = 0;
};

class Sim {
 public:
  Sim(std::string target, int n, std::shared_ptr<grpc::ChannelCredentials> creds,
      std::string tls_name)
      : target_(std::move(target)), creds_(std::move(creds)), tls_name_(std::move(tls_name)) {
    nodes_.reserve(n);
    for (int i = 0; i < n; ++i) {
      auto node = std::make_unique<Node>();
      node->index = i;
      node->id = absl::StrCat("00000000-0000-4000-8000-", std::to_string(100000000000ULL + i));
      nodes_.push_back(std::move(node));
    }
  }

  std::vector<std::unique_ptr<Node>>& nodes() { return nodes_; }
  VerifiedCache& cache() { return cache_; }

  void connect(Node* node) {
    std::shared_ptr<grpc::Channel> channel;
    {
      std::lock_guard<std::mutex> lock(node->mu);
      if (node->channel == nullptr) {
        grpc::ChannelArguments args;
        args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // one TCP connection per node
        // As portico-dp (common/sync/grpc_args.h): no BDP probes, a fixed 1 MiB receive window.
        args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
        args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, sync::kClientLookaheadBytes);
        sync::forEachGrpcArgFromEnv("PORTICO_SYNC_CLIENT_GRPC_ARGS",
                                    [&](const std::string& k, int v) { args.SetInt(k, v); });
        args.SetMaxReceiveMessageSize(4 << 20);
        // Owned by the node, so a stream ending never destroys a channel on gRPC's thread.
        if (!tls_name_.empty()) {
          args.SetSslTargetNameOverride(tls_name_);
        }
        node->channel = grpc::CreateCustomChannel(target_, creds_, args);
      }
      channel = node->channel;
    }
    auto* stream = new Stream(this, node, channel);
    uint64_t gen;
    std::string hash;
    {
      std::lock_guard<std::mutex> lock(node->mu);
      node->stream = stream;
      gen = node->generation;
      hash = node->hash;
    }
    live_++;
    stream->start(gen, hash);
  }

  // A stream ended: reconnect after the CP's hint (RESOURCE_EXHAUSTED) or a short backoff.
  void ended(Node* node, const grpc::Status& status, uint64_t retry_after_ms) {
    if (stopping_) {
      live_--;  // the last touch of `this`: stop() may return (and the Sim go) right after
      return;
    }
    uint64_t delay_ms;
    {
      std::lock_guard<std::mutex> lock(node->mu);
      if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
        node->refusals++;
      } else {
        node->failures++;
      }
      std::uniform_int_distribution<uint64_t> jitter(0, 200);
      std::lock_guard<std::mutex> rl(rng_mu_);
      delay_ms = (retry_after_ms > 0 ? retry_after_ms + retry_after_ms / 2 * jitter(rng_) / 200
                                     : 100 + jitter(rng_));
    }
    {
      std::lock_guard<std::mutex> lock(timer_mu_);
      timers_.emplace(Clock::now() + std::chrono::milliseconds(delay_ms), node);
      timer_cv_.notify_one();
    }
    live_--;
  }

  // Timers (reconnects) and heartbeats, on one thread.
  void startBackground() {
    background_ = std::thread([this] {
      Clock::time_point next_hb = Clock::now() + std::chrono::milliseconds(500);
      std::unique_lock<std::mutex> lock(timer_mu_);
      while (!stopping_) {
        const Clock::time_point now = Clock::now();
        while (!timers_.empty() && timers_.begin()->first <= now) {
          Node* n = timers_.begin()->second;
          timers_.erase(timers_.begin());
          lock.unlock();
          connect(n);
          lock.lock();
        }
        if (now >= next_hb) {
          lock.unlock();
          uint32_t interval = heartbeats();
          lock.lock();
          next_hb = now + std::chrono::milliseconds(interval);  // the CP's cadence
        }
        Clock::time_point wake = next_hb;
        if (!timers_.empty()) {
          wake = std::min(wake, timers_.begin()->first);
        }
        timer_cv_.wait_until(lock, wake);
      }
    });
  }

  // Sends one heartbeat on every live stream; returns the cadence to keep.
  uint32_t heartbeats() {
    uint32_t interval = 5000;
    for (auto& node : nodes_) {
      std::lock_guard<std::mutex> lock(node->mu);
      interval = std::min(interval, node->heartbeat_ms);
      if (node->stream != nullptr && node->connected) {
        DataPlaneMessage msg;
        msg.mutable_heartbeat()->set_generation(node->generation);
        msg.mutable_heartbeat()->set_config_hash(node->hash);
        node->stream->send(std::move(msg));
      }
    }
    return std::max<uint32_t>(100, interval);
  }

  void stop() {
    stopping_ = true;
    {
      std::lock_guard<std::mutex> lock(timer_mu_);
      timer_cv_.notify_all();
    }
    if (background_.joinable()) {
      background_.join();
    }
    for (auto& node : nodes_) {
      std::lock_guard<std::mutex> lock(node->mu);
      if (node->stream != nullptr) {
        node->stream->cancel();
      }
    }
    // Every stream must have reported OnDone before the nodes they point at go away.
    while (live_.load() > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  // Whether every node ACKed a generation > `after` (and all run the same hash).
  bool allPast(uint64_t after, std::string* common_hash = nullptr) {
    std::string hash;
    for (auto& node : nodes_) {
      std::lock_guard<std::mutex> lock(node->mu);
      if (node->generation <= after) {
        return false;
      }
      if (hash.empty()) {
        hash = node->hash;
      } else if (hash != node->hash) {
        return false;
      }
    }
    if (common_hash != nullptr) {
      *common_hash = hash;
    }
    return true;
  }
  uint64_t minGeneration() {
    uint64_t g = UINT64_MAX;
    for (auto& node : nodes_) {
      std::lock_guard<std::mutex> lock(node->mu);
      g = std::min(g, node->generation);
    }
    return g;
  }

 private:
  const std::string target_;
  const std::shared_ptr<grpc::ChannelCredentials> creds_;
  const std::string tls_name_;  // the CP certificate's name (shared mode), or ""
  std::vector<std::unique_ptr<Node>> nodes_;
  VerifiedCache cache_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> live_{0};
  std::mutex timer_mu_;
  std::condition_variable timer_cv_;
  std::multimap<Clock::time_point, Node*> timers_;
  std::thread background_;
  std::mutex rng_mu_;
  std::mt19937_64 rng_{42};
};

Stream::Stream(Sim* sim, Node* node, std::shared_ptr<grpc::Channel> channel)
    : sim_(sim), node_(node), channel_(std::move(channel)),
      stub_(sync::v1::ConfigSync::NewStub(channel_)) {}

void Stream::start(uint64_t generation, const std::string& hash) {
  DataPlaneMessage hello;
  auto* h = hello.mutable_hello();
  h->set_node_id(node_->id);
  h->set_hostname(absl::StrCat("sim-", node_->index));
  h->set_group(absl::GetFlag(FLAGS_group));
  h->set_version(absl::GetFlag(FLAGS_dp_version));
  h->add_capabilities("zstd");
  h->add_capabilities("delta");
  h->set_generation(generation);
  h->set_config_hash(hash);
  stub_->async()->Sync(&context_, this);
  const DataPlaneMessage* first = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    out_.push_back(std::move(hello));
    writing_ = true;
    first = &out_.front();
  }
  StartWrite(first);
  StartRead(&in_);
  StartCall();
}

bool Stream::send(DataPlaneMessage msg) {
  const DataPlaneMessage* first = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (over_) {
      return false;
    }
    out_.push_back(std::move(msg));
    if (writing_) {
      return true;
    }
    writing_ = true;
    first = &out_.front();
  }
  StartWrite(first);
  return true;
}

void Stream::OnWriteDone(bool ok) {
  const DataPlaneMessage* next = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    out_.pop_front();
    if (!ok) {
      over_ = true;
    }
    if (over_ || out_.empty()) {
      writing_ = false;
      return;
    }
    next = &out_.front();
  }
  StartWrite(next);
}

void Stream::OnReadDone(bool ok) {
  if (!ok) {
    std::lock_guard<std::mutex> lock(mu_);
    over_ = true;
    return;
  }
  switch (in_.kind_case()) {
    case ControlPlaneMessage::kHelloReply: {
      std::lock_guard<std::mutex> lock(node_->mu);
      node_->connected = true;
      node_->heartbeat_ms = std::max<uint32_t>(100, in_.hello_reply().heartbeat_interval_ms());
      break;
    }
    case ControlPlaneMessage::kChunk:
      push_bytes_ += in_.ByteSizeLong();
      onChunk(in_.chunk());
      break;
    default:
      break;
  }
  StartRead(&in_);
}

void Stream::onChunk(const sync::v1::ConfigChunk& chunk) {
  if (!in_push_) {
    if (chunk.chunk_index() != 0) {
      return;
    }
    in_push_ = true;
    header_ = chunk;
    header_.clear_data();
    next_index_ = 0;
    buffer_.clear();
    buffer_.reserve(chunk.total_size());
  }
  if (chunk.chunk_index() != next_index_ || chunk.generation() != header_.generation() ||
      chunk.config_hash() != header_.config_hash()) {
    in_push_ = false;
    return;  // a real DP would NACK; the CP never does this
  }
  buffer_.append(chunk.data());
  if (++next_index_ == header_.chunk_count()) {
    finishPush();
  }
}

void Stream::finishPush() {
  in_push_ = false;
  const sync::v1::ConfigChunk& h = header_;
  const bool delta = h.kind() == sync::v1::PAYLOAD_KIND_DELTA;
  const std::string my_sha = sync::sha256Hex(buffer_);  // each node checks its own bytes
  absl::Status st = buffer_.size() == h.total_size()
                        ? absl::OkStatus()
                        : absl::DataLossError("truncated push");
  if (st.ok() && delta) {
    std::lock_guard<std::mutex> lock(node_->mu);
    if (node_->generation != h.base_generation() || node_->hash != h.base_hash()) {
      st = absl::FailedPreconditionError("delta base is not what this node runs");
    }
  }
  if (st.ok()) {
    const std::string key = absl::StrCat(h.kind(), "/", h.generation(), "/", h.config_hash(),
                                         "/", h.base_hash(), "/", h.payload_hash());
    std::shared_ptr<VerifiedPush> v = sim_->cache().entry(key);
    std::lock_guard<std::mutex> lock(v->mu);  // the first node decodes; the others wait
    if (!v->done) {
      v->done = true;
      v->encoded_sha = my_sha;
      if (!delta) {
        auto snap = sync::decodePayload(h.encoding(), buffer_, h.config_hash(),
                                        sync::kDefaultMaxSnapshotBytes);
        if (snap.ok()) {
          sim_->cache().addSnapshot(
              h.config_hash(), std::make_shared<const config::v1::Snapshot>(std::move(*snap)));
        } else {
          v->status = snap.status();
        }
      } else {
        auto raw = sync::decompressPayload(h.encoding(), buffer_, h.payload_hash(),
                                           sync::kDefaultMaxSnapshotBytes);
        sync::v1::SnapshotDelta d;
        auto base = sim_->cache().snapshot(h.base_hash());
        if (!raw.ok()) {
          v->status = raw.status();
        } else if (!d.ParseFromString(*raw)) {
          v->status = absl::InvalidArgumentError("delta does not parse");
        } else if (base == nullptr) {
          v->status = absl::FailedPreconditionError("base snapshot evicted");
        } else {
          auto next = std::make_shared<config::v1::Snapshot>(*base);
          v->status = sync::applyDelta(next.get(), d);
          if (v->status.ok()) {
            auto hash = sync::hashSnapshot(*next);
            if (!hash.ok() || *hash != h.config_hash()) {
              v->status = absl::DataLossError("delta result hash differs");
            } else {
              sim_->cache().addSnapshot(h.config_hash(), std::move(next));
            }
          }
        }
      }
    }
    if (v->encoded_sha != my_sha) {
      st = absl::DataLossError("payload bytes differ from the verified ones");
    } else {
      st = v->status;
    }
  }
  buffer_.clear();
  buffer_.shrink_to_fit();
  DataPlaneMessage msg;
  {
    std::lock_guard<std::mutex> lock(node_->mu);
    if (st.ok()) {
      node_->generation = h.generation();
      node_->hash = h.config_hash();
      node_->acks.push_back({h.generation(), Clock::now(), push_bytes_});
      msg.mutable_ack()->set_generation(h.generation());
      msg.mutable_ack()->set_config_hash(h.config_hash());
    } else {
      node_->nacks++;
      LOG_WARN("sim", "node %d NACKs generation %d: %s", node_->index, h.generation(),
               st.ToString());
      msg.mutable_nack()->set_generation(h.generation());
      msg.mutable_nack()->set_config_hash(h.config_hash());
      msg.mutable_nack()->set_code(static_cast<int32_t>(st.code()));
      msg.mutable_nack()->set_message(std::string(st.message()));
    }
  }
  push_bytes_ = 0;
  send(std::move(msg));
}

void Stream::OnDone(const grpc::Status& status) {
  uint64_t retry_after_ms = 0;
  const auto& trailers = context_.GetServerTrailingMetadata();
  if (auto it = trailers.find("retry-after-ms"); it != trailers.end()) {
    retry_after_ms = std::strtoull(std::string(it->second.data(), it->second.size()).c_str(),
                                   nullptr, 10);
  }
  {
    std::lock_guard<std::mutex> lock(node_->mu);
    node_->stream = nullptr;
    node_->connected = false;
  }
  Node* node = node_;
  Sim* sim = sim_;
  delete this;
  sim->ended(node, status, retry_after_ms);
}

// ---------------------------------------------------------------------------------------------

struct Percentiles {
  double p50 = 0, p90 = 0, p99 = 0, max = 0;
};
Percentiles percentiles(std::vector<double> v) {
  Percentiles p;
  if (v.empty()) {
    return p;
  }
  std::sort(v.begin(), v.end());
  auto at = [&](double q) { return v[std::min(v.size() - 1, static_cast<size_t>(q * v.size()))]; };
  p.p50 = at(0.50);
  p.p90 = at(0.90);
  p.p99 = at(0.99);
  p.max = v.back();
  return p;
}

uint64_t cpuTicks(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t rp = text.rfind(')');
  if (rp == std::string::npos) {
    return 0;
  }
  std::istringstream fields(text.substr(rp + 2));
  std::string f;
  uint64_t utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> f; ++i) {  // field 3 is state
    if (i == 14) {
      utime = std::stoull(f);
    } else if (i == 15) {
      stime = std::stoull(f);
    }
  }
  return utime + stime;
}

void raiseFdLimit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
}

config::v1::Snapshot inprocessConfig(int routes) {
  config::v1::Snapshot s;
  for (int i = 0; i < routes; ++i) {
    const std::string n = std::to_string(100000 + i);
    auto* svc = s.add_services();
    svc->set_id("00000000-0000-4000-8000-000000" + n);
    // Valid as Kong/Portico config (a real portico-dp can sync from --inprocess).
    svc->set_name("svc-" + n);
    svc->set_protocol("http");
    svc->set_host("127.0.0.1");
    svc->set_port(1024 + i % 60000);
    svc->set_retries(5);
    svc->set_connect_timeout(60000);
    svc->set_read_timeout(60000);
    svc->set_write_timeout(60000);
    svc->set_enabled(true);
    auto* r = s.add_routes();
    r->set_id("00000000-0000-4000-9000-000000" + n);
    r->set_name("route-" + n);
    r->add_protocols("http");
    r->add_protocols("https");
    r->add_paths("/r/" + n);
    r->set_path_handling("v0");
    r->set_https_redirect_status_code(426);
    r->set_request_buffering(true);
    r->set_response_buffering(true);
    r->set_service_id(svc->id());
  }
  return s;
}

int run() {
  raiseFdLimit();
  const int n = std::max(1, absl::GetFlag(FLAGS_nodes));
  const int changes = std::max(0, absl::GetFlag(FLAGS_changes));
  std::string target = absl::GetFlag(FLAGS_cp);

  // --inprocess: a SyncServer of our own over an in-memory store.
  std::unique_ptr<testing::FakeConfigStore> store;
  std::unique_ptr<cp::SyncServer> server;
  if (absl::GetFlag(FLAGS_inprocess)) {
    store = std::make_unique<testing::FakeConfigStore>();
    const config::v1::Snapshot initial = inprocessConfig(absl::GetFlag(FLAGS_inprocess_routes));
    store->commit("default", [&](config::v1::Snapshot& s) {
      const uint64_t g = s.generation();
      s = initial;
      s.set_group("default");
      s.set_generation(g);
    });
    cp::SyncServerOptions o;
    o.listen_address = "127.0.0.1:0";
    o.insecure = true;
    o.heartbeat_interval_ms = 1000;
    o.max_concurrent_syncs = static_cast<uint32_t>(absl::GetFlag(FLAGS_inprocess_max_syncs));
    o.retry_after_ms = 200;
    auto started = cp::SyncServer::start(*store, o);
    if (!started.ok()) {
      std::fprintf(stderr, "fleet_sim: %s\n", started.status().ToString().c_str());
      return 1;
    }
    server = std::move(*started);
    target = absl::StrCat("127.0.0.1:", server->port());
  }

  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
  std::string tls_name;
  if (!absl::GetFlag(FLAGS_tls_cert).empty()) {
    // Shared mode, as portico-dp: the one cluster certificate is root, client cert and pin.
    auto cert = sync::readPemFile("--tls_cert", absl::GetFlag(FLAGS_tls_cert));
    auto key = sync::readPemFile("--tls_key", absl::GetFlag(FLAGS_tls_key));
    auto name = cert.ok() ? sync::certificateName(*cert) : cert.status();
    if (!cert.ok() || !key.ok() || !name.ok()) {
      std::fprintf(stderr, "fleet_sim: cluster TLS: %s\n",
                   (!cert.ok() ? cert.status() : !key.ok() ? key.status() : name.status())
                       .ToString()
                       .c_str());
      return 1;
    }
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = *cert;
    ssl.pem_cert_chain = *cert;
    ssl.pem_private_key = *key;
    tls_name = *name;
    if (!absl::GetFlag(FLAGS_tls_ca).empty()) {
      auto ca = sync::readPemFile("--tls_ca", absl::GetFlag(FLAGS_tls_ca));
      if (!ca.ok()) {
        std::fprintf(stderr, "fleet_sim: cluster TLS: %s\n", ca.status().ToString().c_str());
        return 1;
      }
      ssl.pem_root_certs = *ca;
      tls_name = absl::GetFlag(FLAGS_tls_server_name);
    }
    creds = grpc::SslCredentials(ssl);
  }
  Sim sim(target, n, creds, tls_name);
  sim.startBackground();
  const auto deadline_connect = std::chrono::seconds(absl::GetFlag(FLAGS_connect_timeout_s));

  // Phase 1: connect. With --resume the first node fetches the config and the others say
  // Hello with it, so they only cost the CP an idle stream.
  auto& nodes = sim.nodes();
  const Clock::time_point t_connect = Clock::now();
  int first = 0;
  if (absl::GetFlag(FLAGS_resume)) {
    sim.connect(nodes[0].get());
    if (!testing::waitFor([&] { std::lock_guard<std::mutex> l(nodes[0]->mu);
                                return nodes[0]->generation > 0; }, deadline_connect)) {
      std::fprintf(stderr, "fleet_sim: the first node got no config\n");
      return 1;
    }
    for (int i = 1; i < n; ++i) {
      std::lock_guard<std::mutex> l(nodes[i]->mu);
      nodes[i]->generation = nodes[0]->generation;
      nodes[i]->hash = nodes[0]->hash;
    }
    first = 1;
  }
  const Clock::time_point t_storm = Clock::now();
  for (int i = first; i < n; ++i) {
    sim.connect(nodes[i].get());
  }
  // Current = connected, and every node runs the same (newest) config.
  auto all_current = [&] {
    std::string hash;
    for (auto& node : nodes) {
      std::lock_guard<std::mutex> l(node->mu);
      if (!node->connected || node->generation == 0 || (!hash.empty() && node->hash != hash)) {
        return false;
      }
      hash = node->hash;
    }
    return true;
  };
  if (!testing::waitFor(all_current, deadline_connect)) {
    int behind = 0;
    for (auto& node : nodes) {
      std::lock_guard<std::mutex> l(node->mu);
      behind += node->connected && node->generation > 0 ? 0 : 1;
    }
    std::fprintf(stderr, "fleet_sim: %d of %d nodes not current after %d s\n", behind, n,
                 absl::GetFlag(FLAGS_connect_timeout_s));
    sim.stop();
    return 1;
  }
  const Clock::time_point t_current = Clock::now();
  uint64_t refusals = 0, full_bytes = 0;
  std::vector<double> first_ack_ms;
  for (auto& node : nodes) {
    std::lock_guard<std::mutex> l(node->mu);
    refusals += node->refusals;
    if (!node->acks.empty()) {
      first_ack_ms.push_back(msSince(t_storm, node->acks.front().at));
      full_bytes = std::max(full_bytes, node->acks.front().bytes);
    }
  }
  const Percentiles fa = percentiles(first_ack_ms);
  std::printf("nodes=%d connect_all_current_ms=%.0f (since start %.0f) first_ack_p50_ms=%.0f "
              "p99_ms=%.0f refusals=%" PRIu64 " first_push_bytes=%" PRIu64 "\n",
              n, msSince(t_storm, t_current), msSince(t_connect, t_current), fa.p50, fa.p99,
              refusals, full_bytes);
  std::fflush(stdout);

  // Phase 2: changes, one at a time; each must reach every node before the next.
  if (changes > 0) {
    std::string admin_host;
    int admin_port = 0;
    if (!absl::GetFlag(FLAGS_inprocess)) {
      const std::string admin = absl::GetFlag(FLAGS_admin);
      const size_t colon = admin.rfind(':');
      if (colon == std::string::npos || absl::GetFlag(FLAGS_route).empty()) {
        std::fprintf(stderr, "fleet_sim: --changes needs --admin host:port and --route\n");
        return 2;
      }
      admin_host = admin.substr(0, colon);
      admin_port = std::stoi(admin.substr(colon + 1));
    }
    const int cp_pid = absl::GetFlag(FLAGS_cp_pid);
    double settle_cpu_ms = 0;
    if (cp_pid > 0 && absl::GetFlag(FLAGS_settle_ms) > 0) {
      const uint64_t s0 = cpuTicks(cp_pid);
      std::this_thread::sleep_for(std::chrono::milliseconds(absl::GetFlag(FLAGS_settle_ms)));
      settle_cpu_ms = static_cast<double>(cpuTicks(cp_pid) - s0) * 1000.0 /
                      static_cast<double>(::sysconf(_SC_CLK_TCK));
    }
    std::vector<double> all_ms, node_ms, bytes;
    std::map<int, uint64_t> histogram;  // upper bound (ms) -> count
    static constexpr int kBuckets[] = {5, 10, 20, 30, 50, 75, 100, 150, 250, 500, 1000, 1000000};
    const uint64_t cpu0 = cp_pid > 0 ? cpuTicks(cp_pid) : 0;
    const Clock::time_point t_batch = Clock::now();
    for (int c = 0; c < changes; ++c) {
      const uint64_t before = sim.minGeneration();
      std::vector<size_t> ack_counts(n);
      for (int i = 0; i < n; ++i) {
        std::lock_guard<std::mutex> l(nodes[i]->mu);
        ack_counts[i] = nodes[i]->acks.size();
      }
      const Clock::time_point t0 = Clock::now();
      if (store != nullptr) {
        store->commit("default", [c](config::v1::Snapshot& s) {
          s.mutable_routes(0)->clear_tags();
          s.mutable_routes(0)->add_tags(absl::StrCat("change-", c));
        });
      } else {
        const std::string body = absl::StrCat("{\"tags\":[\"bench-", c, "-", ::getpid(), "\"]}");
        testing::HttpResponse r = testing::httpRequest(
            admin_host, admin_port, "PATCH", "/routes/" + absl::GetFlag(FLAGS_route), body);
        if (r.status != 200) {
          std::fprintf(stderr, "fleet_sim: PATCH /routes/%s answered %d: %s\n",
                       absl::GetFlag(FLAGS_route).c_str(), r.status, r.body.c_str());
          sim.stop();
          return 1;
        }
      }
      if (!testing::waitFor([&] { return sim.allPast(before); }, std::chrono::seconds(30))) {
        std::fprintf(stderr, "fleet_sim: change %d did not reach every node in 30 s\n", c);
        sim.stop();
        return 1;
      }
      double slowest = 0;
      for (int i = 0; i < n; ++i) {
        std::lock_guard<std::mutex> l(nodes[i]->mu);
        uint64_t b = 0;
        for (size_t k = ack_counts[i]; k < nodes[i]->acks.size(); ++k) {
          b += nodes[i]->acks[k].bytes;
        }
        const double ms = msSince(t0, nodes[i]->acks.back().at);
        node_ms.push_back(ms);
        bytes.push_back(static_cast<double>(b));
        slowest = std::max(slowest, ms);
        for (int ub : kBuckets) {
          if (ms <= ub) {
            histogram[ub]++;
            break;
          }
        }
      }
      all_ms.push_back(slowest);
      std::this_thread::sleep_for(std::chrono::milliseconds(absl::GetFlag(FLAGS_change_gap_ms)));
    }
    const double batch_ms = msSince(t_batch, Clock::now());
    const uint64_t cpu1 = cp_pid > 0 ? cpuTicks(cp_pid) : 0;
    const Percentiles all = percentiles(all_ms);
    const Percentiles per = percentiles(node_ms);
    double bytes_sum = 0;
    for (double b : bytes) {
      bytes_sum += b;
    }
    std::printf("changes=%d all_acked_p50_ms=%.1f all_acked_p99_ms=%.1f all_acked_max_ms=%.1f "
                "node_ack_p50_ms=%.1f node_ack_p90_ms=%.1f node_ack_p99_ms=%.1f "
                "bytes_per_node_change=%.0f batch_ms=%.0f\n",
                changes, all.p50, all.p99, all.max, per.p50, per.p90, per.p99,
                bytes.empty() ? 0.0 : bytes_sum / bytes.size(), batch_ms);
    std::printf("histogram_ms");
    int lower = 0;
    for (int ub : kBuckets) {
      if (histogram[ub] > 0) {
        std::printf(" %d-%s:%" PRIu64, lower, ub == 1000000 ? "inf" : std::to_string(ub).c_str(),
                    histogram[ub]);
      }
      lower = ub;
    }
    std::printf("\n");
    if (cp_pid > 0) {
      const double tick_ms = 1000.0 / static_cast<double>(::sysconf(_SC_CLK_TCK));
      const double ms = static_cast<double>(cpu1 - cpu0) * tick_ms;
      std::printf("cp_cpu_ms_total=%.0f cp_cpu_ms_per_change=%.2f cp_cpu_ms_settle=%.0f\n", ms,
                  ms / changes, settle_cpu_ms);
      if (absl::GetFlag(FLAGS_idle_window)) {
        const uint64_t i0 = cpuTicks(cp_pid);
        std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int64_t>(batch_ms)));
        const double idle = static_cast<double>(cpuTicks(cp_pid) - i0) * tick_ms;
        std::printf("cp_cpu_ms_idle_window=%.0f cp_cpu_ms_per_change_net=%.2f\n", idle,
                    (ms - idle) / changes);
      }
    }
    std::fflush(stdout);
  }

  if (absl::GetFlag(FLAGS_hold_s) > 0) {
    std::printf("HOLDING %d\n", n);
    std::fflush(stdout);
    std::this_thread::sleep_for(std::chrono::seconds(absl::GetFlag(FLAGS_hold_s)));
  }
  uint64_t nacks = 0;
  for (auto& node : nodes) {
    std::lock_guard<std::mutex> l(node->mu);
    nacks += node->nacks;
  }
  std::printf("nacks=%" PRIu64 "\n", nacks);
  sim.stop();
  if (server != nullptr) {
    server->shutdown();
  }
  return 0;
}

}  // namespace
}  // namespace portico::bench

int main(int argc, char** argv) {
  // --log_level is the one both planes share (common/log_flags.h, linked with portico_cp); a
  // simulation of hundreds of DPs logs warnings only unless asked.
  absl::SetFlag(&FLAGS_log_level, "warn");
  portico::parseFlagsWithEnv(argc, argv, "fleet_sim: simulated data planes for sync benchmarks");
  portico::LogLevel level;
  if (portico::parseLogLevel(absl::GetFlag(FLAGS_log_level), &level)) {
    portico::setLogLevel(level);
  }
  const int rc = portico::bench::run();
  std::fflush(stdout);
  // gRPC's own threads may still be winding down; nothing of ours needs destructors now.
  std::_Exit(rc);
}
