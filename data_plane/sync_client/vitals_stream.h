// VitalsStream: the data plane's side of ConfigSync.Report, opened on the Sync stream's
// channel once the control plane answered Hello and ended with it. It sends VitalsHello,
// then every flush interval collects the workers' closed buckets (data_plane/vitals/) and
// sends the batches the CP has not acknowledged, lowest sequence number first, at most
// kWindow unanswered at a time. Batches stay in the Collector until acknowledged, so after
// a reconnect, to this CP or another replica, the same numbers go again and the CP
// de-duplicates them: every request is counted exactly once.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "data_plane/vitals/vitals.h"
#include "grpcpp/grpcpp.h"

namespace portico::dp {

class VitalsStream {
 public:
  static constexpr size_t kWindow = 16;

  struct Options {
    std::string node_id, group, instance, join_token;
  };
  VitalsStream(std::shared_ptr<grpc::Channel> channel, Options options,
               vitals::Collector& collector);

  // The stream's whole life, on the calling thread; returns once the stream ended or
  // cancel() was called.
  void run();
  // Any thread; prompt.
  void cancel() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  std::shared_ptr<grpc::Channel> channel_;
  const Options options_;
  vitals::Collector& collector_;
  absl::Mutex mu_;
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace portico::dp
