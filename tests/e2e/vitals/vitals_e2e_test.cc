// Vitals end to end, on real processes: a portico-dp proxies real requests and reports them on
// ConfigSync.Report to a portico-cp that stores them in a real PostgreSQL; GET
// /vitals/requests answers with exactly the requests sent, within seconds of the traffic,
// and still exactly after the CP is killed and restarted mid-run and the DP reconnects.
// Garbage on the stream (raw gRPC, no DP) is refused with a reason, counted, and stores
// nothing. Bad API parameters get Kong's error JSON naming the field.
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include "common/vitals/latency_bins.h"
#include "portico/sync/v1/sync.grpc.pb.h"
#include "tests/support/e2e_cluster.h"
#include "tests/support/test_support.h"

namespace {

using namespace std::chrono_literals;
using namespace portico::testing;
using nlohmann::json;
namespace pb = portico::sync::v1;

// Sum of `requests` over every row of a /vitals/requests answer (-1 when it is no answer).
int64_t totalRequests(Cp& cp, const std::string& query) {
  HttpResponse r = cp.admin("GET", "/vitals/requests?" + query);
  if (r.status != 200) return -1;
  json j = json::parse(r.body, nullptr, false);
  if (!j.is_object()) return -1;
  int64_t n = 0;
  for (const json& row : j["data"]) n += row["requests"].get<int64_t>();
  return n;
}

std::string since(int64_t start) {
  return "granularity=10s&start=" + std::to_string(start) + "&end=" +
         std::to_string(std::time(nullptr) + 60);
}

// Requests through the proxy; returns how many got an HTTP answer.
int send(Dp& dp, const std::string& path, int n) {
  int answered = 0;
  for (int i = 0; i < n; ++i) {
    if (dp.get(path) > 0) answered++;
  }
  return answered;
}

}  // namespace

