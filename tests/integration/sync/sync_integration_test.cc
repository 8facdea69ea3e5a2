// ConfigSync end to end over real gRPC on 127.0.0.1: a SyncServer backed by an in-memory
// store, and real SyncClients. Covers first sync, group fan-out, cheap resume, NACK handling,
// the disk cache, store outages, big multi-chunk snapshots, shutdown, and mTLS.
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "absl/synchronization/mutex.h"
#include "control_plane/sync/sync_server.h"
#include "data_plane/sync_client/sync_client.h"
#include "common/sync/codec.h"
#include "grpcpp/grpcpp.h"
#include "portico/sync/v1/sync.grpc.pb.h"
#include "tests/integration/sync/fake_store.h"
#include "tests/support/test_support.h"

namespace portico {
namespace {

using namespace std::chrono_literals;
using testing::FakeConfigStore;
using testing::waitFor;

constexpr auto kWait = 10s;

void addService(config::v1::Snapshot& s, const std::string& id) {
  auto* svc = s.add_services();
  svc->set_id(id);
  svc->set_protocol("http");
  svc->set_host(id + ".internal");
  svc->set_port(80);
}

// Records every apply call across clients; can be told to reject generations.
struct ApplyRecorder {
  absl::Mutex mu;
  std::vector<std::pair<uint64_t, std::string>> calls;  // (generation, hash)
  std::set<uint64_t> reject;

