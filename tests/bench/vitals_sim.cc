// vitals_sim: N simulated data planes reporting vitals to a real portico-cp over
// ConfigSync.Report, each on its own gRPC channel (its own TCP connection), the way portico-dp
// does (data_plane/sync_client/vitals_stream.cc, data_plane/vitals/vitals.cc):
//   - VitalsHello (node_id, group, a random instance), then the CP's VitalsSettings;
//   - every --interval_s, just after a wall-clock multiple of it (+1.2 s, as the DP), one
//     flush of the last closed 10 s bucket: for each route x consumer x status code one
//     VitalsBucket, with the consumers past the CP's top_consumers of each route (by requests
//     over every status) folded into consumer "*", split into batches of max_batch_buckets,
//     with rising seq;
//   - at most --window batches unanswered (the DP's kWindow); RETRY holds sending for one
//     flush interval; a broken stream reconnects and sends every unanswered batch again.
// Traffic: per route a Zipf-like spread over consumers (rank rotated by route, so each route
// has its own top consumers), a fixed mix of status codes, and +-20% noise per node and flush;
// every cell has >= 1 request. Histograms have 16 bins with sum(total) = sum(proxy) =
// requests and sum(upstream) <= requests (0 for statuses a plugin answers: 401, 403, 429).
//
// Entities: the CP refuses ids its group does not have (unknown_entity), so
// --create_entities first creates the services, routes and consumers through the Admin API
// with fixed ids (entityId below; tests/bench/vitals_bench.sh's SQL fill uses the same form);
// 409 (already there) is fine, so a rerun reuses them.
//
// Output (key=value, for tests/bench/vitals_bench.sh): one line per interval (batches made,
// acks by result, outstanding batches at the interval's end = made but not answered, ack
// latency of that interval) and a summary. Ack latency = the batch's Write starting to its
// VitalsAck arriving; flush_to_ack also counts the wait for the window. kept_up=yes when at
// every interval's end less than one flush's batches were unanswered and the last flush was
// answered within --drain_s. stream_failures counts streams that ended under us, reconnect
// attempts included. Flushes go on while a node is disconnected and are sent on reconnect.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/flags.h"
#include "common/logging.h"
#include "common/vitals/latency_bins.h"
#include "grpcpp/grpcpp.h"
#include "portico/sync/v1/sync.grpc.pb.h"
#include "tests/support/test_support.h"

ABSL_FLAG(std::string, cp, "127.0.0.1:8005", "control plane cluster address (plain text)");
ABSL_FLAG(std::string, admin, "127.0.0.1:8001", "Admin API host:port (--create_entities)");
ABSL_FLAG(bool, create_entities, false,
          "first create the services, routes and consumers through the Admin API");
ABSL_FLAG(int32_t, nodes, 5, "simulated data planes");
ABSL_FLAG(int32_t, routes, 100, "routes every node serves");
ABSL_FLAG(int32_t, services, 0, "services the routes belong to (0 = routes / 10, at least 1)");
ABSL_FLAG(int32_t, consumers, 10, "consumers calling every route");
ABSL_FLAG(int32_t, statuses, 4, "status codes per route and consumer (1..10)");
ABSL_FLAG(int32_t, interval_s, 10, "flush cadence");
ABSL_FLAG(int32_t, duration_s, 60,
          "run this long: duration_s / interval_s flushes (at least 1); 0 = only "
          "--create_entities");
ABSL_FLAG(int32_t, drain_s, 60, "after the last flush, wait this long at most for its acks");
ABSL_FLAG(int32_t, window, 16, "batches unanswered at a time per node (portico-dp: 16)");
ABSL_FLAG(int32_t, peak_requests, 200,
          "requests of a route's top consumer with status 200 in one bucket");
ABSL_FLAG(bool, align, true,
          "flush 1.2 s after wall-clock multiples of the interval, as portico-dp (every node "
          "at once); false: start one interval from now");
ABSL_FLAG(std::string, group, "", "group the nodes join (\"\" = default)");
ABSL_FLAG(std::string, node_prefix, "vitals-sim-", "node ids are <prefix><index>");
ABSL_FLAG(uint64_t, seed, 1, "traffic noise seed");
ABSL_FLAG(int32_t, cp_pid, 0, "print this process' CPU per interval (utime+stime, % of a core)");
ABSL_FLAG(bool, repeat_traffic, false,
          "every flush of a node repeats its first flush's counts (fresh seq and bucket start):"
          " the CP gets the same batches, entities and bucket counts, while the simulator only"
          " updates the batches it built once instead of drawing and building ~44,000 buckets"
          " per node per flush; for ingest load on a host the simulator shares with the CP");
ABSL_FLAG(bool, strict, false,
          "exit 1 unless every batch made was STORED (no refusal, retry left, nothing unacked)");
ABSL_FLAG(std::string, log_level, "warn", "debug, info, warn or error");