TEST_CASE("e2e vitals: counts equal requests sent, fresh within seconds, exactly once across "
          "a CP kill and restart and the DP's reconnect", "[e2e][vitals]") {
  EchoUpstream upstream(0, /*record=*/false);
  Postgres pg;
  migrate(pg.dsn());
  Cp cp(pg.dsn());
  TempDir dir;
  Dp dp(cp.cluster_port, dir.path + "/dp.cache");
  const int64_t t0 = std::time(nullptr) - 10;
  cp.adminOk("POST", "/services",
             {{"name", "orders"}, {"url", "http://127.0.0.1:" + std::to_string(upstream.port())}},
             201);
  cp.adminOk("POST", "/services/orders/routes", {{"name", "orders-route"}, {"paths", {"/orders"}}},
             201);
  cp.adminOk("POST", "/consumers", {{"username", "alice"}}, 201);
  cp.adminOk("POST", "/consumers/alice/key-auth", {{"key", "alice-key"}}, 201);
  cp.adminOk("POST", "/routes/orders-route/plugins",
             {{"name", "key-auth"}}, 201);
  // Until the config applies, the probes get 404 (no route), or 200 from a snapshot that has
  // the route but not yet its key-auth plugin (each Admin API write is its own version):
  // vitals count those too.
  int sent = 0, no_route = 0, open_probes = 0;
  REQUIRE(waitFor([&] {
    const int status = dp.get("/orders");
    if (status > 0) sent++;
    if (status == 404) no_route++;
    if (status == 200) open_probes++;
    return status == 401;
  }, 20s));

  // Freshness, at the default 10 s cadence: the time from a request to its count in the API.
  int64_t alice = 0;
  {
    const auto begin = std::chrono::steady_clock::now();
    for (int i = 0; i < 20; ++i) {
      HttpResponse r = httpRequest("127.0.0.1", dp.proxy_port, "GET", "/orders/x", "",
                                   {{"apikey", "alice-key"}});
      REQUIRE(r.status == 200);
      sent++;
      alice++;
    }
    sent += send(dp, "/orders/y", 5);  // 401s, anonymous
    REQUIRE(waitFor([&] { return totalRequests(cp, since(t0)) == sent; }, 40s));
    INFO("counted " << totalRequests(cp, since(t0)) << " of " << sent);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
    WARN("vitals freshness: " << sent << " requests visible in the API " << seconds
                              << " s after the first was sent (10 s buckets, 10 s flush)");
    CHECK(seconds <= 15.0 + 5.0);  // the 15 s, plus slack for a loaded CI machine
  }
  // The answer's shape: keys only for what is grouped by, ids, percentiles.
  {
    HttpResponse r = cp.admin("GET", "/vitals/requests?" + since(t0) +
                                         "&group_by=service,route,consumer,status_code");
    REQUIRE(r.status == 200);
    json j = json::parse(r.body);
    CHECK(j["meta"]["granularity"] == "10s");
    CHECK(j["meta"]["group_by"] == json({"service", "route", "consumer", "status_code"}));
    int64_t ok = 0, anonymous_ok = 0, unauthorized = 0;
    for (const json& row : j["data"]) {
      CHECK(row.contains("service"));
      CHECK(!row.contains("node"));
      CHECK(row["latency_ms"]["total"].contains("p99"));
      CHECK(row["timestamp"].get<int64_t>() % 10 == 0);
      if (row["status_code"] == 200) {
        (row["consumer"].is_null() ? anonymous_ok : ok) += row["requests"].get<int64_t>();
      }
      if (row["status_code"] == 401 || row["status_code"] == 404) {
        CHECK(row["consumer"].is_null());
        unauthorized += row["requests"].get<int64_t>();
      }
    }
    CHECK(ok == alice);
    CHECK(anonymous_ok == open_probes);  // only probes that beat the plugin to the DP
    // 401s, and the 404s before the config applied
    CHECK(unauthorized == sent - alice - open_probes);
    // Filters take names; the consumer filter narrows to alice's requests.
    CHECK(totalRequests(cp, since(t0) + "&consumer=alice") == alice);
    CHECK(totalRequests(cp, since(t0) + "&service=orders&route=orders-route") == sent - no_route);
    CHECK(totalRequests(cp, since(t0) + "&group_by=node") == sent);
    // Rollups hold the same counts.
    CHECK(totalRequests(cp, "granularity=1m&start=" + std::to_string(t0 - 60)) == sent);
    CHECK(totalRequests(cp, "granularity=1h&start=" + std::to_string(t0 - 3600)) == sent);
    HttpResponse s = cp.admin("GET", "/vitals/summary");
    REQUIRE(s.status == 200);
    json sj = json::parse(s.body);
    json orders;
    for (const json& item : sj["data"]) {
      if (item.value("service_name", "") == "orders") orders = item;
    }
    REQUIRE(orders.is_object());
    CHECK(orders["requests"] == sent - no_route);
    CHECK(orders["errors_4xx"] == sent - alice - no_route - open_probes);
  }

  // Traffic while the CP is killed (mid-flush, whatever it was doing) and while it is away:
  // the DP keeps the unacknowledged batches and sends them again once it reconnects.
  std::atomic<bool> stop{false};
  std::atomic<int> during{0};
  std::thread traffic([&] {
    while (!stop) {
      if (dp.get("/orders/z") > 0) during++;
      std::this_thread::sleep_for(5ms);
    }
  });
  std::this_thread::sleep_for(12s);  // at least one flush in flight or committed
  cp.kill9();
  std::this_thread::sleep_for(12s);  // buckets close and wait on the DP meanwhile
  cp.start();
  std::this_thread::sleep_for(12s);
  stop = true;
  traffic.join();
  sent += during;
  REQUIRE(waitFor([&] { return totalRequests(cp, since(t0)) == sent; }, 45s));
  // Stable: nothing counted twice later either.
  std::this_thread::sleep_for(11s);
  CHECK(totalRequests(cp, since(t0)) == sent);
  HttpResponse m = cp.admin("GET", "/metrics");
  CHECK(m.body.find("portico_cp_vitals_batches_total{result=\"stored\"}") != std::string::npos);
}