  dp::SyncClient::ApplyFn fn() {
    return [this](const config::v1::Snapshot& s, const std::string& hash,
                  config::FieldErrors* errors) -> absl::Status {
      absl::MutexLock lock(&mu);
      calls.emplace_back(s.generation(), hash);
      if (reject.count(s.generation()) > 0) {
        errors->push_back({"routes", "r-1", "paths.1", "should start with: / (fixed path)"});
        return absl::InvalidArgumentError("declarative config is invalid");
      }
      return absl::OkStatus();
    };
  }
  int callsFor(uint64_t generation) {
    absl::MutexLock lock(&mu);
    int n = 0;
    for (const auto& c : calls) {
      n += c.first == generation ? 1 : 0;
    }
    return n;
  }
  size_t total() {
    absl::MutexLock lock(&mu);
    return calls.size();
  }
};

struct TempDir {
  TempDir() {
    char tmpl[] = "/tmp/portico-sync-it-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    if (std::getenv("PORTICO_KEEP_TMP") == nullptr) {
      std::filesystem::remove_all(path);
    }
  }
  std::string path;
};

cp::SyncServerOptions serverOptions() {
  cp::SyncServerOptions o;
  o.listen_address = "127.0.0.1:0";
  o.insecure = true;
  o.heartbeat_interval_ms = 100;
  o.store_retry_initial_ms = 20;
  o.store_retry_max_ms = 200;
  return o;
}

std::unique_ptr<cp::SyncServer> startServer(FakeConfigStore& store,
                                            cp::SyncServerOptions o = serverOptions()) {
  auto server = cp::SyncServer::start(store, o);
  REQUIRE(server.ok());
  return std::move(*server);
}

dp::SyncClient::Options clientOptions(int port, const std::string& group = "") {
  dp::SyncClient::Options o;
  o.cp_address = "127.0.0.1:" + std::to_string(port);
  o.insecure = true;
  o.group = group;
  o.version = "0.1.0-test";
  o.backoff_initial_ms = 20;
  o.backoff_max_ms = 200;
  return o;
}

std::unique_ptr<dp::SyncClient> startClient(dp::SyncClient::Options o, ApplyRecorder& rec) {
  auto c = std::make_unique<dp::SyncClient>(std::move(o), rec.fn());
  REQUIRE(c->start().ok());
  return c;
}

std::optional<cp::NodeStatus> node(const cp::SyncServer& server, const std::string& id) {
  for (auto& n : server.nodes()) {
    if (n.node_id == id) {
      return n;
    }
  }
  return std::nullopt;
}

TEST_CASE("sync: initial snapshot is delivered, applied, ACKed, and heartbeats flow") {
  FakeConfigStore store;
  store.commit("default", [](auto& s) { addService(s, "svc-a"); });
  auto server = startServer(store);
  ApplyRecorder rec;
  auto client = startClient(clientOptions(server->port()), rec);

  REQUIRE(waitFor([&] { return client->state().generation == 1; }, kWait));
  REQUIRE(waitFor([&] {
    auto n = node(*server, client->nodeId());
    return n && n->applied_generation == 1 && n->acks == 1;
  }, kWait));
  auto n = node(*server, client->nodeId());
  CHECK(n->group == "default");
  CHECK(n->version == "0.1.0-test");
  CHECK(n->connected);
  CHECK(n->applied_hash == client->state().config_hash);
  CHECK(client->state().config_hash.size() == 64);
  CHECK(client->state().heartbeat_interval_ms == 100);
  CHECK(rec.total() == 1);
  // Heartbeats at the CP's interval.
  CHECK(waitFor([&] { return client->state().heartbeats >= 3; }, kWait));
  CHECK(server->stats().encodes == 1);
  CHECK(server->stats().acks == 1);
}

TEST_CASE("sync: balancer health goes out with heartbeats only when it changed") {
  FakeConfigStore store;
  store.commit("default", [](auto& s) { addService(s, "svc-a"); });
  auto server = startServer(store);  // heartbeats every 100 ms
  ApplyRecorder rec;
  absl::Mutex mu;
  std::string health = "HEALTHY";
  auto o = clientOptions(server->port());
  o.health_refresh_heartbeats = 1000;  // no periodic resend within this test
  o.health = [&] {
    absl::MutexLock lock(&mu);
    sync::v1::UpstreamHealth u;
    u.set_upstream_id("u-1");
    u.set_name("up1");
    auto* t = u.add_targets();
    t->set_target("10.0.0.1:80");
    t->set_weight(100);
    t->set_health(health);
    auto* a = t->add_addresses();
    a->set_ip("10.0.0.1");
    a->set_port(80);
    a->set_healthy(health == "HEALTHY");
    return std::vector<sync::v1::UpstreamHealth>{u};
  };
  auto client = startClient(std::move(o), rec);
  auto reported = [&]() -> std::string {
    for (const auto& n : server->registry().health("default")) {
      if (n.node_id == client->nodeId() && n.upstreams->size() == 1 &&
          (*n.upstreams)[0].targets_size() == 1) {
        return (*n.upstreams)[0].targets(0).health();
      }
    }
    return "";
  };
  REQUIRE(waitFor([&] { return reported() == "HEALTHY"; }, kWait));
  CHECK(client->state().health_reports == 1);
  // Unchanged: heartbeats flow, reports do not.
  const uint64_t beats = client->state().heartbeats;
  REQUIRE(waitFor([&] { return client->state().heartbeats >= beats + 3; }, kWait));
  CHECK(client->state().health_reports == 1);
  {
    absl::MutexLock lock(&mu);
    health = "UNHEALTHY";
  }
  REQUIRE(waitFor([&] { return reported() == "UNHEALTHY"; }, kWait));
  CHECK(client->state().health_reports == 2);
  // Another group sees nothing of it.
  CHECK(server->registry().health("other").empty());
}

TEST_CASE("sync: a change reaches every DP of its group and no other group") {
  FakeConfigStore store;
  store.commit("default", [](auto& s) { addService(s, "svc-a"); });
  store.commit("blue", [](auto& s) { addService(s, "svc-blue"); });
  auto server = startServer(store);
  ApplyRecorder rec_a, rec_b, rec_c;
  auto a = startClient(clientOptions(server->port()), rec_a);
  auto b = startClient(clientOptions(server->port(), "default"), rec_b);
  auto c = startClient(clientOptions(server->port(), "blue"), rec_c);
  REQUIRE(waitFor([&] {
    return a->state().generation == 1 && b->state().generation == 1 &&
           c->state().generation == 1;
  }, kWait));
  const std::string blue_hash = c->state().config_hash;
  CHECK(blue_hash != a->state().config_hash);

  const uint64_t g = store.commit("default", [](auto& s) { addService(s, "svc-b"); });
  REQUIRE(g == 2);
  REQUIRE(waitFor([&] { return a->state().generation == 2 && b->state().generation == 2; },
                  kWait));
  CHECK(a->state().config_hash == b->state().config_hash);
  REQUIRE(waitFor([&] { return server->stats().acks == 5; }, kWait));
  // The blue DP saw nothing new.
  CHECK(c->state().generation == 1);
  CHECK(c->state().config_hash == blue_hash);
  CHECK(rec_c.total() == 1);
  // Each generation was encoded once, whatever the number of DPs.
  CHECK(server->stats().encodes == 3);
  CHECK(server->stats().pushes == 5);
}

TEST_CASE("sync: a burst of writes is read as one generation, not one read per write") {
  FakeConfigStore store;
  store.commit("default", [](auto& s) { addService(s, "svc-0"); });
  cp::SyncServerOptions o = serverOptions();
  o.min_load_interval_ms = 1000;
  auto server = startServer(store, o);
  ApplyRecorder rec;
  auto dp = startClient(clientOptions(server->port()), rec);
  REQUIRE(waitFor([&] { return dp->state().generation == 1; }, kWait));
  const uint64_t loads_before = server->stats().snapshot_loads;

  // 20 commits 20 ms apart, within the interval: without it each would be read on its own
  // (a read of this store takes well under 20 ms); with it the reads after the first wait it
  // out and cover all that came meanwhile.
  for (int i = 1; i <= 20; ++i) {
    store.commit("default", [i](auto& s) { addService(s, "svc-" + std::to_string(i)); });
    std::this_thread::sleep_for(20ms);
  }
  REQUIRE(waitFor([&] { return dp->state().generation == 21; }, kWait));
  CHECK(server->stats().snapshot_loads - loads_before <= 2);
  CHECK(rec.total() <= 3);  // generation 1, maybe one in the middle, and 21
}

TEST_CASE("sync: commits while no DP of the group is connected are read when one attaches") {
  FakeConfigStore store;
  store.commit("default", [](auto& s) { addService(s, "svc-0"); });
  auto server = startServer(store);
  ApplyRecorder rec;
  auto first = startClient(clientOptions(server->port()), rec);
  REQUIRE(waitFor([&] { return first->state().generation == 1; }, kWait));
  first->stop();
  REQUIRE(waitFor([&] {
    auto n = node(*server, first->nodeId());
    return n && !n->connected;
  }, kWait));
  const auto before = server->stats();

  // Nobody listens: ten commits cost no read, hash or encode.
  for (int i = 1; i <= 10; ++i) {
    store.commit("default", [i](auto& s) { addService(s, "svc-" + std::to_string(i)); });
  }
  std::this_thread::sleep_for(300ms);
  CHECK(server->stats().snapshot_loads == before.snapshot_loads);
  CHECK(server->stats().delta_loads == before.delta_loads);
  CHECK(server->stats().encodes == before.encodes);

  // A DP that attaches gets the newest generation, read once.
  ApplyRecorder rec2;
  auto second = startClient(clientOptions(server->port()), rec2);
  REQUIRE(waitFor([&] { return second->state().generation == 11; }, kWait));
  CHECK(server->stats().snapshot_loads + server->stats().delta_loads -
            before.snapshot_loads - before.delta_loads == 1);
  // And a commit while it is connected is read at once, as always.
  store.commit("default", [](auto& s) { addService(s, "svc-11"); });
  REQUIRE(waitFor([&] { return second->state().generation == 12; }, kWait));
}

TEST_CASE("sync: a DP that reconnects with the current generation gets nothing new") {
  TempDir dir;
  FakeConfigStore store;
  store.commit("default", [](auto& s) { addService(s, "svc-a"); });
  auto server = startServer(store);
  ApplyRecorder rec;
  auto opts = clientOptions(server->port());
  opts.cache_path = dir.path + "/config.cache";
  auto first = startClient(opts, rec);
  REQUIRE(waitFor([&] { return server->stats().acks == 1; }, kWait));
  first->stop();
  const auto before = server->stats();

  // A restarted DP (new process, new node id) boots from its cache and resumes.
  auto second = startClient(opts, rec);
  CHECK(second->state().generation == 1);  // applied from cache before start() returned
  CHECK(second->state().from_cache);
  REQUIRE(waitFor([&] {
    auto n = node(*server, second->nodeId());
    return second->state().connected && n && n->connected && n->applied_generation == 1;
  }, kWait));
  // Let a few heartbeats go by: still no push, no encode, no second apply.
  REQUIRE(waitFor([&] { return second->state().heartbeats >= 2; }, kWait));
  const auto after = server->stats();
  CHECK(after.pushes == before.pushes);
  CHECK(after.chunks_sent == before.chunks_sent);
  CHECK(after.encodes == before.encodes);
  CHECK(rec.total() == 2);  // the first push, and the cache on the second start
}

TEST_CASE("sync: a rejected generation is NACKed with details and never resent") {
  FakeConfigStore store;
  store.commit("default", [](auto& s) { addService(s, "svc-a"); });
  auto server = startServer(store);
  ApplyRecorder rec;
  rec.reject.insert(2);
  auto opts = clientOptions(server->port());
  opts.node_id = "11111111-2222-4333-8444-555555555555";
  auto client = startClient(opts, rec);
  REQUIRE(waitFor([&] { return client->state().generation == 1; }, kWait));
  const std::string good_hash = client->state().config_hash;

  store.commit("default", [](auto& s) { addService(s, "svc-bad"); });
  REQUIRE(waitFor([&] { return server->stats().nacks == 1; }, kWait));
  auto n = node(*server, opts.node_id);
  REQUIRE(n.has_value());
  CHECK(n->rejected_generation == 2);
  CHECK(n->rejected_message == "declarative config is invalid");
  REQUIRE(n->rejected_errors.size() == 1);
  CHECK(n->rejected_errors[0] ==
        config::FieldError{"routes", "r-1", "paths.1", "should start with: / (fixed path)"});
  // The DP keeps serving generation 1.
  CHECK(client->state().generation == 1);
  CHECK(client->state().config_hash == good_hash);
  CHECK(n->applied_generation == 1);

  // Same node, new stream: the CP remembers the rejection.
  client->stop();
  client = startClient(opts, rec);
  REQUIRE(waitFor([&] {
    auto m = node(*server, opts.node_id);
    return client->state().connected && m && m->connected;
  }, kWait));
  REQUIRE(waitFor([&] { return client->state().heartbeats >= 2; }, kWait));
  CHECK(rec.callsFor(2) == 1);
  CHECK(server->stats().nacks == 1);

  // The next generation goes out and applies.
  store.commit("default", [](auto& s) { s.mutable_services()->RemoveLast(); });
  REQUIRE(waitFor([&] { return client->state().generation == 3; }, kWait));
  CHECK(rec.callsFor(2) == 1);
  CHECK(rec.callsFor(3) == 1);
}

TEST_CASE("sync: a DP started while the CP is down serves its cached snapshot") {
  TempDir dir;
  FakeConfigStore store;
  store.commit("default", [](auto& s) { addService(s, "svc-a"); });
  auto server = startServer(store);
  ApplyRecorder rec;
  auto opts = clientOptions(server->port());
  opts.cache_path = dir.path + "/config.cache";
  {
    auto client = startClient(opts, rec);
    REQUIRE(waitFor([&] { return server->stats().acks == 1; }, kWait));
  }
  const std::string hash = rec.calls.back().second;
  server->shutdown();
  server.reset();

  ApplyRecorder cold;
  auto client = startClient(opts, cold);
  CHECK(cold.total() == 1);
  CHECK(cold.calls[0].first == 1);
  CHECK(cold.calls[0].second == hash);
  CHECK(client->state().generation == 1);
  CHECK(client->state().from_cache);
  // It keeps trying to connect (and fails) without losing the cached config.
  REQUIRE(waitFor([&] { return client->state().connect_failures >= 3; }, kWait));
  CHECK(client->state().generation == 1);
  const auto start = std::chrono::steady_clock::now();
  client->stop();
  CHECK(std::chrono::steady_clock::now() - start < 2s);
}

TEST_CASE("sync: a store outage is retried and the DP converges when it ends") {
  FakeConfigStore store;
  store.commit("default", [](auto& s) { addService(s, "svc-a"); });
  store.setUnavailable(true);
  auto server = startServer(store);
  ApplyRecorder rec;
  auto client = startClient(clientOptions(server->port()), rec);
  REQUIRE(waitFor([&] { return client->state().connected; }, kWait));
  REQUIRE(waitFor([&] { return server->stats().load_failures >= 3; }, kWait));
  CHECK(client->state().generation == 0);
  store.setUnavailable(false);
  REQUIRE(waitFor([&] { return client->state().generation == 1; }, kWait));
}

TEST_CASE("sync: a multi-megabyte snapshot crosses in chunks under 1 MiB") {
  FakeConfigStore store;
  store.commit("default", [](auto& s) {
    std::mt19937_64 rng(5);
    for (int i = 0; i < 2000; ++i) {
      addService(s, "svc-" + std::to_string(rng()));
      std::string tag(1500, 'x');
      for (auto& ch : tag) {
        ch = static_cast<char>('a' + rng() % 26);
      }
      s.mutable_services(i)->add_tags(tag);
    }
  });
  auto server = startServer(store);
  ApplyRecorder rec;
  auto client = startClient(clientOptions(server->port()), rec);
  REQUIRE(waitFor([&] { return client->state().generation == 1; }, kWait));
  CHECK(server->stats().chunks_sent >= 2);
  // The DP updates its state just before it writes the ACK: wait for the CP to read it.
  CHECK(waitFor([&] { return server->stats().acks == 1; }, kWait));
}

TEST_CASE("sync: server shutdown with connected DPs does not hang") {
  FakeConfigStore store;
  store.commit("default", [](auto& s) { addService(s, "svc-a"); });
  auto server = startServer(store);
  ApplyRecorder rec;
  std::vector<std::unique_ptr<dp::SyncClient>> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(startClient(clientOptions(server->port()), rec));
  }
  REQUIRE(waitFor([&] { return server->stats().acks == 3; }, kWait));
  auto start = std::chrono::steady_clock::now();
  server->shutdown();
  CHECK(std::chrono::steady_clock::now() - start < 5s);
  CHECK(server->stats().streams_active == 0);
  server->shutdown();  // idempotent
  for (auto& c : clients) {
    CHECK(waitFor([&] { return !c->state().connected; }, kWait));
    CHECK(c->state().generation == 1);  // still serving
  }
  start = std::chrono::steady_clock::now();
  clients.clear();
  CHECK(std::chrono::steady_clock::now() - start < 3s);
  server.reset();
}