namespace portico::bench {
namespace {

using Clock = std::chrono::steady_clock;
using WallClock = std::chrono::system_clock;
using sync::v1::VitalsAck;
using sync::v1::VitalsControl;
using sync::v1::VitalsReport;
using portico::vitals::kBucketSeconds;
using portico::vitals::kLatencyBins;
using portico::vitals::kLatencyBoundsMs;

double msBetween(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// Entity ids: fixed, so a rerun and the bench's SQL fill name the same entities.
// kind 1 = service, 2 = route, 3 = consumer.
std::string entityId(int kind, int index) {
  return absl::StrFormat("7e57000%d-0000-4000-8000-%012d", kind, index);
}

// Status codes in order of use, with their share of a consumer's traffic.
struct StatusMix {
  int code;
  double weight;
  bool upstream;  // false: answered by a plugin (auth, rate limiting) before any upstream
};
constexpr StatusMix kStatuses[] = {{200, 1.0, true},   {404, 0.06, true}, {500, 0.01, true},
                                   {302, 0.03, true},  {201, 0.2, true},  {401, 0.02, false},
                                   {503, 0.005, true}, {429, 0.01, false}, {301, 0.01, true},
                                   {403, 0.005, false}};
constexpr int kMaxStatuses = sizeof(kStatuses) / sizeof(kStatuses[0]);

// The bin most of a status' requests land in: 2xx ~20 ms, 3xx ~5 ms, 4xx ~2 ms, 5xx ~50 ms.
size_t typicalBin(int code) {
  if (code < 300) return 4;
  if (code < 400) return 2;
  if (code < 500) return 1;
  return 5;
}

// `requests` spread over bins m-1, m, m+1 (1/4, 1/2, 1/4); max_ms at the top used bin.
void fillHistogram(sync::v1::LatencyHistogram* h, int64_t requests, size_t m) {
  int64_t bins[kLatencyBins] = {};
  const int64_t mid = requests / 2, high = requests / 4;
  bins[m] += mid;
  bins[std::min(m + 1, kLatencyBins - 1)] += high;
  bins[m == 0 ? 0 : m - 1] += requests - mid - high;
  h->mutable_bins()->Resize(static_cast<int>(kLatencyBins), 0);
  size_t top = 0;
  for (size_t i = 0; i < kLatencyBins; ++i) {
    h->set_bins(static_cast<int>(i), bins[i]);
    if (bins[i] > 0) top = i;
  }
  h->set_max_ms(requests == 0 ? 0
                : top < kLatencyBoundsMs.size() ? kLatencyBoundsMs[top]
                                                : kLatencyBoundsMs.back() + 1000);
}

// One bucket of a batch, compact until the batch is written (a full-scale node makes 44,000
// of them per flush; the protos are built only for the Write).
struct Cell {
  int32_t route;
  int32_t consumer;  // -1 = "*" (the consumers past the top N)
  int32_t status;    // index into kStatuses
  int64_t requests;
};

struct Batch {
  uint64_t seq = 0;
  size_t part = 0;    // index of the batch within its flush
  bool repeat = false;  // --repeat_traffic: the node's first flush's batch `part`, again
  int64_t start = 0;  // bucket start, epoch seconds
  std::vector<Cell> cells;
  Clock::time_point made;
  Clock::time_point sent;
  bool in_flight = false;
};

struct Shape {
  int routes = 0, services = 1, consumers = 0, statuses = 0, peak = 0;
  std::vector<std::string> service_ids, route_ids, consumer_ids;
};

// `out` is reused from batch to batch: its cleared buckets, strings and bins keep their memory.
void toReport(const Shape& shape, const Batch& b, VitalsReport* out) {
  sync::v1::VitalsBatch* batch = out->mutable_batch();
  batch->Clear();
  batch->set_seq(b.seq);
  batch->mutable_buckets()->Reserve(static_cast<int>(b.cells.size()));
  for (const Cell& c : b.cells) {
    sync::v1::VitalsBucket* v = batch->add_buckets();
    const StatusMix& st = kStatuses[c.status];
    v->set_start(b.start);
    v->set_service_id(shape.service_ids[static_cast<size_t>(c.route % shape.services)]);
    v->set_route_id(shape.route_ids[static_cast<size_t>(c.route)]);
    v->set_consumer_id(c.consumer < 0 ? std::string("*")
                                      : shape.consumer_ids[static_cast<size_t>(c.consumer)]);
    v->set_status_code(st.code);
    v->set_requests(c.requests);
    v->set_bytes_in(c.requests * 350);
    v->set_bytes_out(c.requests * 1800);
    const size_t m = typicalBin(st.code);
    fillHistogram(v->mutable_total(), c.requests, m);
    fillHistogram(v->mutable_upstream(), st.upstream ? c.requests : 0, m == 0 ? 0 : m - 1);
    fillHistogram(v->mutable_proxy(), c.requests, 0);
  }
}

struct Percentiles {
  double p50 = 0, p99 = 0, max = 0;
  size_t n = 0;
};
Percentiles percentiles(std::vector<double> v) {
  Percentiles p;
  p.n = v.size();
  if (v.empty()) return p;
  std::sort(v.begin(), v.end());
  auto at = [&](double q) {
    return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
  };
  p.p50 = at(0.50);
  p.p99 = at(0.99);
  p.max = v.back();
  return p;
}

uint64_t cpuTicks(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t rp = text.rfind(')');
  if (rp == std::string::npos) return 0;
  std::istringstream fields(text.substr(rp + 2));
  std::string f;
  uint64_t utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> f; ++i) {  // field 3 is state
    if (i == 14) utime = std::stoull(f);
    if (i == 15) stime = std::stoull(f);
  }
  return utime + stime;
}

double selfCpuSeconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// Acks and latencies of every node, read by the main thread per interval and at the end.
struct Totals {
  std::mutex mu;
  uint64_t stored = 0, duplicate = 0, refused = 0, retry = 0, unknown = 0;
  uint64_t made_batches = 0, made_buckets = 0, sent_batches = 0, sent_bytes = 0;
  uint64_t stream_failures = 0;
  std::vector<double> ack_ms, flush_to_ack_ms;  // every answer (all results)
  std::vector<double> interval_ack_ms;           // since the last interval line
  std::map<std::string, uint64_t> refusal_reasons;  // "reason: detail" of the first few
  std::string first_stream_error;
};

struct Schedule {
  std::mutex mu;
  std::condition_variable cv;
  bool go = false;
  WallClock::time_point first_flush;
  std::chrono::seconds interval{10};
  int flushes = 1;
  std::atomic<bool> stop{false};
};

class Node {
 public:
  Node(int index, const Shape& shape, Totals& totals, Schedule& schedule,
       std::shared_ptr<grpc::Channel> channel, std::string instance)
      : index_(index),
        id_(absl::StrCat(absl::GetFlag(FLAGS_node_prefix), index)),
        instance_(std::move(instance)),
        shape_(shape),
        totals_(totals),
        schedule_(schedule),
        channel_(std::move(channel)),
        stub_(sync::v1::ConfigSync::NewStub(channel_)) {}

