// Real-process clusters for end-to-end tests: a restartable private PostgreSQL (deploy/lib.sh),
// portico-cp and portico-dp processes on free loopback ports, and a temporary folder. Header
// only; everything started is stopped by destructors.
#pragma once

#include <signal.h>
#include <stdlib.h>

#include <cctype>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/support/test_support.h"

namespace portico::testing {

using namespace std::chrono_literals;

inline bool sh(const std::string& cmd) {
  return std::system(("bash -c '" + cmd + "' >/dev/null 2>&1").c_str()) == 0;
}

struct TempDir {
  TempDir() {
    char tmpl[] = "/tmp/portico-sync-e2e-XXXXXX";
    path = ::mkdtemp(tmpl);
    std::filesystem::permissions(path, std::filesystem::perms::all);
  }
  ~TempDir() {
    if (std::getenv("PORTICO_KEEP_TMP") == nullptr) {
      std::filesystem::remove_all(path);
    }
  }
  std::string path;
};

// A private PostgreSQL we can stop and start (TestPostgres may share a server).
struct Postgres {
  TempDir dir;
  int port = freePort();
  std::string lib = sourceDir() + "/deploy/lib.sh";
  Postgres() {
    REQUIRE(start());
    REQUIRE(sh("psql -h 127.0.0.1 -p " + std::to_string(port) +
               " -U postgres -qc \"CREATE DATABASE portico\""));
  }
  ~Postgres() { stop(); }
  bool start() {
    return sh("source " + lib + " && portico_pg_start " + dir.path + "/pg " +
              std::to_string(port));
  }
  void stop() { sh("source " + lib + " && portico_pg_stop " + dir.path + "/pg"); }
  std::string dsn() const {
    return "host=127.0.0.1 port=" + std::to_string(port) + " dbname=portico user=postgres";
  }
};

struct Cp {
  int admin_port = freePort();
  int cluster_port = freePort();
  std::vector<std::string> args;
  std::unique_ptr<Process> proc;

  Cp(const std::string& dsn, std::vector<std::string> extra = {"--cluster_insecure"}) {
    args = {"--pg_dsn=" + dsn, "--admin_listen=127.0.0.1:" + std::to_string(admin_port),
            "--cluster_listen=127.0.0.1:" + std::to_string(cluster_port),
            "--cluster_heartbeat_interval_ms=500"};
    args.insert(args.end(), extra.begin(), extra.end());
    start();
  }
  void start() {
    proc = std::make_unique<Process>(binaryPath("portico-cp"), args);
    INFO("cp log:\n" << proc->log());
    // Up: /status answers (401 with --admin_auth=on and no token).
    REQUIRE(waitFor([&] {
      const int status = admin("GET", "/status").status;
      return status == 200 || status == 401;
    }, 20s));
  }
  void kill9() {
    ::kill(proc->pid(), SIGKILL);
    proc->wait(10s);
  }
  HttpResponse admin(const std::string& method, const std::string& path,
                     const std::string& body = "") {
    return httpRequest("127.0.0.1", admin_port, method, path, body);
  }
  // An Admin API call that must answer `want` (the test stops otherwise, showing the answer).
  void adminOk(const std::string& method, const std::string& path, const nlohmann::json& body,
               int want) {
    HttpResponse r = admin(method, path, body.dump());
    INFO(method << " " << path << " -> " << r.status << " " << r.body);
    REQUIRE(r.status == want);
  }
  // The generation of the last committed write (GET /status), which a DP reports once it
  // runs it.
  uint64_t committedGeneration() {
    auto j = nlohmann::json::parse(admin("GET", "/status").body, nullptr, false);
    return j.is_object() ? j["configuration"].value("generation", uint64_t{0}) : 0;
  }
  uint64_t generation() {
    // The newest generation any DP acked, as the fleet endpoint lists it.
    auto r = admin("GET", "/clustering/data-planes");
    uint64_t g = 0;
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    if (j.is_object() && j.contains("data")) {
      for (auto& n : j["data"]) {
        g = std::max(g, n.value("generation", uint64_t{0}));
      }
    }
    return g;
  }
};

struct Dp {
  int proxy_port = freePort();
  int status_port = freePort();
  std::vector<std::string> args;
  std::unique_ptr<Process> proc;

