#include "data_plane/sync_client/vitals_stream.h"

#include <algorithm>
#include <set>
#include <thread>
#include <utility>

#include "absl/time/clock.h"
#include "common/logging.h"
#include "common/sync/cluster_tls.h"
#include "portico/sync/v1/sync.grpc.pb.h"

namespace portico::dp {
namespace {

constexpr char kVitalsLog[] = "vitals";

// When the next flush is due: just after the next multiple of the interval (wall clock), so
// every DP sends a bucket shortly after it closed (workers close idle buckets within ~1 s).
absl::Time nextFlush(absl::Time now, uint32_t interval_ms) {
  const int64_t interval = std::max<uint32_t>(1000, interval_ms);
  const int64_t ms = absl::ToUnixMillis(now);
  return absl::FromUnixMillis(ms - ms % interval + interval + 1200);
}

}  // namespace

VitalsStream::VitalsStream(std::shared_ptr<grpc::Channel> channel, Options options,
                           vitals::Collector& collector)
    : channel_(std::move(channel)), options_(std::move(options)), collector_(collector) {}

void VitalsStream::cancel() {
  absl::MutexLock lock(&mu_);
  cancelled_ = true;
  if (context_ != nullptr) {
    context_->TryCancel();
  }
}

void VitalsStream::run() {
  grpc::ClientContext context;
  {
    absl::MutexLock lock(&mu_);
    if (cancelled_) {
      return;
    }
    context_ = &context;
  }
  if (!options_.join_token.empty()) {
    context.AddMetadata(sync::kJoinTokenMetadata, options_.join_token);
  }
  auto stub = sync::v1::ConfigSync::NewStub(channel_);
  auto stream = stub->Report(&context);

  // Shared with the reader thread.
  struct Shared {
    absl::Mutex mu;
    std::set<uint64_t> in_flight ABSL_GUARDED_BY(mu);  // sent, not answered
    absl::Time hold_until ABSL_GUARDED_BY(mu) = absl::InfinitePast();  // after a RETRY
    bool over ABSL_GUARDED_BY(mu) = false;
    bool changed ABSL_GUARDED_BY(mu) = false;
  } shared;

  sync::v1::VitalsReport hello;
  hello.mutable_hello()->set_node_id(options_.node_id);
  hello.mutable_hello()->set_group(options_.group);
  hello.mutable_hello()->set_instance(options_.instance);
  std::thread reader;
  if (stream->Write(hello)) {
    reader = std::thread([&] {
      sync::v1::VitalsControl msg;
      while (stream->Read(&msg)) {
        if (msg.has_settings()) {
          vitals::Collector::Settings s;
          const auto& in = msg.settings();
          s.flush_interval_ms = std::clamp<uint32_t>(in.flush_interval_ms(), 1000, 600000);
          s.top_consumers = std::min<uint32_t>(in.top_consumers(), 100000);
          s.max_batch_buckets = std::clamp<uint32_t>(in.max_batch_buckets(), 1, 100000);
          collector_.setSettings(s);
        } else if (msg.has_ack()) {
          const auto& ack = msg.ack();
          if (ack.result() == sync::v1::VitalsAck::RETRY) {
            absl::MutexLock lock(&shared.mu);
            shared.in_flight.erase(ack.seq());
            shared.hold_until =
                absl::Now() + absl::Milliseconds(collector_.settings().flush_interval_ms);
            continue;
          }
          if (ack.result() == sync::v1::VitalsAck::REFUSED) {
            LOG_WARN(kVitalsLog, "control plane refused vitals batch %d: %s", ack.seq(),
                     ack.reason());
          }
          collector_.acknowledge(ack.seq());
          absl::MutexLock lock(&shared.mu);
          shared.in_flight.erase(ack.seq());
          shared.changed = true;
        }
      }
      absl::MutexLock lock(&shared.mu);
      shared.over = true;
    });
    absl::Time flush_at = nextFlush(absl::Now(), collector_.settings().flush_interval_ms);
    for (;;) {
      {
        absl::MutexLock lock(&mu_);
        if (cancelled_) break;
      }
      if (absl::Now() >= flush_at) {
        collector_.collect();
        flush_at = nextFlush(absl::Now(), collector_.settings().flush_interval_ms);
      }
      bool write_failed = false;
      const std::vector<vitals::Collector::BatchPtr> pending = collector_.pending();
      // Everything below the oldest batch held was answered or dropped: the CP may store a
      // batch above a gap only when the DP says so (VitalsBatch.first_unacked_seq).
      const uint64_t first_unacked = pending.empty() ? 0 : pending.front()->seq();
      for (const auto& batch : pending) {
        {
          absl::MutexLock lock(&shared.mu);
          if (shared.over || absl::Now() < shared.hold_until ||
              shared.in_flight.size() >= kWindow) {
            break;
          }
          if (shared.in_flight.contains(batch->seq())) continue;
          shared.in_flight.insert(batch->seq());
        }
        sync::v1::VitalsReport report;
        *report.mutable_batch() = *batch;
        report.mutable_batch()->set_first_unacked_seq(first_unacked);
        if (!stream->Write(report)) {
          write_failed = true;
          break;
        }
      }
      if (write_failed) break;
      absl::MutexLock lock(&shared.mu);
      auto wake = [&shared]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(shared.mu) {
        return shared.over || shared.changed;
      };
      shared.mu.AwaitWithDeadline(absl::Condition(&wake),
                                  std::min(flush_at, absl::Now() + absl::Milliseconds(500)));
      shared.changed = false;
      if (shared.over) break;
    }
  }
  context.TryCancel();
  if (reader.joinable()) {
    reader.join();
  }
  grpc::Status status = stream->Finish();
  if (!status.ok() && status.error_code() != grpc::StatusCode::CANCELLED) {
    LOG_WARN(kVitalsLog, "vitals stream ended (code %d: %s); unacknowledged batches go again on "
             "the next connection", static_cast<int>(status.error_code()),
             status.error_message());
  }
  absl::MutexLock lock(&mu_);
  context_ = nullptr;
}

}  // namespace portico::dp