  void start() { thread_ = std::thread([this] { run(); }); }
  void join() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (context_ != nullptr) context_->TryCancel();
      cv_.notify_all();
    }
    if (thread_.joinable()) thread_.join();
  }
  // True once the CP's VitalsSettings arrived.
  bool settled() {
    std::lock_guard<std::mutex> lock(mu_);
    return have_settings_;
  }
  // The CP refused the stream for good (UNIMPLEMENTED, INVALID_ARGUMENT, PERMISSION_DENIED).
  bool gaveUp() {
    std::lock_guard<std::mutex> lock(mu_);
    return gave_up_;
  }
  sync::v1::VitalsSettings settings() {
    std::lock_guard<std::mutex> lock(mu_);
    return settings_;
  }
  size_t outstanding() {
    std::lock_guard<std::mutex> lock(mu_);
    return pending_.size();
  }
  // Batches per flush of this node (the last flush made).
  size_t lastFlushBatches() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_flush_batches_;
  }

 private:
  void run();
  WallClock::time_point flushIfDue();
  void makeFlush(int k);
  bool sendWhatFits(grpc::ClientReaderWriter<VitalsReport, VitalsControl>* stream);
  void readLoop(grpc::ClientReaderWriter<VitalsReport, VitalsControl>* stream);
  void onAck(const VitalsAck& ack);

  const int index_;
  const std::string id_;
  const std::string instance_;
  const Shape& shape_;
  Totals& totals_;
  Schedule& schedule_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<sync::v1::ConfigSync::Stub> stub_;
  std::thread thread_;

  std::mutex mu_;
  std::condition_variable cv_;
  grpc::ClientContext* context_ = nullptr;  // the live stream's, for join()
  bool have_settings_ = false;
  sync::v1::VitalsSettings settings_;
  bool stream_over_ = false;
  bool changed_ = false;
  Clock::time_point hold_until_ = Clock::time_point::min();
  std::map<uint64_t, Batch> pending_;  // made, not answered STORED/DUPLICATE/REFUSED
  size_t in_flight_ = 0;
  uint64_t next_seq_ = 1;
  size_t last_flush_batches_ = 0;
  bool gave_up_ = false;
  int next_flush_ = 0;       // node thread only
  VitalsReport scratch_;     // node thread only: the batch being written
  // --repeat_traffic (node thread only): the first flush's cells, and its batches as built.
  std::vector<Cell> first_cells_;
  std::vector<std::unique_ptr<VitalsReport>> built_;
  size_t built_per_batch_ = 0;
};

// Makes every flush that is due, connected or not (the DP collects its buckets either way);
// returns when the next one is due.
WallClock::time_point Node::flushIfDue() {
  WallClock::time_point first;
  {
    std::lock_guard<std::mutex> lock(schedule_.mu);
    if (!schedule_.go) return WallClock::now() + std::chrono::milliseconds(200);
    first = schedule_.first_flush;
  }
  while (next_flush_ < schedule_.flushes) {
    const WallClock::time_point due = first + schedule_.interval * next_flush_;
    const WallClock::time_point now = WallClock::now();
    if (now < due) return due;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!have_settings_) return now + std::chrono::milliseconds(200);  // from the first connect
    }
    makeFlush(next_flush_++);
  }
  return WallClock::time_point::max();
}