TEST_CASE("sync: a DP reconnects by itself when the CP comes back") {
  FakeConfigStore store;
  store.commit("default", [](auto& s) { addService(s, "svc-a"); });
  const int port = testing::freePort();
  auto opts = serverOptions();
  opts.listen_address = "127.0.0.1:" + std::to_string(port);
  auto server = startServer(store, opts);
  ApplyRecorder rec;
  auto client = startClient(clientOptions(port), rec);
  REQUIRE(waitFor([&] { return client->state().generation == 1; }, kWait));
  server->shutdown();
  server.reset();
  REQUIRE(waitFor([&] { return !client->state().connected; }, kWait));
  store.commit("default", [](auto& s) { addService(s, "svc-b"); });
  server = startServer(store, opts);
  REQUIRE(waitFor([&] { return client->state().generation == 2; }, kWait));
  CHECK(client->state().connects == 2);
}

// mTLS with material made by the openssl CLI: a CA, a server cert for 127.0.0.1 and a client
// cert. A client without a cert signed by the CA is refused.
bool run(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()) == 0; }

TEST_CASE("sync: mTLS requires a client certificate signed by the cluster CA") {
  if (!run("command -v openssl")) {
    WARN("openssl CLI not found; skipping");
    return;
  }
  TempDir dir;
  const std::string d = dir.path;
  auto mk = [&](const std::string& name, const std::string& ca_name, const std::string& ext) {
    REQUIRE(run("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout " +
                d + "/" + name + ".key -out " + d + "/" + name + ".csr -subj /CN=" + name));
    std::ofstream(d + "/" + name + ".ext") << ext << "\n";
    REQUIRE(run("openssl x509 -req -in " + d + "/" + name + ".csr -CA " + d + "/" + ca_name +
                ".crt -CAkey " + d + "/" + ca_name + ".key -CAcreateserial -days 1 -out " + d +
                "/" + name + ".crt -extfile " + d + "/" + name + ".ext"));
  };
  for (const std::string ca : {"ca", "rogue"}) {
    REQUIRE(run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
                "-days 1 -keyout " + d + "/" + ca + ".key -out " + d + "/" + ca +
                ".crt -subj /CN=" + ca));
  }
  // A DNS name plus the client's server_name (target name override), as deployments that
  // reach the CP through a load balancer's address do.
  mk("server", "ca", "subjectAltName=DNS:portico-cp");
  mk("client", "ca", "extendedKeyUsage=clientAuth");
  mk("intruder", "rogue", "extendedKeyUsage=clientAuth");

  FakeConfigStore store;
  store.commit("default", [](auto& s) { addService(s, "svc-a"); });
  auto sopts = serverOptions();
  sopts.insecure = false;
  sopts.cert_path = d + "/server.crt";
  sopts.key_path = d + "/server.key";
  sopts.ca_path = d + "/ca.crt";
  auto server = startServer(store, sopts);

  ApplyRecorder rec;
  auto good = clientOptions(server->port());
  good.insecure = false;
  good.cert_path = d + "/client.crt";
  good.key_path = d + "/client.key";
  good.ca_path = d + "/ca.crt";
  good.server_name = "portico-cp";
  auto client = startClient(good, rec);
  REQUIRE(waitFor([&] { return client->state().generation == 1; }, kWait));

  ApplyRecorder rec_bad;
  auto bad = good;
  bad.cert_path = d + "/intruder.crt";
  bad.key_path = d + "/intruder.key";
  auto intruder = startClient(bad, rec_bad);
  REQUIRE(waitFor([&] { return intruder->state().connect_failures >= 2; }, kWait));
  CHECK(intruder->state().connects == 0);
  CHECK(rec_bad.total() == 0);

  // Missing TLS material is a clean start-up error, not a crash.
  auto missing = sopts;
  missing.ca_path = d + "/nope.crt";
  CHECK(cp::SyncServer::start(store, missing).status().code() ==
        absl::StatusCode::kInvalidArgument);
}


