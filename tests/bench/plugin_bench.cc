// Plugin costs (Google Benchmark), the figures of the "Plugins" section of RESULTS.md:
//   - one request through key-auth with 100,000 consumers (chain resolve + per-request object
//     + access phase on a parsed head), goal <= 1 us, next to the same walk with no plugin;
//   - chains for 10,000 routes with 3 plugins each, goal <= 100 ms;
//   - DP apply (validateSnapshot + Snapshot::build) of 1,000,000 key-auth credentials, goal
//     <= 3 s, with the resident memory it adds (goal <= 150 MB).
//
//   build/bin/plugin_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <malloc.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "common/config/entities.h"
#include "common/config/validate.h"
#include "common/sync/codec.h"
#include "data_plane/sync_client/snapshot_cache.h"
#include "data_plane/plugins/registry.h"
#include "data_plane/snapshot.h"
#include "tests/unit/data_plane/plugins/fake_context.h"

namespace portico::dp {
namespace {

std::string uuid(int kind, int i) {
  char id[40];
  std::snprintf(id, sizeof(id), "5b1a3c1e-000%d-4000-8000-%012d", kind, i);
  return id;
}

std::string keyOf(int i) {
  char key[40];
  std::snprintf(key, sizeof(key), "key-%08d-abcdefghijklmnopqrstu", i);
  return key;
}

// The plugin entity as the CP stores it (schema defaults filled), as config JSON text.
std::string defaultConfig(const std::string& name) {
  config::Json out;
  config::Json in = {{"name", name}};
  if (name == "acl") in["config"] = {{"allow", {"g"}}};
  if (name == "ip-restriction") in["config"] = {{"allow", {"10.0.0.0/8"}}};
  if (config::processEntityJson("plugins", in, &out).empty()) {
    return out["config"].dump();
  }
  return "";
}

void addPlugin(config::v1::Snapshot* s, const std::string& id, const std::string& name,
               const std::string& conf, const std::string& route_id) {
  config::v1::Plugin* p = s->add_plugins();
  p->set_id(id);
  p->set_name(name);
  p->set_config(conf);
  p->set_enabled(true);
  for (const char* proto : {"grpc", "grpcs", "http", "https"}) p->add_protocols(proto);
  if (!route_id.empty()) p->mutable_route()->set_id(route_id);
  p->set_created_at(1700000000);
  p->set_updated_at(1700000000);
}

// `consumers` consumers with `keys_per_consumer` key-auth keys each, one service and route,
// and key-auth global.
config::v1::Snapshot keyAuthConfig(int consumers, int keys_per_consumer) {
  config::v1::Snapshot s;
  s.set_generation(1);
  auto* svc = s.add_services();
  svc->set_id(uuid(1, 0));
  svc->set_name("svc");
  svc->set_protocol("http");
  svc->set_host("127.0.0.1");
  svc->set_port(8080);
  svc->set_enabled(true);
  svc->set_connect_timeout(60000);
  svc->set_read_timeout(60000);
  svc->set_write_timeout(60000);
  svc->set_retries(5);
  auto* r = s.add_routes();
  r->set_id(uuid(2, 0));
  r->set_name("r");
  r->add_protocols("http");
  r->add_paths("/");
  r->set_service_id(svc->id());
  r->set_path_handling("v0");
  r->set_https_redirect_status_code(426);
  r->set_strip_path(true);
  r->set_regex_priority(0);
  r->set_request_buffering(true);
  r->set_response_buffering(true);
  s.mutable_consumers()->Reserve(consumers);
  s.mutable_keyauth_credentials()->Reserve(consumers * keys_per_consumer);
  for (int i = 0; i < consumers; ++i) {
    auto* c = s.add_consumers();
    c->set_id(uuid(3, i));
    char name[32];
    std::snprintf(name, sizeof(name), "user-%d", i);
    c->set_username(name);
    c->set_created_at(1700000000);
    c->set_updated_at(1700000000);
    for (int k = 0; k < keys_per_consumer; ++k) {
      const int n = i * keys_per_consumer + k;
      auto* cred = s.add_keyauth_credentials();
      cred->set_id(uuid(4, n));
      cred->mutable_consumer()->set_id(c->id());
      cred->set_key(keyOf(n));
      cred->set_created_at(1700000000);
    }
  }
  addPlugin(&s, uuid(5, 0), "key-auth", defaultConfig("key-auth"), "");
  return s;
}

int64_t rssKb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  }
  return 0;
}