namespace {

// A raw Report stream, as a misbehaving DP would open it.
struct RawReport {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<pb::ConfigSync::Stub> stub;
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReaderWriter<pb::VitalsReport, pb::VitalsControl>> stream;

  explicit RawReport(int port, const std::string& instance) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetMaxSendMessageSize(64 << 20);
    channel = grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port),
                                        grpc::InsecureChannelCredentials(), args);
    stub = pb::ConfigSync::NewStub(channel);
    context.set_deadline(std::chrono::system_clock::now() + 30s);
    stream = stub->Report(&context);
    pb::VitalsReport hello;
    hello.mutable_hello()->set_node_id("raw-node");
    hello.mutable_hello()->set_instance(instance);
    REQUIRE(stream->Write(hello));
    pb::VitalsControl settings;
    REQUIRE(stream->Read(&settings));
    REQUIRE(settings.has_settings());
  }
  // Sends `batch` and returns the ack for its seq.
  pb::VitalsAck exchange(const pb::VitalsBatch& batch) {
    pb::VitalsReport report;
    *report.mutable_batch() = batch;
    REQUIRE(stream->Write(report));
    pb::VitalsControl answer;
    REQUIRE(stream->Read(&answer));
    REQUIRE(answer.has_ack());
    return answer.ack();
  }
};

pb::VitalsBucket bucket(const std::string& service, const std::string& route, int64_t requests) {
  pb::VitalsBucket b;
  const int64_t now = std::time(nullptr);
  b.set_start(now - now % 10 - 10);
  b.set_service_id(service);
  b.set_route_id(route);
  b.set_status_code(200);
  b.set_requests(requests);
  b.set_bytes_in(100 * requests);
  b.set_bytes_out(200 * requests);
  for (auto* h : {b.mutable_total(), b.mutable_upstream(), b.mutable_proxy()}) {
    for (size_t i = 0; i < portico::vitals::kLatencyBins; ++i) h->add_bins(i == 2 ? requests : 0);
    h->set_max_ms(4);
  }
  return b;
}

}  // namespace