void Node::run() {
  while (!schedule_.stop) {
    grpc::ClientContext context;
    {
      std::lock_guard<std::mutex> lock(mu_);
      context_ = &context;
      stream_over_ = false;
      in_flight_ = 0;
      for (auto& [seq, b] : pending_) b.in_flight = false;  // sent again on this stream
    }
    auto stream = stub_->Report(&context);
    VitalsReport hello;
    hello.mutable_hello()->set_node_id(id_);
    hello.mutable_hello()->set_group(absl::GetFlag(FLAGS_group));
    hello.mutable_hello()->set_instance(instance_);
    std::thread reader;
    if (stream->Write(hello)) {
      reader = std::thread([this, s = stream.get()] { readLoop(s); });
      while (!schedule_.stop) {
        const WallClock::time_point due = flushIfDue();
        if (!sendWhatFits(stream.get())) break;
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait_until(lock, std::min(WallClock::now() + std::chrono::milliseconds(200), due),
                       [&] { return changed_ || stream_over_ || schedule_.stop.load(); });
        changed_ = false;
        if (stream_over_) break;
      }
    }
    // Cancelling unblocks the reader when we stop; an ended stream keeps its status.
    if (schedule_.stop) context.TryCancel();
    stream->WritesDone();
    if (reader.joinable()) reader.join();
    const grpc::Status status = stream->Finish();
    {
      std::lock_guard<std::mutex> lock(mu_);
      context_ = nullptr;
    }
    if (schedule_.stop) break;
    {
      std::lock_guard<std::mutex> lock(totals_.mu);
      totals_.stream_failures++;
      if (totals_.first_stream_error.empty()) {
        totals_.first_stream_error =
            absl::StrCat("node ", id_, ": code ", static_cast<int>(status.error_code()), ": ",
                         status.error_message());
      }
    }
    if (status.error_code() == grpc::StatusCode::UNIMPLEMENTED ||
        status.error_code() == grpc::StatusCode::INVALID_ARGUMENT ||
        status.error_code() == grpc::StatusCode::PERMISSION_DENIED) {
      std::fprintf(stderr, "vitals_sim: node %s: the CP ended the stream (%d: %s); giving up\n",
                   id_.c_str(), static_cast<int>(status.error_code()),
                   status.error_message().c_str());
      std::lock_guard<std::mutex> lock(mu_);
      gave_up_ = true;
      break;
    }
    // Reconnect in a second; flushes go on meanwhile.
    const auto retry_at = Clock::now() + std::chrono::seconds(1);
    while (!schedule_.stop && Clock::now() < retry_at) {
      flushIfDue();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
}

void Node::readLoop(grpc::ClientReaderWriter<VitalsReport, VitalsControl>* stream) {
  VitalsControl msg;
  while (stream->Read(&msg)) {
    if (msg.has_settings()) {
      std::lock_guard<std::mutex> lock(mu_);
      settings_ = msg.settings();
      have_settings_ = true;
      changed_ = true;
      cv_.notify_all();
    } else if (msg.has_ack()) {
      onAck(msg.ack());
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  stream_over_ = true;
  cv_.notify_all();
}

void Node::onAck(const VitalsAck& ack) {
  const Clock::time_point now = Clock::now();
  double ack_ms = -1, flush_ms = -1;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = pending_.find(ack.seq());
    if (it != pending_.end() && it->second.in_flight) {
      ack_ms = msBetween(it->second.sent, now);
      flush_ms = msBetween(it->second.made, now);
      it->second.in_flight = false;
      in_flight_--;
      if (ack.result() == VitalsAck::RETRY) {
        // As portico-dp: keep it, send nothing for one flush interval.
        hold_until_ = now + std::chrono::milliseconds(std::max<uint32_t>(
                                1000, settings_.flush_interval_ms()));
      } else {
        pending_.erase(it);
      }
    }
    changed_ = true;
    cv_.notify_all();
  }
  std::lock_guard<std::mutex> lock(totals_.mu);
  switch (ack.result()) {
    case VitalsAck::STORED: totals_.stored++; break;
    case VitalsAck::DUPLICATE: totals_.duplicate++; break;
    case VitalsAck::REFUSED:
      totals_.refused++;
      if (totals_.refusal_reasons.size() < 8 || totals_.refusal_reasons.count(ack.reason())) {
        totals_.refusal_reasons[ack.reason()]++;
      }
      break;
    case VitalsAck::RETRY: totals_.retry++; break;
    default: totals_.unknown++; break;
  }
  if (ack_ms >= 0) {
    totals_.ack_ms.push_back(ack_ms);
    totals_.interval_ack_ms.push_back(ack_ms);
    totals_.flush_to_ack_ms.push_back(flush_ms);
  }
}

bool Node::sendWhatFits(grpc::ClientReaderWriter<VitalsReport, VitalsControl>* stream) {
  const size_t window = static_cast<size_t>(std::max(1, absl::GetFlag(FLAGS_window)));
  for (;;) {
    Batch next;  // a copy of the cells: the proto is built without the lock
    uint64_t first_unacked = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stream_over_ || in_flight_ >= window || Clock::now() < hold_until_) return true;
      auto it = std::find_if(pending_.begin(), pending_.end(),
                             [](const auto& e) { return !e.second.in_flight; });
      if (it == pending_.end()) return true;
      it->second.in_flight = true;
      in_flight_++;
      first_unacked = pending_.begin()->first;  // as portico-dp: the oldest batch held
      next.seq = it->second.seq;
      next.start = it->second.start;
      next.part = it->second.part;
      next.repeat = it->second.repeat;
      if (!next.repeat || next.part >= built_.size() || !built_[next.part]) {
        next.cells = it->second.cells;
      }
    }
    VitalsReport* built = nullptr;
    if (next.repeat) {
      if (next.part >= built_.size()) built_.resize(next.part + 1);
      if (!built_[next.part]) {
        built_[next.part] = std::make_unique<VitalsReport>();
        toReport(shape_, next, built_[next.part].get());
      }
      built = built_[next.part].get();
      built->mutable_batch()->set_seq(next.seq);
      for (auto& bucket : *built->mutable_batch()->mutable_buckets()) bucket.set_start(next.start);
    }
    VitalsReport& report = built != nullptr ? *built : scratch_;
    if (built == nullptr) toReport(shape_, next, &report);
    report.mutable_batch()->set_first_unacked_seq(first_unacked);
    const size_t bytes = report.ByteSizeLong();
    {
      std::lock_guard<std::mutex> lock(mu_);  // ack latency: from the Write on
      if (auto it = pending_.find(next.seq); it != pending_.end()) it->second.sent = Clock::now();
    }
    if (!stream->Write(report)) return false;
    std::lock_guard<std::mutex> lock(totals_.mu);
    totals_.sent_batches++;
    totals_.sent_bytes += bytes;
  }
}

// Flush k: the bucket that closed last, every route x consumer x status, top-N folded.
void Node::makeFlush(int k) {
  const int64_t now_s =
      std::chrono::duration_cast<std::chrono::seconds>(WallClock::now().time_since_epoch())
          .count();
  const int64_t start = now_s - now_s % kBucketSeconds - kBucketSeconds;
  sync::v1::VitalsSettings s = settings();
  const size_t top = s.top_consumers();
  const size_t per_batch = std::max<uint32_t>(1, s.max_batch_buckets());
  std::mt19937_64 rng(absl::GetFlag(FLAGS_seed) * 1000003ULL +
                      static_cast<uint64_t>(index_) * 7919ULL + static_cast<uint64_t>(k));
  std::uniform_real_distribution<double> noise(0.8, 1.2);

  const int C = shape_.consumers, S = shape_.statuses;
  const bool repeat = absl::GetFlag(FLAGS_repeat_traffic);
  std::vector<Cell> cells;
  if (repeat && per_batch != built_per_batch_) {  // the CP changed the batch size: rebuild
    first_cells_.clear();
    built_.clear();
    built_per_batch_ = per_batch;
  }
  if (repeat && !first_cells_.empty()) {
    cells = first_cells_;
  } else {
  cells.reserve(static_cast<size_t>(shape_.routes) *
                (std::min<size_t>(top, static_cast<size_t>(C)) + 1) * static_cast<size_t>(S));
  std::vector<int64_t> req(static_cast<size_t>(C * S));
  std::vector<std::pair<int64_t, int>> ranked(static_cast<size_t>(C));  // (requests, consumer)
  std::vector<int64_t> folded(static_cast<size_t>(S));
  for (int r = 0; r < shape_.routes; ++r) {
    for (int c = 0; c < C; ++c) {
      const int rank = (c + r) % C;  // each route has its own top consumers
      int64_t sum = 0;
      for (int st = 0; st < S; ++st) {
        const double v = shape_.peak / (1.0 + rank) * kStatuses[st].weight * noise(rng);
        const int64_t n = std::max<int64_t>(1, static_cast<int64_t>(v));
        req[static_cast<size_t>(c * S + st)] = n;
        sum += n;
      }
      ranked[static_cast<size_t>(c)] = {sum, c};
    }
    if (static_cast<size_t>(C) > top) {
      // Most requests first; ties by id (the ids sort as the indexes), as the DP.
      std::nth_element(ranked.begin(), ranked.begin() + static_cast<long>(top), ranked.end(),
                       [](const auto& a, const auto& b) {
                         return a.first != b.first ? a.first > b.first : a.second < b.second;
                       });
    }
    std::fill(folded.begin(), folded.end(), 0);
    for (size_t i = 0; i < ranked.size(); ++i) {
      const int c = ranked[i].second;
      for (int st = 0; st < S; ++st) {
        const int64_t n = req[static_cast<size_t>(c * S + st)];
        if (i < top) {
          cells.push_back(Cell{r, c, st, n});
        } else {
          folded[static_cast<size_t>(st)] += n;
        }
      }
    }
    if (static_cast<size_t>(C) > top) {
      for (int st = 0; st < S; ++st) {
        cells.push_back(Cell{r, -1, st, folded[static_cast<size_t>(st)]});
      }
    }
  }
  if (repeat) first_cells_ = cells;
  }
  const Clock::time_point made = Clock::now();
  size_t batches = 0;
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t i = 0; i < cells.size(); i += per_batch) {
    Batch b;
    b.seq = next_seq_++;
    b.start = start;
    b.part = i / per_batch;
    b.repeat = repeat;
    b.made = made;
    b.cells.assign(cells.begin() + static_cast<long>(i),
                   cells.begin() + static_cast<long>(std::min(cells.size(), i + per_batch)));
    pending_.emplace(b.seq, std::move(b));
    batches++;
  }
  last_flush_batches_ = batches;
  std::lock_guard<std::mutex> tl(totals_.mu);
  totals_.made_batches += batches;
  totals_.made_buckets += cells.size();
}