// One request's plugin work on the proxy worker: resolve the chain entries, create the
// per-request plugins and run their access phase.
void runChain(const Snapshot& snap, testing::FakeContext& ctx, std::vector<PluginPtr>& active) {
  const PluginChains& chains = snap.plugins();
  const Chain& chain = chains.forRoute(0);
  for (const ChainEntry& e : chain) {
    const PluginInstance* inst = chains.resolve(e, nullptr, nullptr, ctx.consumer());
    if (inst == nullptr) continue;
    active.push_back(inst->config->createPlugin());
    if (ctx.localStatus() == 0) active.back()->onRequest(ctx);
  }
  active.clear();
}

void BM_KeyAuthRequest(benchmark::State& state) {
  static const auto snap = *Snapshot::build(keyAuthConfig(100000, 1), "h");
  const std::string head = "GET /orders?page=2 HTTP/1.1\r\nHost: api.test\r\nUser-Agent: wrk\r\n"
                           "Accept: */*\r\napikey: " + keyOf(54321) + "\r\n\r\n";
  testing::FakeContext ctx(head, snap->consumers());
  std::vector<PluginPtr> active;
  active.reserve(8);
  for (auto _ : state) {
    ctx.reset();
    runChain(*snap, ctx, active);
    benchmark::DoNotOptimize(ctx.consumer());
  }
  if (ctx.consumer() == nullptr || ctx.local_status != 0) state.SkipWithError("not authenticated");
}
BENCHMARK(BM_KeyAuthRequest);

// key-auth + rate-limiting (local policy, limit_by consumer, minute and hour) on one request
// of an authenticated consumer among 100: both access phases (the counters: one fetch_add per
// period), the rate-limit headers, and the response and log phases. Limits no request reaches.
void BM_KeyAuthRateLimiting(benchmark::State& state) {
  static const auto snap = [] {
    config::v1::Snapshot cfg = keyAuthConfig(100, 1);
    config::Json out;
    config::processEntityJson(
        "plugins",
        {{"name", "rate-limiting"},
         {"config", {{"minute", 1e12}, {"hour", 1e13}, {"limit_by", "consumer"}}}},
        &out);
    addPlugin(&cfg, uuid(5, 2), "rate-limiting", out["config"].dump(), "");
    return *Snapshot::build(cfg, "h");
  }();
  const std::string head = "GET /orders?page=2 HTTP/1.1\r\nHost: api.test\r\nUser-Agent: wrk\r\n"
                           "Accept: */*\r\napikey: " + keyOf(42) + "\r\n\r\n";
  testing::FakeContext ctx(head, snap->consumers());
  ctx.setRoute(&snap->config().routes(0), &snap->config().services(0));
  std::vector<PluginPtr> active;
  active.reserve(8);
  const PluginChains& chains = snap->plugins();
  for (auto _ : state) {
    ctx.reset();
    for (const ChainEntry& e : chains.forRoute(0)) {
      const PluginInstance* inst = chains.resolve(e, nullptr, nullptr, ctx.consumer());
      if (inst == nullptr) continue;
      active.push_back(inst->config->createPlugin());
      if (ctx.localStatus() == 0) active.back()->onRequest(ctx);
    }
    for (PluginPtr& p : active) p->onResponseHeaders(ctx);
    for (PluginPtr& p : active) p->onLog(ctx);
    active.clear();
    benchmark::DoNotOptimize(ctx.local_status);
  }
  if (ctx.consumer() == nullptr || ctx.local_status != 0 || ctx.response_set.size() != 7) {
    state.SkipWithError("not authenticated, limited, or headers missing");
  }
}
BENCHMARK(BM_KeyAuthRateLimiting)->Threads(1)->Threads(2);