// A hand-written CP that pushes generation 1, then generation 2 with one corrupted byte: the
// DP NACKs it (once), keeps serving generation 1, and applies nothing else.
class CorruptingCp final : public sync::v1::ConfigSync::Service {
 public:
  absl::Mutex mu;
  std::vector<sync::v1::Nack> nacks;
  int acks = 0;

  grpc::Status Sync(grpc::ServerContext* context,
                    grpc::ServerReaderWriter<sync::v1::ControlPlaneMessage,
                                             sync::v1::DataPlaneMessage>* stream) override {
    sync::v1::DataPlaneMessage in;
    if (!stream->Read(&in) || !in.has_hello()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "hello first");
    }
    sync::v1::ControlPlaneMessage reply;
    reply.mutable_hello_reply()->set_heartbeat_interval_ms(100);
    stream->Write(reply);
    auto push = [&](uint64_t generation, bool corrupt) {
      config::v1::Snapshot s;
      s.set_group("default");
      s.set_generation(generation);
      for (int i = 0; i < 300; ++i) {
        addService(s, "svc-" + std::to_string(generation) + "-" + std::to_string(i));
      }
      auto encoded = sync::encodeSnapshot(s, sync::EncodeOptions{4096});
      REQUIRE(encoded.ok());
      for (size_t i = 0; i < (*encoded)->messages.size(); ++i) {
        sync::v1::ControlPlaneMessage m = (*encoded)->messages[i];
        if (corrupt && i == (*encoded)->messages.size() / 2) {
          std::string* data = m.mutable_chunk()->mutable_data();
          (*data)[data->size() / 2] ^= 0x5a;
        }
        stream->Write(m);
      }
    };
    push(1, false);
    bool sent_corrupt = false;
    while (stream->Read(&in)) {
      absl::MutexLock lock(&mu);
      if (in.has_ack()) {
        acks++;
        if (!sent_corrupt) {
          sent_corrupt = true;
          push(2, true);
        }
      } else if (in.has_nack()) {
        nacks.push_back(in.nack());
      }
      if (context->IsCancelled()) {
        break;
      }
    }
    return grpc::Status::OK;
  }
};

TEST_CASE("sync: a corrupted chunk is NACKed once and the DP keeps serving what it had") {
  CorruptingCp cp;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&cp);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  REQUIRE(server != nullptr);

  ApplyRecorder rec;
  auto client = startClient(clientOptions(port), rec);
  REQUIRE(waitFor([&] {
    absl::MutexLock lock(&cp.mu);
    return cp.nacks.size() == 1;
  }, kWait));
  std::this_thread::sleep_for(300ms);  // the rest of the bad push is swallowed, not re-NACKed
  {
    absl::MutexLock lock(&cp.mu);
    CHECK(cp.nacks.size() == 1);
    CHECK(cp.nacks[0].generation() == 2);
    CHECK((cp.nacks[0].code() == static_cast<int>(absl::StatusCode::kInvalidArgument) ||
           cp.nacks[0].code() == static_cast<int>(absl::StatusCode::kDataLoss)));
    CHECK(cp.acks == 1);
  }
  CHECK(client->state().generation == 1);
  CHECK(client->state().connected);
  CHECK(rec.total() == 1);
  client->stop();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
}

}  // namespace
}  // namespace portico
