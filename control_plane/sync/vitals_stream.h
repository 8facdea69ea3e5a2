// ReportStream: the control plane's side of ConfigSync.Report for one DP. After the same
// peer checks as Sync (certificate pin or PKI groups, join token), it reads VitalsHello (node
// and group, checked as Sync's Hello is), sends the VitalsSettings, then hands each batch to
// the VitalsSink and writes its VitalsAck back when the sink answers. Sequence numbers must
// rise within a stream; a batch that goes back is refused as bad_sequence.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "control_plane/sync/sync_server.h"
#include "control_plane/sync/wire/grpc_server.h"

namespace portico::cp {

class ReportStream final : public wire::CallHandler {
 public:
  ReportStream(const SyncServerOptions& options, VitalsSink& sink, wire::ServerCall* call,
               std::string peer, std::vector<std::string> cert_groups);

  // Starts reading, or refuses the stream at once with `refusal`.
  void begin(std::optional<wire::GrpcStatus> refusal);

  // Interface: wire::CallHandler
  void onMessage(std::string_view message) override;
  void onReadsDone() override;
  void onWriteDone(bool ok) override;
  void onDone() override;

 private:
  // Writes go through here: the call allows one at a time, and acks come from the sink's
  // thread. Shared with the sink's callbacks, which may outlive the stream.
  struct Outbox {
    absl::Mutex mu;
    wire::ServerCall* call ABSL_GUARDED_BY(mu);  // null once the call is over
    std::deque<wire::SharedBytes> queue ABSL_GUARDED_BY(mu);
    bool writing ABSL_GUARDED_BY(mu) = false;
    // Batches answered RETRY: the DP sends them again later on this stream, below the
    // highest seq seen, and that is no bad sequence.
    std::set<uint64_t> retried ABSL_GUARDED_BY(mu);
    void send(const google::protobuf::Message& m);
    void writeDone();  // starts the next write
    void finish(wire::GrpcStatus status);
  };

  void end(absl::StatusCode code, std::string message);

  const SyncServerOptions& options_;
  VitalsSink& sink_;
  const std::string peer_;
  const std::vector<std::string> cert_groups_;
  std::shared_ptr<Outbox> out_;
  // Reader-thread only (callbacks of one call never run concurrently).
  bool hello_seen_ = false;
  bool ended_ = false;
  std::string node_id_, instance_, group_;
  uint64_t last_seq_ = 0;
};

}  // namespace portico::cp