void BM_KeyAuthRejected(benchmark::State& state) {
  static const auto snap = *Snapshot::build(keyAuthConfig(100000, 1), "h");
  const std::string head = "GET /orders HTTP/1.1\r\nHost: api.test\r\napikey: nope\r\n\r\n";
  testing::FakeContext ctx(head, snap->consumers());
  std::vector<PluginPtr> active;
  for (auto _ : state) {
    ctx.reset();
    runChain(*snap, ctx, active);
    benchmark::DoNotOptimize(ctx.local_status);
  }
}
BENCHMARK(BM_KeyAuthRejected);

void BM_NoPluginWalk(benchmark::State& state) {
  config::v1::Snapshot cfg = keyAuthConfig(1, 1);
  cfg.clear_plugins();
  static const auto snap = *Snapshot::build(cfg, "h");
  const std::string head = "GET /orders HTTP/1.1\r\nHost: api.test\r\n\r\n";
  testing::FakeContext ctx(head, snap->consumers());
  std::vector<PluginPtr> active;
  for (auto _ : state) {
    ctx.reset();
    runChain(*snap, ctx, active);
    benchmark::DoNotOptimize(ctx.local_status);
  }
}
BENCHMARK(BM_NoPluginWalk);

// 10,000 routes, each with 3 route-scoped plugins (the first three registered plugins whose
// defaults form a valid config).
void BM_ChainsFor10kRoutes(benchmark::State& state) {
  config::v1::Snapshot s = keyAuthConfig(0, 0);
  s.clear_plugins();
  s.clear_routes();
  std::vector<std::pair<std::string, std::string>> plugins;
  for (const PluginFactory& f : builtinPlugins()) {
    std::string conf = defaultConfig(std::string(f.name));
    if (!conf.empty() && plugins.size() < 3) plugins.emplace_back(std::string(f.name), conf);
  }
  for (int i = 0; i < 10000; ++i) {
    auto* r = s.add_routes();
    r->set_id(uuid(2, i));
    r->add_paths("/r" + std::to_string(i));
    r->set_service_id(uuid(1, 0));
    for (size_t p = 0; p < plugins.size(); ++p) {
      addPlugin(&s, uuid(5, i * 3 + static_cast<int>(p)), plugins[p].first, plugins[p].second,
                r->id());
    }
  }
  for (auto _ : state) {
    auto chains = PluginChains::build(s);
    if (!chains.ok()) {
      state.SkipWithError(std::string(chains.status().message()).c_str());
      break;
    }
    benchmark::DoNotOptimize(chains->get());
  }
  state.counters["plugins_per_route"] = static_cast<double>(plugins.size());
}
BENCHMARK(BM_ChainsFor10kRoutes)->Unit(benchmark::kMillisecond);

