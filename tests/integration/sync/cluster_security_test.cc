// Cluster mTLS modes (shared certificate pinning, PKI with groups from the certificate), load
// shedding (RESOURCE_EXHAUSTED + retry-after-ms, honoured by the DP) and compatibility
// payloads for an older DP minor, over real gRPC on 127.0.0.1 with an in-memory store.
// Certificates are made here with the openssl CLI.
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/sync/cluster_tls.h"
#include "control_plane/sync/compat.h"
#include "control_plane/sync/sync_server.h"
#include "data_plane/sync_client/sync_client.h"
#include "tests/integration/sync/fake_store.h"
#include "tests/support/test_support.h"

namespace portico {
namespace {

using namespace std::chrono_literals;
using testing::FakeConfigStore;
using testing::waitFor;

constexpr auto kWait = 10s;

bool run(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()) == 0; }

struct TempDir {
  TempDir() {
    char tmpl[] = "/tmp/portico-sync-sec-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    if (std::getenv("PORTICO_KEEP_TMP") == nullptr) {
      std::filesystem::remove_all(path);
    }
  }
  std::string path;
};

// Certificates for one test: self-signed ones (shared mode) and a CA with leaf certs (PKI).
struct Certs {
  TempDir dir;
  std::string d = dir.path;
  std::string p(const std::string& name, const std::string& ext) const {
    return d + "/" + name + "." + ext;
  }
  void selfSigned(const std::string& name, const std::string& cn) {
    REQUIRE(run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:secp384r1 -nodes "
                "-days 2 -keyout " + p(name, "key") + " -out " + p(name, "crt") + " -subj /CN=" +
                cn + " -addext subjectAltName=DNS:" + cn));
  }
  void ca(const std::string& name) {
    REQUIRE(run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
                "-days 2 -keyout " + p(name, "key") + " -out " + p(name, "crt") + " -subj /CN=" +
                name));
  }
  void leaf(const std::string& name, const std::string& ca_name, const std::string& ext) {
    REQUIRE(run("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout " +
                p(name, "key") + " -out " + p(name, "csr") + " -subj /CN=" + name));
    std::ofstream(p(name, "ext")) << ext << "\n";
    REQUIRE(run("openssl x509 -req -in " + p(name, "csr") + " -CA " + p(ca_name, "crt") +
                " -CAkey " + p(ca_name, "key") + " -CAcreateserial -days 1 -out " +
                p(name, "crt") + " -extfile " + p(name, "ext")));
  }
};

void addService(config::v1::Snapshot& s, const std::string& id) {
  auto* svc = s.add_services();
  svc->set_id(id);
  svc->set_protocol("http");
  svc->set_host(id + ".internal");
  svc->set_port(80);
}

// Keeps the last snapshot applied; can block applies until released.
struct Applier {
  absl::Mutex mu;
  config::v1::Snapshot last;
  int calls = 0;
  std::shared_ptr<absl::Notification> gate;  // set: apply waits for it

  dp::SyncClient::ApplyFn fn() {
    return [this](const config::v1::Snapshot& s, const std::string&,
                  config::FieldErrors*) -> absl::Status {
      std::shared_ptr<absl::Notification> g;
      {
        absl::MutexLock lock(&mu);
        g = gate;
      }
      if (g != nullptr) {
        g->WaitForNotification();
      }
      absl::MutexLock lock(&mu);
      last = s;
      calls++;
      return absl::OkStatus();
    };
  }
  config::v1::Snapshot snapshot() {
    absl::MutexLock lock(&mu);
    return last;
  }
};

cp::SyncServerOptions serverOptions() {
  cp::SyncServerOptions o;
  o.listen_address = "127.0.0.1:0";
  o.insecure = true;
  o.heartbeat_interval_ms = 200;
  o.cp_version = "0.1.0";
  return o;
}

dp::SyncClient::Options clientOptions(int port) {
  dp::SyncClient::Options o;
  o.cp_address = "127.0.0.1:" + std::to_string(port);
  o.insecure = true;
  o.version = "0.1.0";
  o.backoff_initial_ms = 20;
  o.backoff_max_ms = 200;
  return o;
}

