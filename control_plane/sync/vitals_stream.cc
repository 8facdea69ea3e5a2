#include "control_plane/sync/vitals_stream.h"

#include <algorithm>
#include <utility>

#include <google/protobuf/arena.h>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "control_plane/sync/sync_server_impl.h"

namespace portico::cp {
namespace {

constexpr char kVitalsLog[] = "vitals";


}  // namespace

void ReportStream::Outbox::send(const google::protobuf::Message& m) {
  auto bytes = std::make_shared<const std::string>(m.SerializeAsString());
  absl::MutexLock lock(&mu);
  if (call == nullptr) return;
  if (writing) {
    queue.push_back(std::move(bytes));
    return;
  }
  writing = true;
  call->write(std::move(bytes));
}

void ReportStream::Outbox::writeDone() {
  absl::MutexLock lock(&mu);
  writing = false;
  if (call == nullptr || queue.empty()) return;
  writing = true;
  call->write(std::move(queue.front()));
  queue.pop_front();
}

void ReportStream::Outbox::finish(wire::GrpcStatus status) {
  absl::MutexLock lock(&mu);
  if (call != nullptr) call->finish(std::move(status));
}

ReportStream::ReportStream(const SyncServerOptions& options, VitalsSink& sink,
                           wire::ServerCall* call, std::string peer,
                           std::vector<std::string> cert_groups)
    : options_(options),
      sink_(sink),
      peer_(std::move(peer)),
      cert_groups_(std::move(cert_groups)),
      out_(std::make_shared<Outbox>()) {
  absl::MutexLock lock(&out_->mu);
  out_->call = call;
}

void ReportStream::begin(std::optional<wire::GrpcStatus> refusal) {
  if (refusal.has_value()) {
    ended_ = true;
    out_->finish(std::move(*refusal));
  }
}

void ReportStream::end(absl::StatusCode code, std::string message) {
  if (ended_) return;
  ended_ = true;
  LOG_WARN(kVitalsLog, "ending vitals stream of %s: %s",
           node_id_.empty() ? peer_ : node_id_, message);
  out_->finish(wire::GrpcStatus{static_cast<int>(code), std::move(message), {}});
}

void ReportStream::onMessage(std::string_view bytes) {
  if (ended_) return;
  // Parsed on an arena that the batch keeps alive until it is stored: a batch is thousands
  // of buckets of three id strings and three histograms, ~10 heap allocations each otherwise
  // (perf at 50 DPs: ~60% of this thread in malloc, free and page faults). A few blocks per
  // batch instead, sized from the message.
  google::protobuf::ArenaOptions arena_options;
  arena_options.start_block_size = std::clamp<size_t>(bytes.size() * 4, 4096, 16u << 20);
  arena_options.max_block_size = 16u << 20;
  auto arena = std::make_shared<google::protobuf::Arena>(arena_options);
  sync::v1::VitalsReport& report =
      *google::protobuf::Arena::CreateMessage<sync::v1::VitalsReport>(arena.get());
  if (!report.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    sink_.countRefused("malformed");
    end(absl::StatusCode::kInvalidArgument, "malformed VitalsReport");
    return;
  }
  if (!hello_seen_) {
    if (!report.has_hello()) {
      end(absl::StatusCode::kInvalidArgument, "the first message must be hello");
      return;
    }
    const sync::v1::VitalsHello& hello = report.hello();
    if (hello.node_id().empty() || hello.instance().empty()) {
      end(absl::StatusCode::kInvalidArgument, "hello.node_id and hello.instance are required");
      return;
    }
    for (const std::string& problem : {helloFieldProblem("node_id", hello.node_id(), 128),
                                       helloFieldProblem("instance", hello.instance(), 64),
                                       helloFieldProblem("group", hello.group(), 255)}) {
      if (!problem.empty()) {
        end(absl::StatusCode::kInvalidArgument, problem);
        return;
      }
    }
    if (std::optional<std::string> why =
            groupRefusal(options_, cert_groups_, hello.group(), &group_);
        why.has_value()) {
      end(absl::StatusCode::kPermissionDenied, *why);
      return;
    }
    hello_seen_ = true;
    node_id_ = hello.node_id();
    instance_ = hello.instance();
    sync::v1::VitalsControl control;
    *control.mutable_settings() = sink_.settings();
    out_->send(control);
    return;
  }
  if (!report.has_batch()) {
    end(absl::StatusCode::kInvalidArgument, "expected a batch");
    return;
  }
  // Shares the arena's ownership: the batch lives exactly as long as the arena.
  std::shared_ptr<const sync::v1::VitalsBatch> batch(std::move(arena), &report.batch());
  const uint64_t seq = batch->seq();
  bool resend = false;
  if (seq != 0 && seq <= last_seq_) {
    absl::MutexLock lock(&out_->mu);
    resend = out_->retried.erase(seq) > 0;
  }
  if (seq == 0 || (seq <= last_seq_ && !resend)) {
    // Within one stream the DP sends in order; going back is garbage, not a resend.
    sink_.countRefused("bad_sequence");
    sync::v1::VitalsControl control;
    control.mutable_ack()->set_seq(seq);
    control.mutable_ack()->set_result(sync::v1::VitalsAck::REFUSED);
    control.mutable_ack()->set_reason(absl::StrCat(
        "bad_sequence: seq ", seq, seq == 0 ? " (must be > 0)" : " after ", last_seq_));
    out_->send(control);
    return;
  }
  last_seq_ = std::max(last_seq_, seq);
  sink_.submit(group_, node_id_, instance_, std::move(batch),
               [out = out_](const sync::v1::VitalsAck& ack) {
                 if (ack.result() == sync::v1::VitalsAck::RETRY) {
                   absl::MutexLock lock(&out->mu);
                   out->retried.insert(ack.seq());
                 }
                 sync::v1::VitalsControl control;
                 *control.mutable_ack() = ack;
                 out->send(control);
               });
}

void ReportStream::onReadsDone() {
  ended_ = true;
  out_->finish(wire::GrpcStatus{});
}

void ReportStream::onWriteDone(bool ok) {
  if (!ok) {
    ended_ = true;
    out_->finish(wire::GrpcStatus{static_cast<int>(absl::StatusCode::kUnavailable),
                                  "write failed", {}});
    return;
  }
  out_->writeDone();
}

void ReportStream::onDone() {
  {
    absl::MutexLock lock(&out_->mu);
    out_->call = nullptr;  // acks still on their way are dropped; the DP sends again
  }
  delete this;
}

}  // namespace portico::cp