  Dp(int cluster_port, const std::string& cache, std::vector<std::string> extra = {
                                                     "--cluster_insecure"}) {
    // Every listener on a free port: the default HTTPS port 8443 would be shared by DPs of
    // tests running in parallel, and a DP refuses a port another process serves.
    args = {"--proxy_listen=127.0.0.1:" + std::to_string(proxy_port),
            "--proxy_ssl_listen=127.0.0.1:" + std::to_string(freePort()),
            "--status_listen=127.0.0.1:" + std::to_string(status_port),
            "--cp_address=127.0.0.1:" + std::to_string(cluster_port), "--workers=1",
            "--config_cache_path=" + cache};
    args.insert(args.end(), extra.begin(), extra.end());
    start();
  }
  void start() { proc = std::make_unique<Process>(binaryPath("portico-dp"), args); }
  void kill9() {
    ::kill(proc->pid(), SIGKILL);
    proc->wait(10s);
  }
  int get(const std::string& path) { return httpRequest("127.0.0.1", proxy_port, "GET", path).status; }
  uint64_t generation() {
    auto r = httpRequest("127.0.0.1", status_port, "GET", "/status");
    return r.status == 200 ? nlohmann::json::parse(r.body, nullptr, false).value("generation", uint64_t{0})
                           : 0;
  }
};


// A real Prometheus server (the Debian `prometheus` package) with a scrape config written by
// the test, its TSDB in a temporary folder, and its HTTP query API. available() is false when
// the package is not installed (the caller skips, saying so).
class PrometheusServer {
 public:
  static bool available() {
    return std::filesystem::exists("/usr/bin/prometheus") &&
           std::filesystem::exists("/usr/bin/promtool");
  }
  // `config_yaml`: the whole prometheus.yml; files it names relative to the config (rule
  // files) must be copied into dir() first (see copyIntoDir).
  explicit PrometheusServer(const std::string& config_yaml, const TempDir& dir)
      : dir_(dir.path), port_(freePort()) {
    std::ofstream(dir_ + "/prometheus.yml") << config_yaml;
    proc_ = std::make_unique<Process>(
        "/usr/bin/prometheus",
        std::vector<std::string>{"--config.file=" + dir_ + "/prometheus.yml",
                                 "--storage.tsdb.path=" + dir_ + "/tsdb",
                                 "--web.listen-address=127.0.0.1:" + std::to_string(port_),
                                 "--log.level=warn"});
  }
  int port() const { return port_; }
  std::string log() { return proc_->log(); }

  // GET /api/v1/<path>; the parsed body (null when the server did not answer JSON).
  nlohmann::json api(const std::string& path_and_query) const {
    HttpResponse r = httpRequest("127.0.0.1", port_, "GET", "/api/v1/" + path_and_query);
    return nlohmann::json::parse(r.body, nullptr, false);
  }
  // An instant query: {"status": "success"|"error", "data"|"error": ...}.
  nlohmann::json instant(const std::string& promql) const {
    return api("query?query=" + urlEncode(promql));
  }
  // The result vector of a successful query, else an empty array.
  nlohmann::json query(const std::string& promql) const {
    nlohmann::json j = instant(promql);
    if (!j.is_object() || j.value("status", "") != "success") {
      return nlohmann::json::array();
    }
    return j["data"]["result"];
  }
  // The value of a query with exactly one sample, else "".
  std::string scalar(const std::string& promql) const {
    nlohmann::json result = query(promql);
    return result.is_array() && result.size() == 1 ? result[0]["value"][1].get<std::string>()
                                                   : "";
  }

  static std::string urlEncode(const std::string& in) {
    static const char* kHex = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : in) {
      if (std::isalnum(c) || c == '_' || c == '-' || c == '.' || c == '~') {
        out.push_back(static_cast<char>(c));
      } else {
        out.push_back('%');
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 15]);
      }
    }
    return out;
  }

 private:
  std::string dir_;
  int port_;
  std::unique_ptr<Process> proc_;
};

inline void migrate(const std::string& dsn) {
  Process m(binaryPath("portico-cp"), {"--pg_dsn=" + dsn, "migrations", "up"});
  REQUIRE(m.wait(60s) == 0);
}

}  // namespace portico::testing