TEST_CASE("e2e vitals: garbage on the Report stream is refused with a reason, counted, and "
          "stores nothing; a valid batch counts once however often it is sent",
          "[e2e][vitals][abuse]") {
  Postgres pg;
  migrate(pg.dsn());
  Cp cp(pg.dsn());
  cp.adminOk("POST", "/services", {{"name", "s"}, {"url", "http://127.0.0.1:9"}}, 201);
  cp.adminOk("POST", "/services/s/routes", {{"name", "r"}, {"paths", {"/"}}}, 201);
  const json service = json::parse(cp.admin("GET", "/services/s").body);
  const json route = json::parse(cp.admin("GET", "/routes/r").body);
  const std::string sid = service["id"], rid = route["id"];
  const int64_t t0 = std::time(nullptr) - 120;

  RawReport raw(cp.cluster_port, "instance-1");
  auto refused = [&](pb::VitalsBatch batch, const std::string& reason) {
    pb::VitalsAck ack = raw.exchange(batch);
    INFO("seq " << batch.seq() << ": " << ack.reason());
    CHECK(ack.result() == pb::VitalsAck::REFUSED);
    CHECK(ack.reason().rfind(reason + ":", 0) == 0);
  };
  pb::VitalsBatch b;
  b.set_seq(0);
  *b.add_buckets() = bucket(sid, rid, 5);
  refused(b, "bad_sequence");
  b.set_seq(10);
  b.mutable_buckets(0)->set_requests(-5);
  refused(b, "negative_count");
  b.set_seq(11);
  b.mutable_buckets(0)->set_requests(6);  // histograms still count 5
  refused(b, "bad_histogram");
  b.set_seq(12);
  *b.mutable_buckets(0) = bucket(sid, rid, 5);
  b.mutable_buckets(0)->set_start(b.buckets(0).start() + 3);
  refused(b, "bad_timestamp");
  b.set_seq(13);
  *b.mutable_buckets(0) = bucket("not-a-uuid", rid, 5);
  refused(b, "malformed_id");
  b.set_seq(14);
  *b.mutable_buckets(0) = bucket(sid, "6b1d3c1e-0000-4000-8000-000000000001", 5);
  refused(b, "unknown_entity");
  b.set_seq(15);
  b.clear_buckets();
  for (int i = 0; i < 5001; ++i) *b.add_buckets() = bucket(sid, rid, 1);
  refused(b, "oversized");
  b.set_seq(9);  // going back within the stream
  b.clear_buckets();
  *b.add_buckets() = bucket(sid, rid, 5);
  refused(b, "bad_sequence");
  CHECK(totalRequests(cp, since(t0)) == 0);

  // A good batch: stored once; the same seq again (here and on a new stream, as after a
  // reconnect) is a duplicate.
  b.set_seq(20);
  CHECK(raw.exchange(b).result() == pb::VitalsAck::STORED);
  RawReport again(cp.cluster_port, "instance-1");
  CHECK(again.exchange(b).result() == pb::VitalsAck::DUPLICATE);
  CHECK(totalRequests(cp, since(t0)) == 5);
  // Another process of the same node (new instance) starts its own numbering.
  RawReport restarted(cp.cluster_port, "instance-2");
  b.set_seq(1);
  CHECK(restarted.exchange(b).result() == pb::VitalsAck::STORED);
  CHECK(totalRequests(cp, since(t0)) == 10);

  const std::string metrics = cp.admin("GET", "/metrics").body;
  for (const char* reason : {"bad_sequence", "negative_count", "bad_histogram", "bad_timestamp",
                             "malformed_id", "unknown_entity", "oversized"}) {
    INFO(reason);
    CHECK(metrics.find(std::string("portico_cp_vitals_refused_total{reason=\"") + reason + "\"}") !=
          std::string::npos);
  }
  CHECK(metrics.find("portico_cp_vitals_batches_total{result=\"duplicate\"} 1") != std::string::npos);

  // A stream that does not start with hello is ended.
  {
    grpc::ClientContext ctx;
    auto stub = pb::ConfigSync::NewStub(raw.channel);
    auto s = stub->Report(&ctx);
    pb::VitalsReport report;
    *report.mutable_batch() = b;
    s->Write(report);
    pb::VitalsControl c;
    CHECK_FALSE(s->Read(&c));
    grpc::Status st = s->Finish();
    CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  }
}

TEST_CASE("e2e vitals: bad parameters get Kong's error JSON naming the field", "[e2e][vitals]") {
  Postgres pg;
  migrate(pg.dsn());
  Cp cp(pg.dsn());
  auto field = [&](const std::string& query, const std::string& name) {
    HttpResponse r = cp.admin("GET", "/vitals/requests?" + query);
    INFO(query << " -> " << r.status << " " << r.body);
    REQUIRE(r.status == 400);
    json j = json::parse(r.body);
    CHECK(j["name"] == "schema violation");
    CHECK(j["fields"].contains(name));
  };
  field("granularity=5s", "granularity");
  field("start=yesterday", "start");
  field("end=2026-13-01T00:00:00Z", "end");
  field("start=100&end=50", "start");
  field("group_by=service,colour", "group_by");
  field("group_by=node,route", "group_by");
  field("service=no-such-service", "service");
  field("granularity=10s&start=0", "start");  // far too many buckets
  field("bogus=1", "bogus");
  CHECK(cp.admin("POST", "/vitals/requests").status == 405);
  CHECK(cp.admin("GET", "/vitals/other").status == 404);
  // RFC 3339 and epoch seconds; the answer echoes whole buckets.
  HttpResponse ok = cp.admin("GET",
                             "/vitals/requests?granularity=1m&start=2026-12-01T00:00:30Z&end="
                             "2026-12-01T01:00:00Z");
  REQUIRE(ok.status == 200);
  json j = json::parse(ok.body);
  CHECK(j["meta"]["start"] == 1796083200);
  CHECK(j["meta"]["end"] == 1796086800);
  CHECK(j["data"].empty());
  // Under a control plane's prefix too.
  cp.adminOk("POST", "/control-planes", {{"name", "team-a"}}, 201);
  CHECK(cp.admin("GET", "/control-planes/team-a/vitals/requests").status == 200);
  CHECK(cp.admin("GET", "/control-planes/team-a/vitals/summary").status == 200);
}