// ---------------------------------------------------------------------------------------------

bool splitHostPort(const std::string& s, std::string* host, int* port) {
  const size_t colon = s.rfind(':');
  if (colon == std::string::npos) return false;
  *host = s.substr(0, colon);
  *port = std::atoi(s.c_str() + colon + 1);
  return *port > 0;
}

// POSTs every entity (4 connections at a time); 201 or 409 (already there) is fine.
bool createEntities(const Shape& shape) {
  std::string host;
  int port = 0;
  if (!splitHostPort(absl::GetFlag(FLAGS_admin), &host, &port)) {
    std::fprintf(stderr, "vitals_sim: --admin must be host:port\n");
    return false;
  }
  std::vector<std::pair<std::string, std::string>> posts;  // (path, body)
  for (int i = 0; i < shape.services; ++i) {
    posts.emplace_back("/services", absl::StrFormat(R"({"id":"%s","name":"vsim-svc-%d",)"
                                                    R"("host":"127.0.0.1","port":9})",
                                                    shape.service_ids[i], i));
  }
  std::vector<std::pair<std::string, std::string>> later;  // routes need their service
  for (int r = 0; r < shape.routes; ++r) {
    later.emplace_back(
        absl::StrCat("/services/", shape.service_ids[static_cast<size_t>(r % shape.services)],
                     "/routes"),
        absl::StrFormat(R"({"id":"%s","name":"vsim-route-%d","paths":["/vsim/%d"]})",
                        shape.route_ids[r], r, r));
  }
  for (int c = 0; c < shape.consumers; ++c) {
    later.emplace_back("/consumers", absl::StrFormat(R"({"id":"%s","username":"vsim-user-%d"})",
                                                     shape.consumer_ids[c], c));
  }
  std::atomic<int> created{0}, existing{0}, failed{0};
  auto post_all = [&](const std::vector<std::pair<std::string, std::string>>& list) {
    std::atomic<size_t> next{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&] {
        for (size_t i = next++; i < list.size() && failed < 5; i = next++) {
          const testing::HttpResponse r =
              testing::httpRequest(host, port, "POST", list[i].first, list[i].second);
          if (r.status == 201) {
            created++;
          } else if (r.status == 409) {
            existing++;
          } else {
            failed++;
            std::fprintf(stderr, "vitals_sim: POST %s answered %d: %s\n", list[i].first.c_str(),
                         r.status, r.body.substr(0, 300).c_str());
          }
        }
      });
    }
    for (auto& t : threads) t.join();
  };
  const Clock::time_point t0 = Clock::now();
  post_all(posts);
  if (failed == 0) post_all(later);
  std::printf("entities services=%d routes=%d consumers=%d created=%d existing=%d failed=%d "
              "ms=%.0f\n",
              shape.services, shape.routes, shape.consumers, created.load(), existing.load(),
              failed.load(), msBetween(t0, Clock::now()));
  std::fflush(stdout);
  return failed == 0;
}