// DP apply of 1,000,000 key-auth credentials (100,000 consumers x 10 keys), the way the sync
// client and portico-dp do it: the serialized payload is split (credentials into a
// config::KeyAuthTable, the rest into the proto), validated, and built into a Snapshot. The
// added RSS counts everything the served config holds; the payload buffer exists before and
// after, so it is not counted.
void BM_Apply1MKeyAuthCredentials(benchmark::State& state) {
  for (auto _ : state) {
    state.PauseTiming();
    std::string payload = *sync::serializeDeterministic(keyAuthConfig(100000, 10));
    malloc_trim(0);
    const int64_t before = rssKb();
    state.ResumeTiming();
    const auto t0 = std::chrono::steady_clock::now();
    auto rest = std::make_shared<config::v1::Snapshot>();
    std::shared_ptr<const config::KeyAuthTable> key_auth;
    if (absl::Status st = sync::parseSnapshotSplit(payload, rest.get(), &key_auth); !st.ok()) {
      state.SkipWithError(std::string(st.message()).c_str());
      break;
    }
    const auto t1 = std::chrono::steady_clock::now();
    config::FieldErrors errors = config::validateSnapshot(*rest, key_auth.get());
    if (!errors.empty()) {
      state.SkipWithError(errors.front().reason.c_str());
      break;
    }
    const auto t2 = std::chrono::steady_clock::now();
    auto snap = Snapshot::build(std::move(rest), key_auth, "h");
    const auto t3 = std::chrono::steady_clock::now();
    state.PauseTiming();
    state.counters["parse_ms"] = std::chrono::duration<double, std::milli>(t1 - t0).count();
    state.counters["validate_ms"] =
        std::chrono::duration<double, std::milli>(t2 - t1).count();
    state.counters["build_ms"] = std::chrono::duration<double, std::milli>(t3 - t2).count();
    state.counters["table_MB"] = static_cast<double>(key_auth->memoryBytes()) / 1048576.0;
    if (!snap.ok()) {
      state.SkipWithError(std::string(snap.status().message()).c_str());
      break;
    }
    key_auth.reset();
    malloc_trim(0);
    state.counters["rss_added_MB"] = static_cast<double>(rssKb() - before) / 1024.0;
    snap->reset();
    state.ResumeTiming();
  }
}
BENCHMARK(BM_Apply1MKeyAuthCredentials)->Unit(benchmark::kMillisecond)->Iterations(1);

// Each bundled plugin alone, global, on one request through the phase methods (access,
// response headers and log) on the matched route: the per-request object, its config lookups
// and its work. Auth plugins see no credentials (their 401 path); the others pass, except
// request-termination, which answers.
void BM_PluginOverhead(benchmark::State& state, const std::string& name, config::Json conf) {
  config::v1::Snapshot cfg = keyAuthConfig(1, 1);
  cfg.clear_plugins();
  config::Json entity = {{"name", name}, {"config", std::move(conf)}};
  config::Json out;
  if (!config::processEntityJson("plugins", entity, &out).empty()) {
    state.SkipWithError("invalid config");
    return;
  }
  addPlugin(&cfg, uuid(5, 1), name, out["config"].dump(), "");
  auto snap = Snapshot::build(cfg, "h");
  if (!snap.ok()) {
    state.SkipWithError(std::string(snap.status().message()).c_str());
    return;
  }
  const std::string head =
      "GET /orders?page=2 HTTP/1.1\r\nHost: api.test\r\nUser-Agent: Mozilla/5.0 (X11; Linux "
      "x86_64) Chrome/120.0\r\nOrigin: https://app.test\r\nAccept: */*\r\n\r\n";
  testing::FakeContext ctx(head, (*snap)->consumers());
  ctx.setRoute(&(*snap)->config().routes(0), &(*snap)->config().services(0));
  // What the proxy measured (prometheus records it).
  ctx.latency.kong_ms = 0;
  ctx.latency.upstream_ms = 3;
  ctx.latency.request_ms = 4;
  ctx.source = RequestContext::Source::kService;
  ctx.request_size = static_cast<uint64_t>(head.size());
  ctx.response_size = 240;
  std::vector<PluginPtr> active;
  active.reserve(4);
  const PluginChains& chains = (*snap)->plugins();
  for (auto _ : state) {
    ctx.reset();
    for (const ChainEntry& e : chains.forRoute(0)) {
      const PluginInstance* inst = chains.resolve(e, nullptr, nullptr, ctx.consumer());
      active.push_back(inst->config->createPlugin());
      active.back()->onRequest(ctx);
    }
    for (PluginPtr& p : active) p->onResponseHeaders(ctx);
    for (PluginPtr& p : active) p->onLog(ctx);
    active.clear();
    benchmark::DoNotOptimize(ctx.local_status);
  }
}
BENCHMARK_CAPTURE(BM_PluginOverhead, acl, "acl", {{"allow", {"g"}}});
BENCHMARK_CAPTURE(BM_PluginOverhead, basic_auth, "basic-auth", config::Json::object());
BENCHMARK_CAPTURE(BM_PluginOverhead, bot_detection, "bot-detection", config::Json::object());
BENCHMARK_CAPTURE(BM_PluginOverhead, cors, "cors", {{"origins", {"https://app.test"}}});
BENCHMARK_CAPTURE(BM_PluginOverhead, hmac_auth, "hmac-auth", config::Json::object());
BENCHMARK_CAPTURE(BM_PluginOverhead, ip_restriction, "ip-restriction",
                  {{"allow", {"127.0.0.0/8", "10.0.0.0/8", "::1"}}});