std::unique_ptr<dp::SyncClient> startClient(dp::SyncClient::Options o, Applier& a) {
  auto c = std::make_unique<dp::SyncClient>(std::move(o), a.fn());
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

// ---------------------------------------------------------------------------------------------
// mTLS

TEST_CASE("cluster mTLS shared: the same certificate on both sides; any other is refused") {
  Certs c;
  c.selfSigned("cluster", "portico_clustering");
  c.selfSigned("other", "portico_clustering");  // same names, another key: not the pinned one
  FakeConfigStore store;
  store.commit("default", [](auto& s) { addService(s, "svc-a"); });
  auto so = serverOptions();
  so.insecure = false;
  so.mtls = sync::ClusterMtls::kShared;
  so.cert_path = c.p("cluster", "crt");
  so.key_path = c.p("cluster", "key");
  auto server = cp::SyncServer::start(store, so);
  REQUIRE(server.ok());
  const int port = (*server)->port();

  Applier good_apply;
  auto good = clientOptions(port);
  good.insecure = false;
  good.mtls = sync::ClusterMtls::kShared;
  good.cert_path = c.p("cluster", "crt");
  good.key_path = c.p("cluster", "key");
  auto dp_good = startClient(good, good_apply);
  REQUIRE(waitFor([&] { return dp_good->state().generation == 1; }, kWait));

  // A DP that trusts the CP's certificate but presents another one: the CP's pin refuses it
  // in the TLS handshake, before any HTTP/2 byte of it is parsed.
  Applier bad_apply;
  auto bad = clientOptions(port);
  bad.insecure = false;
  bad.mtls = sync::ClusterMtls::kPki;
  bad.ca_path = c.p("cluster", "crt");
  bad.server_name = "portico_clustering";
  bad.cert_path = c.p("other", "crt");
  bad.key_path = c.p("other", "key");
  auto dp_bad = startClient(bad, bad_apply);
  REQUIRE(waitFor([&] { return (*server)->stats().tls_handshake_failures >= 2; }, kWait));
  CHECK((*server)->stats().refused == 0);  // no stream was ever opened
  CHECK(dp_bad->state().connects == 0);
  CHECK(dp_bad->state().generation == 0);

  // A DP in shared mode with the other certificate refuses the CP (its pin is `other`).
  Applier wrong_apply;
  auto wrong = good;
  wrong.cert_path = c.p("other", "crt");
  wrong.key_path = c.p("other", "key");
  auto dp_wrong = startClient(wrong, wrong_apply);
  REQUIRE(waitFor([&] { return dp_wrong->state().connect_failures >= 2; }, kWait));
  CHECK(dp_wrong->state().connects == 0);
  CHECK(wrong_apply.calls == 0);
  (*server)->shutdown();
}

TEST_CASE("cluster mTLS pki: CA-verified, the group comes from the certificate or a join token") {
  Certs c;
  c.ca("ca");
  c.leaf("cp", "ca", "subjectAltName=DNS:portico-cp");
  c.leaf("blue", "ca", "subjectAltName=URI:portico://group/blue\nextendedKeyUsage=clientAuth");
  c.leaf("plain", "ca", "extendedKeyUsage=clientAuth");
  FakeConfigStore store;
  store.commit("default", [](auto& s) { addService(s, "svc-default"); });
  store.commit("blue", [](auto& s) { addService(s, "svc-blue"); });
  store.commit("red", [](auto& s) { addService(s, "svc-red"); });
  auto so = serverOptions();
  so.insecure = false;
  so.mtls = sync::ClusterMtls::kPki;
  so.cert_path = c.p("cp", "crt");
  so.key_path = c.p("cp", "key");
  so.ca_path = c.p("ca", "crt");
  so.join_tokens["red-secret-token"] = "red";
  auto server = cp::SyncServer::start(store, so);
  REQUIRE(server.ok());

  auto opts = [&](const std::string& cert, const std::string& group) {
    auto o = clientOptions((*server)->port());
    o.insecure = false;
    o.mtls = sync::ClusterMtls::kPki;
    o.ca_path = c.p("ca", "crt");
    o.server_name = "portico-cp";
    o.cert_path = c.p(cert, "crt");
    o.key_path = c.p(cert, "key");
    o.group = group;
    return o;
  };
  Applier a1, a2, a3, a4;
  // Blue's certificate, no group in Hello: it joins blue.
  auto blue = startClient(opts("blue", ""), a1);
  REQUIRE(waitFor([&] { return blue->state().generation >= 1; }, kWait));
  CHECK(a1.snapshot().services(0).id() == "svc-blue");
  CHECK(node(**server, blue->nodeId())->group == "blue");
  // Blue's certificate asking for red: refused, and listed with the reason.
  auto blue_red = startClient(opts("blue", "red"), a2);
  REQUIRE(waitFor([&] {
    auto n = node(**server, blue_red->nodeId());
    return n && n->sync_status == "group_not_allowed";
  }, kWait));
  CHECK(blue_red->state().connects == 0);
  CHECK(a2.calls == 0);
  // A certificate naming no group: the default group only.
  auto plain = startClient(opts("plain", ""), a3);
  REQUIRE(waitFor([&] { return plain->state().generation >= 1; }, kWait));
  CHECK(a3.snapshot().services(0).id() == "svc-default");
  auto plain_red = startClient(opts("plain", "red"), a4);
  REQUIRE(waitFor([&] {
    auto n = node(**server, plain_red->nodeId());
    return n && n->sync_status == "group_not_allowed";
  }, kWait));
  CHECK(a4.calls == 0);

  // A join token the CP issued for red admits a DP whose certificate names no group.
  Applier a5, a6;
  auto with_token = opts("plain", "");
  with_token.join_token = "red-secret-token";
  auto red = startClient(with_token, a5);
  REQUIRE(waitFor([&] { return red->state().generation >= 1; }, kWait));
  CHECK(a5.snapshot().services(0).id() == "svc-red");
  CHECK(node(**server, red->nodeId())->group == "red");
  auto bad_token = opts("plain", "red");
  bad_token.join_token = "red-secret-tokeN";
  const uint64_t refused = (*server)->stats().refused;
  auto intruder = startClient(bad_token, a6);
  REQUIRE(waitFor([&] { return (*server)->stats().refused >= refused + 2; }, kWait));
  CHECK(intruder->state().connects == 0);
  CHECK(a6.calls == 0);
  (*server)->shutdown();
}

TEST_CASE("cluster TLS: missing material is one clear error on both sides") {
  FakeConfigStore store;
  auto so = serverOptions();
  so.insecure = false;
  so.mtls = sync::ClusterMtls::kShared;
  auto server = cp::SyncServer::start(store, so);
  REQUIRE(server.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(server.status().message()).find("--cluster_insecure") != std::string::npos);

  Applier a;
  auto o = clientOptions(1);
  o.insecure = false;
  dp::SyncClient client(o, a.fn());
  const absl::Status st = client.start();
  CHECK(st.code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(st.message()).find("--cluster_insecure") != std::string::npos);
}

TEST_CASE("cluster TLS: certificate helpers") {
  Certs c;
  c.ca("ca");
  c.leaf("blue", "ca", "subjectAltName=URI:portico://group/blue,URI:portico://group/green,"
                       "DNS:dp-1\nextendedKeyUsage=clientAuth");
  std::ifstream in(c.p("blue", "crt"));
  const std::string pem((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(*sync::certificateGroups(pem) == std::vector<std::string>{"blue", "green"});
  CHECK(*sync::certificateName(pem) == "dp-1");
  CHECK(sync::certificateSha256(pem)->size() == 64);
  CHECK(sync::certificateSha256("not a cert").status().code() ==
        absl::StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------------------------
// Load shedding

TEST_CASE("load shedding: RESOURCE_EXHAUSTED with a retry hint that the DP honours") {
  FakeConfigStore store;
  store.commit("default", [](auto& s) { addService(s, "svc-a"); });
  auto so = serverOptions();
  so.max_concurrent_syncs = 1;
  so.retry_after_ms = 300;
  auto server = cp::SyncServer::start(store, so);
  REQUIRE(server.ok());

  // A holds the only slot: its first apply blocks.
  Applier a;
  a.gate = std::make_shared<absl::Notification>();
  auto gate = a.gate;
  auto dp_a = startClient(clientOptions((*server)->port()), a);
  REQUIRE(waitFor([&] { return (*server)->stats().syncing == 1; }, kWait));

  TempDir cache;
  Applier b;
  auto b_opts = clientOptions((*server)->port());
  b_opts.cache_path = cache.path + "/b.cache";
  auto dp_b = startClient(b_opts, b);
  REQUIRE(waitFor([&] { return dp_b->state().retry_hints >= 1; }, kWait));
  const uint64_t hint = dp_b->state().last_retry_after_ms;
  CHECK(hint >= 300);
  CHECK(hint <= 600);
  // B's own backoff is 20..200 ms; honouring hints of 300..600 ms (+ up to 50 % jitter)
  // allows at most 1.5 s / 300 ms + 1 refusals in 1.5 s.
  const uint64_t shed0 = (*server)->stats().shed;
  std::this_thread::sleep_for(1500ms);
  const uint64_t shed1 = (*server)->stats().shed;
  CHECK(shed1 - shed0 <= 6);
  CHECK(shed1 - shed0 >= 1);
  CHECK(dp_b->state().generation == 0);

  gate->Notify();  // A applies and ACKs: the slot frees, B gets in
  REQUIRE(waitFor([&] { return dp_a->state().generation == 1; }, kWait));
  REQUIRE(waitFor([&] { return dp_b->state().generation == 1; }, kWait));
  REQUIRE(waitFor([&] { return (*server)->stats().syncing == 0; }, kWait));

  // A DP that is already current (restarted from its cache) needs no slot, even when the
  // slots are taken.
  dp_b->stop();
  Applier c;
  c.gate = std::make_shared<absl::Notification>();
  auto gate_c = c.gate;
  auto dp_c = startClient(clientOptions((*server)->port()), c);  // takes the slot, blocks
  REQUIRE(waitFor([&] { return (*server)->stats().syncing == 1; }, kWait));
  const uint64_t shed_before = (*server)->stats().shed;
  Applier b2;
  auto dp_b2 = startClient(b_opts, b2);
  REQUIRE(waitFor([&] { return dp_b2->state().connected; }, kWait));
  CHECK(dp_b2->state().generation == 1);
  CHECK(dp_b2->state().retry_hints == 0);
  CHECK((*server)->stats().shed == shed_before);
  gate_c->Notify();
  REQUIRE(waitFor([&] { return dp_c->state().generation == 1; }, kWait));
  (*server)->shutdown();
}

// ---------------------------------------------------------------------------------------------
// Compatibility with an older DP minor

TEST_CASE("compat: a 0.0.x DP gets the fields it does not know stripped, listed as issues") {
  CHECK(cp::compatClass("0.0.7", cp::builtinCompatRules()) == "P0001,P0002");
  CHECK(cp::compatClass("0.1.0", cp::builtinCompatRules()).empty());
  CHECK(cp::compatClass("0.3.2", cp::builtinCompatRules()).empty());

  FakeConfigStore store;
  store.commit("default", [](auto& s) {
    addService(s, "svc-a");
    s.mutable_services(0)->set_tls_verify(true);
    addService(s, "svc-b");
    auto* u = s.add_upstreams();
    u->set_id("up-1");
    u->set_name("up");
    u->set_hash_on_query_arg("user");
  });
  auto server = cp::SyncServer::start(store, serverOptions());
  REQUIRE(server.ok());
  const int port = (*server)->port();

  Applier old1, old2, cur;
  TempDir cache;
  auto o1 = clientOptions(port);
  o1.version = "0.0.7";
  o1.cache_path = cache.path + "/old1.cache";
  auto o2 = o1;
  o2.cache_path.clear();
  auto c = clientOptions(port);
  auto dp_old1 = startClient(o1, old1);
  auto dp_old2 = startClient(o2, old2);
  auto dp_cur = startClient(c, cur);
  REQUIRE(waitFor([&] {
    return dp_old1->state().generation == 1 && dp_old2->state().generation == 1 &&
           dp_cur->state().generation == 1;
  }, kWait));
  // The current DP gets everything; the older ones do not get the new fields.
  CHECK(cur.snapshot().upstreams(0).has_hash_on_query_arg());
  CHECK(cur.snapshot().services(0).has_tls_verify());
  CHECK_FALSE(old1.snapshot().upstreams(0).has_hash_on_query_arg());
  CHECK_FALSE(old1.snapshot().services(0).has_tls_verify());
  CHECK(old1.snapshot().upstreams(0).name() == "up");
  CHECK(dp_old1->state().config_hash == dp_old2->state().config_hash);
  CHECK(dp_old1->state().config_hash != dp_cur->state().config_hash);
  // Encoded once for the class, whatever the number of older DPs.
  CHECK((*server)->stats().compat_encodes == 1);

  auto n = node(**server, dp_old1->nodeId());
  REQUIRE(n.has_value());
  REQUIRE(waitFor([&] {
    n = node(**server, dp_old1->nodeId());
    return n->compatibility_issues.size() == 2;
  }, kWait));
  std::set<std::string> seen;
  for (const auto& i : n->compatibility_issues) {
    seen.insert(i.id + " " + i.entity_type + " " + i.entity_id + " " + i.field);
  }
  CHECK(seen == std::set<std::string>{"P0001 upstreams up-1 hash_on_query_arg",
                                      "P0002 services svc-a tls_verify"});
  CHECK(node(**server, dp_cur->nodeId())->compatibility_issues.empty());

  // The next generation: once more per class; both older DPs follow.
  store.commit("default", [](auto& s) { addService(s, "svc-c"); });
  REQUIRE(waitFor([&] {
    return dp_old1->state().generation == 2 && dp_old2->state().generation == 2 &&
           dp_cur->state().generation == 2;
  }, kWait));
  CHECK((*server)->stats().compat_encodes == 2);
  CHECK(old2.snapshot().services_size() == 3);

  // An older DP restarting from its cache (the class's payload) gets nothing again.
  const std::string hash = dp_old1->state().config_hash;
  dp_old1->stop();
  const uint64_t pushes = (*server)->stats().pushes;
  Applier again;
  auto dp_again = startClient(o1, again);
  REQUIRE(waitFor([&] { return dp_again->state().connected; }, kWait));
  std::this_thread::sleep_for(300ms);
  CHECK(dp_again->state().config_hash == hash);
  CHECK((*server)->stats().pushes == pushes);
  (*server)->shutdown();
}

}  // namespace
}  // namespace portico