std::string randomInstance() {
  std::random_device rd;
  return absl::StrFormat("%08x%08x", rd(), rd());
}

int run() {
  Shape shape;
  shape.routes = std::max(1, absl::GetFlag(FLAGS_routes));
  shape.consumers = std::max(0, absl::GetFlag(FLAGS_consumers));
  shape.statuses = std::clamp(absl::GetFlag(FLAGS_statuses), 1, kMaxStatuses);
  shape.services = absl::GetFlag(FLAGS_services) > 0 ? absl::GetFlag(FLAGS_services)
                                                     : std::max(1, shape.routes / 10);
  shape.peak = std::max(1, absl::GetFlag(FLAGS_peak_requests));
  for (int i = 0; i < shape.services; ++i) shape.service_ids.push_back(entityId(1, i));
  for (int i = 0; i < shape.routes; ++i) shape.route_ids.push_back(entityId(2, i));
  for (int i = 0; i < shape.consumers; ++i) shape.consumer_ids.push_back(entityId(3, i));
  if (shape.consumers == 0) {
    std::fprintf(stderr, "vitals_sim: --consumers must be at least 1\n");
    return 2;
  }
  if (absl::GetFlag(FLAGS_create_entities) && !createEntities(shape)) return 1;
  if (absl::GetFlag(FLAGS_duration_s) <= 0) return 0;

  const int n = std::max(1, absl::GetFlag(FLAGS_nodes));
  const int interval_s = std::max(1, absl::GetFlag(FLAGS_interval_s));
  Totals totals;
  Schedule schedule;
  schedule.interval = std::chrono::seconds(interval_s);
  schedule.flushes = std::max(1, absl::GetFlag(FLAGS_duration_s) / interval_s);

  std::vector<std::unique_ptr<Node>> nodes;
  for (int i = 0; i < n; ++i) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // one TCP connection per node
    args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);             // as portico-dp
    args.SetMaxReceiveMessageSize(4 << 20);
    auto channel = grpc::CreateCustomChannel(absl::GetFlag(FLAGS_cp),
                                             grpc::InsecureChannelCredentials(), args);
    nodes.push_back(std::make_unique<Node>(i, shape, totals, schedule, std::move(channel),
                                           randomInstance()));
  }
  const Clock::time_point t_connect = Clock::now();
  for (auto& node : nodes) node->start();
  auto stop_all = [&] {
    schedule.stop = true;
    schedule.cv.notify_all();
    for (auto& node : nodes) node->join();
  };
  bool gave_up = false;
  const bool all_settled = testing::waitFor(
      [&] {
        for (auto& node : nodes) {
          if (node->gaveUp()) return gave_up = true;
          if (!node->settled()) return false;
        }
        return true;
      },
      std::chrono::seconds(30));
  if (!all_settled || gave_up) {
    std::lock_guard<std::mutex> lock(totals.mu);
    std::fprintf(stderr, "vitals_sim: not every node got VitalsSettings in 30 s (%s)\n",
                 totals.first_stream_error.c_str());
    stop_all();
    return 1;
  }
  const sync::v1::VitalsSettings settings = nodes[0]->settings();
  std::printf("vitals_sim nodes=%d routes=%d services=%d consumers=%d statuses=%d "
              "interval_s=%d flushes=%d connect_ms=%.0f\n",
              n, shape.routes, shape.services, shape.consumers, shape.statuses, interval_s,
              schedule.flushes, msBetween(t_connect, Clock::now()));
  std::printf("settings top_consumers=%u max_batch_buckets=%u flush_interval_ms=%u\n",
              settings.top_consumers(), settings.max_batch_buckets(),
              settings.flush_interval_ms());
  if (settings.flush_interval_ms() != static_cast<uint32_t>(interval_s) * 1000) {
    std::printf("note: the CP asks for a %u ms cadence; simulating --interval_s=%d\n",
                settings.flush_interval_ms(), interval_s);
  }
  std::fflush(stdout);

  // The first flush: as portico-dp, 1.2 s past the next multiple of the interval.
  const WallClock::time_point now = WallClock::now();
  WallClock::time_point first;
  if (absl::GetFlag(FLAGS_align)) {
    const int64_t ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
    const int64_t iv = interval_s * 1000LL;
    first = WallClock::time_point(std::chrono::milliseconds(ms - ms % iv + iv + 1200));
  } else {
    first = now + schedule.interval;
  }
  std::printf("first_flush_unix_ms=%" PRId64 "\n",
              static_cast<int64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                       first.time_since_epoch())
                                       .count()));
  std::fflush(stdout);
  {
    std::lock_guard<std::mutex> lock(schedule.mu);
    schedule.first_flush = first;
    schedule.go = true;
  }
  schedule.cv.notify_all();

  const int cp_pid = absl::GetFlag(FLAGS_cp_pid);
  const double tick_s = 1.0 / static_cast<double>(::sysconf(_SC_CLK_TCK));
  const double cpu_self0 = selfCpuSeconds();
  std::vector<size_t> outstanding_at_end;
  size_t batches_per_flush = 0;
  uint64_t cp_ticks0 = cp_pid > 0 ? cpuTicks(cp_pid) : 0;
  const uint64_t cp_ticks_run0 = cp_ticks0;
  Clock::time_point t_prev = Clock::now();
  const Clock::time_point t_run0 = t_prev;
  uint64_t prev_made = 0, prev_acked = 0;
  for (int k = 0; k < schedule.flushes; ++k) {
    // The end of interval k: just before flush k+1 would be made.
    std::this_thread::sleep_until(first + schedule.interval * (k + 1) -
                                  std::chrono::milliseconds(300));
    size_t outstanding = 0, per_flush = 0;
    for (auto& node : nodes) {
      outstanding += node->outstanding();
      per_flush += node->lastFlushBatches();
    }
    batches_per_flush = std::max(batches_per_flush, per_flush);
    outstanding_at_end.push_back(outstanding);
    std::vector<double> lat;
    uint64_t made, acked, retry;
    {
      std::lock_guard<std::mutex> lock(totals.mu);
      lat.swap(totals.interval_ack_ms);
      made = totals.made_batches;
      acked = totals.stored + totals.duplicate + totals.refused;
      retry = totals.retry;
    }
    const Clock::time_point t_now = Clock::now();
    const Percentiles p = percentiles(lat);
    std::string cpu;
    if (cp_pid > 0) {
      const uint64_t ticks = cpuTicks(cp_pid);
      cpu = absl::StrFormat(" cp_cpu_pct=%.1f",
                            100.0 * static_cast<double>(ticks - cp_ticks0) * tick_s /
                                (msBetween(t_prev, t_now) / 1000.0));
      cp_ticks0 = ticks;
    }
    std::printf("interval=%d made_batches=%" PRIu64 " answered=%" PRIu64 " retry_total=%" PRIu64
                " outstanding_at_end=%zu acks=%zu ack_p50_ms=%.1f ack_p99_ms=%.1f"
                " ack_max_ms=%.1f%s\n",
                k + 1, made - prev_made, acked - prev_acked, retry, outstanding, p.n, p.p50,
                p.p99, p.max, cpu.c_str());
    std::fflush(stdout);
    prev_made = made;
    prev_acked = acked;
    t_prev = t_now;
  }
  const Clock::time_point t_run1 = Clock::now();
  const uint64_t cp_ticks_run1 = cp_pid > 0 ? cpuTicks(cp_pid) : 0;
  // Drain: the last flush's acks.
  const Clock::time_point t_drain = Clock::now();
  testing::waitFor(
      [&] {
        for (auto& node : nodes) {
          if (node->outstanding() > 0) return false;
        }
        return true;
      },
      std::chrono::seconds(std::max(0, absl::GetFlag(FLAGS_drain_s))));
  const double drain_ms = msBetween(t_drain, Clock::now());
  size_t unacked = 0;
  for (auto& node : nodes) unacked += node->outstanding();
  stop_all();

  std::lock_guard<std::mutex> lock(totals.mu);
  const Percentiles ack = percentiles(totals.ack_ms);
  const Percentiles f2a = percentiles(totals.flush_to_ack_ms);
  size_t max_out = 0;
  std::string series;
  for (size_t o : outstanding_at_end) {
    max_out = std::max(max_out, o);
    absl::StrAppend(&series, series.empty() ? "" : ",", o);
  }
  // Kept up: at the end of every interval less than one flush was unanswered, and the last
  // flush was answered within the drain time.
  const bool kept_up = max_out < std::max<size_t>(1, batches_per_flush) && unacked == 0;
  std::printf("summary batches_made=%" PRIu64 " buckets_made=%" PRIu64 " batches_sent=%" PRIu64
              " bytes_sent=%" PRIu64 " acked=%" PRIu64 " stored=%" PRIu64 " duplicate=%" PRIu64
              " refused=%" PRIu64 " retry=%" PRIu64 " unacked=%zu stream_failures=%" PRIu64 "\n",
              totals.made_batches, totals.made_buckets, totals.sent_batches, totals.sent_bytes,
              totals.stored + totals.duplicate + totals.refused + totals.retry, totals.stored,
              totals.duplicate, totals.refused, totals.retry, unacked, totals.stream_failures);
  std::printf("summary ack_p50_ms=%.1f ack_p99_ms=%.1f ack_max_ms=%.1f flush_to_ack_p50_ms=%.1f "
              "flush_to_ack_p99_ms=%.1f flush_to_ack_max_ms=%.1f batches_per_flush=%zu "
              "outstanding_at_interval_ends=%s kept_up=%s drain_ms=%.0f sim_cpu_s=%.2f\n",
              ack.p50, ack.p99, ack.max, f2a.p50, f2a.p99, f2a.max, batches_per_flush,
              series.c_str(), kept_up ? "yes" : "no", drain_ms, selfCpuSeconds() - cpu_self0);
  if (cp_pid > 0) {
    const double run_s = msBetween(t_run0, t_run1) / 1000.0;
    std::printf("summary cp_cpu_pct=%.1f (utime+stime of pid %d over %.0f s, %% of one core)\n",
                100.0 * static_cast<double>(cp_ticks_run1 - cp_ticks_run0) * tick_s / run_s,
                cp_pid, run_s);
  }
  for (const auto& [reason, count] : totals.refusal_reasons) {
    std::printf("refused %" PRIu64 "x: %s\n", count, reason.c_str());
  }
  if (!totals.first_stream_error.empty()) {
    std::printf("first stream error: %s\n", totals.first_stream_error.c_str());
  }
  std::fflush(stdout);
  if (absl::GetFlag(FLAGS_strict)) {
    const bool ok = totals.stored == totals.made_batches && totals.refused == 0 &&
                    totals.duplicate == 0 && unacked == 0;
    if (!ok) {
      std::fprintf(stderr, "vitals_sim: --strict: not every batch was STORED\n");
      return 1;
    }
  }
  return 0;
}

}  // namespace
}  // namespace portico::bench

int main(int argc, char** argv) {
  portico::parseFlagsWithEnv(argc, argv,
                             "vitals_sim: simulated data planes reporting vitals to portico-cp");
  portico::LogLevel level;
  if (portico::parseLogLevel(absl::GetFlag(FLAGS_log_level), &level)) {
    portico::setLogLevel(level);
  }
  const int rc = portico::bench::run();
  std::fflush(stdout);
  // gRPC's own threads may still be winding down; nothing of ours needs destructors now.
  std::_Exit(rc);
}