BENCHMARK_CAPTURE(BM_PluginOverhead, jwt, "jwt", config::Json::object());
BENCHMARK_CAPTURE(BM_PluginOverhead, key_auth, "key-auth", config::Json::object());
BENCHMARK_CAPTURE(BM_PluginOverhead, prometheus, "prometheus",
                  {{"status_code_metrics", true},
                   {"latency_metrics", true},
                   {"bandwidth_metrics", true},
                   {"upstream_health_metrics", true}})
    ->Threads(1)
    ->Threads(2);  // two workers record at once: per-worker shards, no shared line
BENCHMARK_CAPTURE(BM_PluginOverhead, prometheus_status_only, "prometheus",
                  {{"status_code_metrics", true}});
BENCHMARK_CAPTURE(BM_PluginOverhead, rate_limiting_local, "rate-limiting",
                  {{"minute", 1e12}, {"hour", 1e13}, {"limit_by", "ip"}});
BENCHMARK_CAPTURE(BM_PluginOverhead, request_size_limiting, "request-size-limiting",
                  config::Json::object());
BENCHMARK_CAPTURE(BM_PluginOverhead, request_termination, "request-termination",
                  config::Json::object());

// validateSnapshot alone, by shape: (consumers, keys per consumer).
void BM_Validate(benchmark::State& state) {
  const config::v1::Snapshot cfg =
      keyAuthConfig(static_cast<int>(state.range(0)), static_cast<int>(state.range(1)));
  for (auto _ : state) {
    benchmark::DoNotOptimize(config::validateSnapshot(cfg));
  }
}
BENCHMARK(BM_Validate)->Args({100000, 0})->Args({1000, 1000})->Unit(benchmark::kMillisecond)
    ->Iterations(1);

// PORTICO_BENCH_WRITE_CACHE=<path> [PORTICO_BENCH_UPSTREAM_PORT=<port>]: writes the
// 1,000,000-credential config (or, with PORTICO_BENCH_EMPTY=1, the same service, route and
// key-auth plugin without consumers) as a portico-dp --config_cache_path file and exits;
// tests/bench/keyauth_mem.sh measures a real portico-dp serving it.
int writeCache(const char* path) {
  const bool empty = std::getenv("PORTICO_BENCH_EMPTY") != nullptr;
  config::v1::Snapshot cfg = keyAuthConfig(empty ? 0 : 100000, empty ? 0 : 10);
  if (const char* port = std::getenv("PORTICO_BENCH_UPSTREAM_PORT")) {
    cfg.mutable_services(0)->set_port(std::atoi(port));
  }
  auto encoded = sync::encodeSnapshot(cfg);
  if (!encoded.ok()) {
    std::fprintf(stderr, "%s\n", std::string(encoded.status().message()).c_str());
    return 1;
  }
  sync::AssembledSnapshot a;
  a.generation = cfg.generation();
  a.config_hash = (*encoded)->config_hash;
  a.encoding = (*encoded)->encoding;
  a.encoded_payload = (*encoded)->encodedPayload();
  if (absl::Status st = saveSnapshotCache(path, a); !st.ok()) {
    std::fprintf(stderr, "%s\n", std::string(st.message()).c_str());
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace portico::dp

int main(int argc, char** argv) {
  if (const char* path = std::getenv("PORTICO_BENCH_WRITE_CACHE")) {
    return portico::dp::writeCache(path);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
