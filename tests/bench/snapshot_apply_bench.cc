// DP apply cost of a large config (Google Benchmark): config::validateSnapshot and
// Snapshot::build of 10k services + 10k routes + 10k consumers, the shape of sync_bench.sh's
// full snapshot (literal service addresses; routes: 45% host+prefix+method, 45% prefix, 10%
// regex, as proxy_mem.sh). Goal: validate + build <= 300 ms (RESULTS.md, "Config sync").
//
//   build-dp3/bin/snapshot_apply_bench --benchmark_repetitions=5
//       --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/config/validate.h"
#include "data_plane/snapshot.h"

namespace portico::dp {
namespace {

std::string uuid(int kind, int i) {
  char id[40];
  std::snprintf(id, sizeof(id), "5b1a3c1e-000%d-4000-8000-%012d", kind, i);
  return id;
}

config::v1::Snapshot makeConfig(int n) {
  config::v1::Snapshot s;
  s.set_generation(1);
  for (int i = 0; i < n; ++i) {
    auto* svc = s.add_services();
    svc->set_id(uuid(1, i));
    svc->set_name(absl::StrCat("s", i));
    svc->set_protocol("http");
    svc->set_host("127.0.0.1");
    svc->set_port(10000 + i % 50000);
    svc->set_enabled(true);
    svc->set_retries(5);
    svc->set_connect_timeout(60000);
    svc->set_read_timeout(60000);
    svc->set_write_timeout(60000);
    auto* r = s.add_routes();
    r->set_id(uuid(2, i));
    r->set_name(absl::StrCat("r", i));
    r->add_protocols("http");
    r->add_protocols("https");
    r->set_strip_path(true);
    r->set_path_handling("v0");
    r->set_https_redirect_status_code(426);
    r->set_request_buffering(true);
    r->set_response_buffering(true);
    r->set_service_id(svc->id());
    if (i % 10 == 0) {
      r->add_paths(absl::StrCat("~/re", i, "/(\\d+)/profile$"));
    } else if (i % 2 == 0) {
      r->add_hosts(absl::StrCat("h", i, ".example.com"));
      r->add_paths(absl::StrCat("/api/v", i % 3));
      r->add_methods("GET");
    } else {
      r->add_paths(absl::StrCat("/svc", i, "/items"));
    }
    auto* c = s.add_consumers();
    c->set_id(uuid(3, i));
    c->set_username(absl::StrCat("user", i));
    c->set_custom_id(absl::StrCat("cid", i));
  }
  return s;
}

const config::v1::Snapshot& bigConfig() {
  static const auto* const kConfig = new config::v1::Snapshot(makeConfig(10000));
  return *kConfig;
}

void BM_Validate(benchmark::State& state) {
  const config::v1::Snapshot& cfg = bigConfig();
  for (auto _ : state) {
    config::FieldErrors errors = config::validateSnapshot(cfg);
    if (!errors.empty()) {
      state.SkipWithError((errors[0].field + ": " + errors[0].reason).c_str());
      break;
    }
  }
}

// Every service and route new to the validator in every iteration (a tag that changes), so
// nothing is skipped as already validated: the first apply of a config. BM_Validate above
// validates the same config again, as a delta's apply does for the entities it left alone.
void BM_ValidateAllChanged(benchmark::State& state) {
  config::v1::Snapshot cfg = bigConfig();
  int64_t round = 0;
  for (auto _ : state) {
    state.PauseTiming();
    const std::string tag = absl::StrCat("round-", ++round);
    for (auto& svc : *cfg.mutable_services()) {
      svc.clear_tags();
      svc.add_tags(tag);
    }
    for (auto& r : *cfg.mutable_routes()) {
      r.clear_tags();
      r.add_tags(tag);
    }
    state.ResumeTiming();
    config::FieldErrors errors = config::validateSnapshot(cfg);
    if (!errors.empty()) {
      state.SkipWithError((errors[0].field + ": " + errors[0].reason).c_str());
      break;
    }
  }
}

// As the DP's apply callback: build from a const proto (copied), then publish, which frees the
// previous generation on this thread.
void BM_Build(benchmark::State& state) {
  const config::v1::Snapshot& cfg = bigConfig();
  SnapshotStore store;
  store.set(*Snapshot::build(cfg, "warm"));
  for (auto _ : state) {
    absl::StatusOr<SnapshotConstSharedPtr> snap = Snapshot::build(cfg, "h");
    if (!snap.ok()) {
      state.SkipWithError(std::string(snap.status().message()).c_str());
      break;
    }
    store.set(*std::move(snap));
  }
}

void BM_ValidateAndBuild(benchmark::State& state) {
  const config::v1::Snapshot& cfg = bigConfig();
  SnapshotStore store;
  store.set(*Snapshot::build(cfg, "warm"));
  for (auto _ : state) {
    if (!config::validateSnapshot(cfg).empty()) {
      state.SkipWithError("validation failed");
      break;
    }
    store.set(*Snapshot::build(cfg, "h"));
  }
}

BENCHMARK(BM_Validate)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ValidateAllChanged)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Build)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ValidateAndBuild)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace portico::dp

BENCHMARK_MAIN();