// ServiceHub's observed dependencies, end to end: a catalog service calls as a consumer, that
// consumer's requests through a real DP reach a gateway service bound to another catalog
// service's version, and the CP lists the other service as an observed dependency with the
// requests counted, in both directions.
TEST_CASE("e2e vitals: a catalog service's calls through the DP show as an observed "
          "dependency", "[e2e][vitals]") {
  EchoUpstream upstream(0, /*record=*/false);
  Postgres pg;
  migrate(pg.dsn());
  Cp cp(pg.dsn());
  TempDir dir;
  Dp dp(cp.cluster_port, dir.path + "/dp.cache");
  const int64_t t0 = std::time(nullptr) - 10;
  cp.adminOk("POST", "/services",
             {{"name", "payments-gw"},
              {"url", "http://127.0.0.1:" + std::to_string(upstream.port())}},
             201);
  cp.adminOk("POST", "/services/payments-gw/routes", {{"name", "pay"}, {"paths", {"/pay"}}}, 201);
  cp.adminOk("POST", "/services/payments-gw/plugins", {{"name", "key-auth"}}, 201);
  cp.adminOk("POST", "/consumers", {{"username", "checkout-bot"}}, 201);
  cp.adminOk("POST", "/consumers/checkout-bot/key-auth", {{"key", "checkout-key"}}, 201);
  cp.adminOk("POST", "/service-catalog/services",
             {{"name", "checkout"},
              {"calls_as", {{{"control_plane_id", "default"}, {"consumer_id", "checkout-bot"}}}}},
             201);
  cp.adminOk("POST", "/service-catalog/services", {{"name", "payments"}}, 201);
  cp.adminOk("POST", "/service-catalog/services/payments/versions",
             {{"version", "1.0.0"},
              {"gateway_services",
               {{{"control_plane_id", "default"}, {"service_id", "payments-gw"}}}}},
             201);
  const auto call = [&] {
    return httpRequest("127.0.0.1", dp.proxy_port, "GET", "/pay/charge", "",
                       {{"apikey", "checkout-key"}})
        .status;
  };
  // Each write above is its own config version: wait for the one with the credential. Earlier
  // answers (404, 200 before the plugin, 401 before the credential) carry no consumer, so they
  // are no caller's calls.
  REQUIRE(waitFor([&] { return call() == 200; }, 20s));
  int calls = 1;
  for (int i = 1; i < 12; ++i) {
    REQUIRE(call() == 200);
    calls++;
  }
  send(dp, "/pay/anonymous", 5);  // 401s without a consumer: no caller
  const std::string window = "granularity=10s&start=" + std::to_string(t0) +
                             "&end=" + std::to_string(std::time(nullptr) + 60);
  const auto observed = [&](const std::string& path) -> json {
    HttpResponse r = cp.admin("GET", "/service-catalog/services/" + path + "&" + window);
    if (r.status != 200) return json();
    json j = json::parse(r.body, nullptr, false);
    return j.is_object() && j["data"].size() == 1 ? j["data"][0] : json();
  };
  REQUIRE(waitFor([&] {
    json d = observed("checkout/dependencies?source=observed");
    return d.is_object() && d["observed"]["requests"] == calls;
  }, 40s));
  json d = observed("checkout/dependencies?source=observed");
  CHECK(d["name"] == "payments");
  CHECK(d["declared"] == false);
  CHECK(d["observed"]["errors_5xx"] == 0);
  CHECK(d["observed"]["last_seen"].get<int64_t>() >= t0 - 10);
  json back = observed("payments/dependencies?direction=dependents");
  CHECK(back["name"] == "checkout");
  CHECK(back["observed"]["requests"] == calls);
}
