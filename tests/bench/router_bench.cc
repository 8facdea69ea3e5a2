// Router match micro-benchmarks (Google Benchmark). Target: median <= 1 us for host + prefix
// lookups on a realistic table. Run: build-dp/bin/router_bench
#include <benchmark/benchmark.h>

#include <string>

#include "data_plane/router/router.h"

namespace portico::dp::router {
namespace {

// n services, each with a host+prefix route, a prefix-only route and a regex route; plus a
// few wildcard-host routes and a catch-all.
config::v1::Snapshot makeTable(int n) {
  config::v1::Snapshot s;
  auto uuid = [](int i) {
    char id[40];
    std::snprintf(id, sizeof(id), "00000000-0000-4000-8000-%012d", i);
    return std::string(id);
  };
  int id = 0;
  for (int i = 0; i < n; ++i) {
    auto* svc = s.add_services();
    svc->set_id("svc-" + std::to_string(i));
    svc->set_host("10.0.0.1");
    svc->set_port(8080);
    svc->set_enabled(true);
    auto add = [&](auto fill) {
      auto* r = s.add_routes();
      r->set_id(uuid(++id));
      r->set_name("r" + std::to_string(id));
      r->add_protocols("http");
      r->add_protocols("https");
      r->set_strip_path(true);
      r->set_service_id(svc->id());
      fill(r);
    };
    add([&](config::v1::Route* r) {
      r->add_hosts("api" + std::to_string(i) + ".example.com");
      r->add_paths("/v1/orders");
      r->add_methods("GET");
      r->add_methods("POST");
    });
    add([&](config::v1::Route* r) { r->add_paths("/svc" + std::to_string(i) + "/items"); });
    add([&](config::v1::Route* r) {
      r->add_paths("~/svc" + std::to_string(i) + "/users/\\d+/profile$");
    });
  }
  for (int i = 0; i < 5; ++i) {
    auto* r = s.add_routes();
    r->set_id(uuid(++id));
    r->add_protocols("http");
    r->add_hosts("*.wild" + std::to_string(i) + ".test");
    r->set_service_id("svc-0");
  }
  auto* root = s.add_routes();
  root->set_id(uuid(++id));
  root->add_protocols("http");
  root->add_paths("/");
  root->set_service_id("svc-0");
  return s;
}

void runMatch(benchmark::State& state, std::string method, std::string host, std::string path) {
  const config::v1::Snapshot cfg = makeTable(static_cast<int>(state.range(0)));
  auto router = Router::build(cfg);
  if (!router.ok()) {
    state.SkipWithError("build failed");
    return;
  }
  RequestView v;
  v.method = method;
  v.host = host;
  v.path = path;
  v.server_port = 8000;
  MatchScratch scratch;
  Match m;
  for (auto _ : state) {
    bool ok = (*router)->match(v, &scratch, &m);
    benchmark::DoNotOptimize(ok);
    benchmark::DoNotOptimize(m);
  }
}

void BM_HostPrefix(benchmark::State& s) {
  runMatch(s, "GET", "api57.example.com", "/v1/orders/123");
}
void BM_PrefixOnly(benchmark::State& s) { runMatch(s, "GET", "x.test", "/svc57/items/9"); }
void BM_Regex(benchmark::State& s) { runMatch(s, "GET", "x.test", "/svc57/users/42/profile"); }
void BM_Wildcard(benchmark::State& s) { runMatch(s, "GET", "a.wild3.test", "/q"); }
void BM_CatchAll(benchmark::State& s) { runMatch(s, "GET", "x.test", "/nothing/else"); }
void BM_NormalizeDots(benchmark::State& s) {
  runMatch(s, "GET", "api57.example.com", "/v1/x/../orders/%31%32%33");
}

// Router build time for n mixed routes (the RESULTS.md goal: 10k <= 50 ms, 100k <= 500 ms):
// 45% host + prefix (+ methods), 45% prefix only, 10% regex; one service per 10 routes.
config::v1::Snapshot makeMixed(int n) {
  config::v1::Snapshot s;
  for (int i = 0; i < n; ++i) {
    if (i % 10 == 0) {
      auto* svc = s.add_services();
      svc->set_id("svc-" + std::to_string(i / 10));
      svc->set_host("10.0.0.1");
      svc->set_port(8080);
      svc->set_enabled(true);
    }
    char id[40];
    std::snprintf(id, sizeof(id), "00000000-0000-4000-8000-%012d", i);
    auto* r = s.add_routes();
    r->set_id(id);
    r->add_protocols("http");
    r->add_protocols("https");
    r->set_service_id("svc-" + std::to_string(i / 10));
    const std::string n_str = std::to_string(i);
    if (i % 10 == 0) {
      r->add_paths("~/re" + n_str + "/(?<id>\\d+)/profile$");
    } else if (i % 2 == 0) {
      r->add_hosts("h" + n_str + ".example.com");
      r->add_paths("/api/v" + std::to_string(i % 3));
      r->add_methods("GET");
    } else {
      r->add_paths("/svc" + n_str + "/items");
    }
  }
  return s;
}

void BM_Build(benchmark::State& state) {
  const config::v1::Snapshot cfg = makeMixed(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    auto router = Router::build(cfg);
    if (!router.ok()) {
      state.SkipWithError("build failed");
      return;
    }
    state.PauseTiming();  // the destructor is not part of the build
    router->reset();
    state.ResumeTiming();
  }
}
BENCHMARK(BM_Build)->Arg(10000)->Arg(100000)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK(BM_HostPrefix)->Arg(100)->Arg(1000);
BENCHMARK(BM_PrefixOnly)->Arg(100)->Arg(1000);
BENCHMARK(BM_Regex)->Arg(100)->Arg(1000);
BENCHMARK(BM_Wildcard)->Arg(100)->Arg(1000);
BENCHMARK(BM_CatchAll)->Arg(100)->Arg(1000);
BENCHMARK(BM_NormalizeDots)->Arg(100);

}  // namespace
}  // namespace portico::dp::router

BENCHMARK_MAIN();
