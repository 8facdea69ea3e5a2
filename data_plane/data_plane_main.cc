// portico-dp's program (data_plane/main.cc only calls it): its flags, and DataPlaneMain, which
// creates the SnapshotStore, starts the proxy workers and the status listener, gets config
// from the control plane (sync client) or a declarative file, and drains gracefully on
// SIGTERM/SIGINT.
#include "data_plane/data_plane_main.h"

#include <malloc.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>

#include <google/protobuf/util/json_util.h>
#include <openssl/sha.h>

#include "absl/flags/flag.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/flags.h"
#include "common/sync/cluster_flags.h"
#include "common/log_flags.h"
#include "common/logging.h"
#include "common/retirer.h"
#include "data_plane/vitals/vitals.h"
#include "data_plane/proxy/proxy_server.h"
#include "data_plane/plugins/proxy_cache/cache_store.h"
#include "data_plane/plugins/logging/log_files.h"
#include "data_plane/plugins/registry.h"
#include "data_plane/snapshot.h"
#include "data_plane/status/status_server.h"
#include "common/config/validate.h"
#include "common/declarative/declarative.h"
#include "data_plane/sync_client/sync_client.h"
#include "data_plane/sync_client/upstream_health.h"

ABSL_FLAG(std::string, proxy_listen, "0.0.0.0:8000", "Proxy listener, host:port (HTTP).");
ABSL_FLAG(std::string, proxy_ssl_listen, "0.0.0.0:8443",
          "Proxy listener for HTTPS, host:port, or 'off'. The certificate is picked by SNI from "
          "the config's certificates/snis, else the default one (--ssl_cert).");
ABSL_FLAG(std::string, ssl_cert, "",
          "Default certificate (PEM file) of the HTTPS listener; a self-signed one is generated "
          "at start when empty (like Kong).");
ABSL_FLAG(std::string, ssl_cert_key, "", "Private key (PEM file) of --ssl_cert.");
ABSL_FLAG(std::string, trusted_ips, "",
          "Comma-separated IPs/CIDRs whose X-Forwarded-* and --real_ip_header are trusted "
          "(Kong's trusted_ips; '0.0.0.0/0,::/0' trusts everyone).");
ABSL_FLAG(std::string, real_ip_header, "X-Real-IP",
          "Header carrying the client address from a trusted peer (Kong's real_ip_header).");
ABSL_FLAG(bool, real_ip_recursive, false,
          "With a list in --real_ip_header, skip trusted addresses from the right "
          "(Kong's real_ip_recursive).");
ABSL_FLAG(bool, allow_debug_header, false,
          "Answer requests carrying 'Kong-Debug: 1' with Kong-Route-Id/-Name and "
          "Kong-Service-Id/-Name headers (Kong's allow_debug_header).");
ABSL_FLAG(std::string, status_listen, "127.0.0.1:8100",
          "Status listener, host:port (/status, /status/ready, /metrics).");
ABSL_FLAG(int32_t, workers, 0, "Proxy worker threads (0 = one per CPU core).");
ABSL_FLAG(std::string, cp_address, "127.0.0.1:8005", "Control plane cluster address, host:port.");
ABSL_FLAG(std::string, cluster_join_token, "",
          "Join token the control plane issued for a group (pki; prefer the environment "
          "variable PORTICO_CLUSTER_JOIN_TOKEN).");
ABSL_FLAG(std::string, control_plane, "",
          "The control plane (group) this data plane joins; empty: the default one. The CP "
          "admits it when its certificate or join token allows that group.");
ABSL_FLAG(std::string, dp_labels, "",
          "Labels shown with this node on the CP's /clustering/data-planes, as Kong's "
          "cluster_dp_labels: key:value[,key:value...] (e.g. region:eu-west-1,env:prod).");
ABSL_FLAG(std::string, cluster_server_name, "",
          "Name expected in the control plane's certificate (pki; default: the host of "
          "--cp_address).");
ABSL_FLAG(int32_t, cluster_reconnect_max_ms, 3000,
          "Longest wait between attempts to reach the control plane (exponential backoff "
          "with full jitter from 100 ms): a DP is current again at most about this long after "
          "the CP returns.");
ABSL_FLAG(std::string, config_cache_path, "",
          "File keeping the last applied snapshot, served at start while the CP is unreachable.");
ABSL_FLAG(std::string, declarative_config, "",
          "Run without a control plane (DB-less) from this file in Kong's declarative format "
          "(kong.yml or decK's file, YAML or JSON, _format_version 1.1, 2.1 or 3.0). SIGHUP "
          "reloads it; a file that fails validation is logged with its line numbers and the "
          "running config stays. A file without _format_version that is a "
          "portico.config.v1.Snapshot in protobuf's JSON mapping is also taken (legacy).");
ABSL_FLAG(int32_t, client_header_timeout_ms, 60000,
          "A request head must arrive whole within this (nginx's client_header_timeout), on the "
          "proxy and status listeners.");
ABSL_FLAG(int32_t, client_body_timeout_ms, 60000,
          "Longest wait for the next piece of a request body (nginx's client_body_timeout).");
ABSL_FLAG(int32_t, keepalive_timeout_ms, 60000,
          "How long an idle client keep-alive connection stays open (nginx's keepalive_timeout).");
ABSL_FLAG(int32_t, proxy_cache_memory_mb, 128,
          "Memory for the proxy-cache plugin's responses, one cache per process shared by its "
          "workers (Kong's mem_cache_size); least recently used entries go first.");
ABSL_FLAG(bool, vitals, true,
          "Report traffic (requests, bytes, latency per service, route, consumer and status in "
          "10 s buckets) to the control plane, which stores it for GET /vitals/requests. "
          "Ignored with --declarative_config (no control plane).");
ABSL_FLAG(int32_t, drain_timeout_ms, 10000,
          "On SIGTERM, how long in-flight requests may take before the process exits.");

namespace portico::dp {
namespace {

void fail(const std::string& line) {
  std::fprintf(stderr, "portico-dp: %s\n", line.c_str());
  std::exit(1);
}

bool splitHostPort(const std::string& in, std::string* host, uint16_t* port) {
  size_t colon = in.rfind(':');
  if (colon == std::string::npos) {
    return false;
  }
  *host = in.substr(0, colon);
  if (host->size() > 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  const std::string p = in.substr(colon + 1);
  if (p.empty() || p.size() > 5 || p.find_first_not_of("0123456789") != std::string::npos) {
    return false;
  }
  int v = std::stoi(p);
  if (v > 65535) {
    return false;
  }
  *port = static_cast<uint16_t>(v);
  return true;
}

// notAfter of the PEM certificate at `path` in unix seconds (Kong's
// kong_data_plane_cluster_cert_expiry_timestamp); 0 when there is none or it cannot be read.
int64_t certificateExpiry(const std::string& path) {
  if (path.empty()) {
    return 0;
  }
  FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) {
    return 0;
  }
  X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  if (cert == nullptr) {
    return 0;
  }
  struct tm tm = {};
  const bool ok = ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) == 1;
  X509_free(cert);
  return ok ? static_cast<int64_t>(timegm(&tm)) : 0;
}

// Decoding, validating and building a big snapshot leaves megabytes of freed heap behind
// (measured: 9 MB of RSS for 10k routes); hand it back to the OS off the request path (the
// retirer's thread runs it after each old snapshot is destroyed).
void releaseFreedMemory() { malloc_trim(0); }

// --dp_labels "k:v,k:v": at most 10 labels; keys and values 1-63 characters of letters,
// digits, '.', '-' and '_', starting and ending with a letter or digit; keys not starting
// with "kong" or "konnect" (reserved, as in Kong).
absl::StatusOr<std::map<std::string, std::string>> parseDpLabels(absl::string_view text) {
  std::map<std::string, std::string> out;
  if (text.empty()) {
    return out;
  }
  const auto valid = [](absl::string_view s) {
    if (s.empty() || s.size() > 63 || !absl::ascii_isalnum(s.front()) ||
        !absl::ascii_isalnum(s.back())) {
      return false;
    }
    for (char c : s) {
      if (!absl::ascii_isalnum(c) && c != '.' && c != '-' && c != '_') return false;
    }
    return true;
  };
  for (absl::string_view pair : absl::StrSplit(text, ',')) {
    const size_t colon = pair.find(':');
    if (colon == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("label '", pair, "' is not key:value"));
    }
    const std::string key(pair.substr(0, colon));
    const std::string value(pair.substr(colon + 1));
    if (!valid(key)) {
      return absl::InvalidArgumentError(absl::StrCat("invalid label key '", key, "'"));
    }
    if (absl::StartsWithIgnoreCase(key, "kong") || absl::StartsWithIgnoreCase(key, "konnect")) {
      return absl::InvalidArgumentError(
          absl::StrCat("label key '", key, "' is reserved (starts with kong or konnect)"));
    }
    if (!valid(value)) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid value '", value, "' for label '", key, "'"));
    }
    if (!out.emplace(key, value).second) {
      return absl::InvalidArgumentError(absl::StrCat("label '", key, "' given twice"));
    }
  }
  if (out.size() > 10) {
    return absl::InvalidArgumentError("more than 10 labels");
  }
  return out;
}

// The one apply path, for the sync client's pushes and the declarative file: validate with
// the shared rules (`errors` gets every failure, as the NACK's field paths), build the whole
// snapshot, publish it; the replaced one is destroyed off this thread and off the proxy
// workers once the requests still using it are done.
absl::Status applySnapshot(SnapshotStore& store, Retirer<Snapshot>& retirer,
                           std::shared_ptr<const config::v1::Snapshot> shared,
                           std::shared_ptr<const config::KeyAuthTable> key_auth,
                           const std::string& hash, config::FieldErrors* errors) {
  const uint64_t generation = shared->generation();
  const absl::Time start = absl::Now();
  *errors = config::validateSnapshot(*shared, key_auth.get());
  if (!errors->empty()) {
    return absl::InvalidArgumentError("snapshot failed validation");
  }
  const absl::Time validated = absl::Now();
  absl::StatusOr<SnapshotConstSharedPtr> snap =
      Snapshot::build(std::move(shared), std::move(key_auth), hash, nullptr, nullptr, errors);
  if (!snap.ok()) {
    return snap.status();
  }
  if (SnapshotConstSharedPtr old = store.set(*std::move(snap)); old != nullptr) {
    retirer.retire(std::move(old));
  } else {
    releaseFreedMemory();  // the first config (the cache at start): parse leftovers
  }
  const absl::Time built = absl::Now();
  LOG_INFO("config", "generation %d (hash %s): validated in %s, built and swapped in %s",
           static_cast<int64_t>(generation), hash, absl::FormatDuration(validated - start),
           absl::FormatDuration(built - validated));
  return absl::OkStatus();
}

// A config read from --declarative_config, ready for applySnapshot.
struct FileConfig {
  std::shared_ptr<const config::v1::Snapshot> snapshot;
  std::shared_ptr<const config::KeyAuthTable> key_auth;
  std::string hash;
};

// The first 16 hex digits of SHA-256 over the snapshot's serialization: equal files give equal
// hashes, so a SIGHUP on an unchanged file swaps nothing.
std::string snapshotHash(const config::v1::Snapshot& snapshot) {
  const std::string bytes = snapshot.SerializeAsString();
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), md);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < 8; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 15]);
  }
  return out;
}

// Reads and validates the whole file (Kong's declarative format; a protobuf-JSON snapshot
// as a fallback for files without _format_version). On failure `details` gets one line per
// error, each with the file's line number, and the status the first of them.
absl::StatusOr<FileConfig> readConfigFile(const std::string& path, uint64_t generation,
                                          std::string* details) {
  declarative::LoadOptions options;
  options.generation = generation;
  declarative::LoadResult loaded = declarative::loadDeclarativeFile(path, options);
  config::v1::Snapshot proto;
  if (loaded.ok()) {
    proto = std::move(loaded.snapshot);
  } else {
    const bool no_version =
        std::any_of(loaded.problems.begin(), loaded.problems.end(), [](const auto& p) {
          return p.field == "_format_version" && p.message == "required field missing";
        });
    bool legacy = false;
    if (no_version) {
      std::ifstream in(path);
      std::stringstream text;
      text << in.rdbuf();
      google::protobuf::util::JsonParseOptions opts;
      opts.ignore_unknown_fields = false;
      legacy = google::protobuf::util::JsonStringToMessage(text.str(), &proto, opts).ok();
    }
    if (!legacy) {
      *details = loaded.describe(path);
      const declarative::Problem& p = loaded.problems.front();
      std::string first = p.line > 0 ? absl::StrCat("line ", p.line, ": ") : "";
      if (!p.pointer.empty()) {
        absl::StrAppend(&first, p.pointer.substr(1), " ");
      }
      if (!p.field.empty() && !p.entity_type.empty()) {
        absl::StrAppend(&first, p.field, ": ");
      } else if (!p.pointer.empty()) {
        first.back() = ':';
        first += ' ';
      }
      absl::StrAppend(&first, p.message);
      if (loaded.problems.size() > 1) {
        absl::StrAppend(&first, " (and ", loaded.problems.size() - 1, " more errors)");
      }
      return absl::InvalidArgumentError(first);
    }
    LOG_WARN("config", "%s has no _format_version: read as a protobuf-JSON snapshot (legacy)",
             path);
    if (proto.generation() == 0) {
      proto.set_generation(generation);
    }
  }
  FileConfig out;
  out.key_auth = config::KeyAuthTable::extract(&proto);
  const uint64_t assigned = proto.generation();
  proto.set_generation(0);  // the content's hash: the same file hashes the same on reload
  out.hash = snapshotHash(proto);
  proto.set_generation(assigned);
  out.snapshot = std::make_shared<const config::v1::Snapshot>(std::move(proto));
  return out;
}

// SIGHUP in DB-less mode: validate the whole file off the request path, swap only if it is
// good and different; otherwise keep serving what runs and say why, with line numbers.
void reloadConfigFile(const std::string& path, SnapshotStore& store, Retirer<Snapshot>& retirer,
                      uint64_t* generation, std::string* current_hash) {
  std::string details;
  absl::StatusOr<FileConfig> cfg = readConfigFile(path, *generation + 1, &details);
  if (!cfg.ok()) {
    LOG_ERROR("config", "SIGHUP: %s is invalid, keeping the running config (generation %d): %s",
              path, static_cast<int64_t>(*generation), cfg.status().message());
    for (absl::string_view line : absl::StrSplit(details, '\n', absl::SkipEmpty())) {
      LOG_ERROR("config", "%s", line);
    }
    return;
  }
  if (cfg->hash == *current_hash) {
    LOG_INFO("config", "SIGHUP: %s is unchanged (hash %s)", path, cfg->hash);
    return;
  }
  config::FieldErrors errors;
  absl::Status applied = applySnapshot(store, retirer, std::move(cfg->snapshot),
                                       std::move(cfg->key_auth), cfg->hash, &errors);
  if (!applied.ok()) {
    LOG_ERROR("config", "SIGHUP: %s could not be applied, keeping the running config: %s%s",
              path, applied.message(),
              errors.empty() ? std::string()
                             : absl::StrCat(" (", errors.front().entity_type, " ",
                                            errors.front().field, ": ", errors.front().reason,
                                            ")"));
    return;
  }
  *generation += 1;
  *current_hash = cfg->hash;
  LOG_INFO("config", "SIGHUP: %s loaded (generation %d)", path, static_cast<int64_t>(*generation));
}

}  // namespace

int DataPlaneMain(int argc, char** argv) {
  parseFlagsWithEnv(argc, argv, "portico-dp: Portico data plane proxy");
  LogLevel level;
  if (!parseLogLevel(absl::GetFlag(FLAGS_log_level), &level)) {
    fail("invalid --log_level: " + absl::GetFlag(FLAGS_log_level));
  }
  setLogLevel(level);

  // Signals are taken synchronously by this thread; every thread started below inherits the
  // mask, so SIGTERM is never delivered to a worker.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGUSR1);  // file-log: reopen the log files (after a rotation)
  sigaddset(&signals, SIGHUP);   // --declarative_config: reload the file
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  ProxyOptions proxy_options;
  if (!splitHostPort(absl::GetFlag(FLAGS_proxy_listen), &proxy_options.listen_address,
                     &proxy_options.listen_port)) {
    fail("invalid --proxy_listen: " + absl::GetFlag(FLAGS_proxy_listen));
  }
  {
    const std::string ssl_listen = absl::GetFlag(FLAGS_proxy_ssl_listen);
    if (ssl_listen != "off") {
      proxy_options.ssl_enabled = true;
      if (!splitHostPort(ssl_listen, &proxy_options.ssl_listen_address,
                         &proxy_options.ssl_listen_port)) {
        fail("invalid --proxy_ssl_listen: " + ssl_listen);
      }
    }
    const std::string cert = absl::GetFlag(FLAGS_ssl_cert);
    const std::string key = absl::GetFlag(FLAGS_ssl_cert_key);
    if (cert.empty() != key.empty()) {
      fail("--ssl_cert and --ssl_cert_key go together");
    }
    if (!cert.empty()) {
      absl::StatusOr<std::string> cert_pem = sync::readPemFile("--ssl_cert", cert);
      absl::StatusOr<std::string> key_pem = sync::readPemFile("--ssl_cert_key", key);
      if (!cert_pem.ok() || !key_pem.ok()) {
        fail(std::string((cert_pem.ok() ? key_pem : cert_pem).status().message()));
      }
      proxy_options.ssl_cert_pem = *std::move(cert_pem);
      proxy_options.ssl_key_pem = *std::move(key_pem);
    }
    auto trusted = TrustedIps::parse(absl::GetFlag(FLAGS_trusted_ips));
    if (!trusted.ok()) {
      fail("invalid --trusted_ips: " + std::string(trusted.status().message()));
    }
    proxy_options.trusted_ips = *std::move(trusted);
    proxy_options.real_ip_header = absl::GetFlag(FLAGS_real_ip_header);
    proxy_options.real_ip_recursive = absl::GetFlag(FLAGS_real_ip_recursive);
    proxy_options.allow_debug_header = absl::GetFlag(FLAGS_allow_debug_header);
    portico::dp::plugins::proxy_cache::CacheStore::setCapacity(
        static_cast<size_t>(std::max(1, absl::GetFlag(FLAGS_proxy_cache_memory_mb))) << 20);
    proxy_options.client_header_timeout_ms =
        static_cast<uint32_t>(std::max(100, absl::GetFlag(FLAGS_client_header_timeout_ms)));
    proxy_options.client_body_timeout_ms =
        static_cast<uint32_t>(std::max(100, absl::GetFlag(FLAGS_client_body_timeout_ms)));
    proxy_options.keepalive_timeout_ms =
        static_cast<uint32_t>(std::max(100, absl::GetFlag(FLAGS_keepalive_timeout_ms)));
  }
  StatusOptions status_options;
  status_options.header_timeout_ms =
      static_cast<uint32_t>(std::max(100, absl::GetFlag(FLAGS_client_header_timeout_ms)));
  if (!splitHostPort(absl::GetFlag(FLAGS_status_listen), &status_options.listen_address,
                     &status_options.listen_port)) {
    fail("invalid --status_listen: " + absl::GetFlag(FLAGS_status_listen));
  }
  int32_t workers = absl::GetFlag(FLAGS_workers);
  if (workers < 0) {
    fail("invalid --workers: must be >= 0");
  }
  proxy_options.workers = workers > 0 ? static_cast<uint32_t>(workers)
                                      : std::max(1u, std::thread::hardware_concurrency());

  SnapshotStore store;
  // Declared before the proxy and the sync client, so it outlives both.
  Retirer<Snapshot> retirer(releaseFreedMemory);

  const std::string declarative = absl::GetFlag(FLAGS_declarative_config);
  uint64_t file_generation = 0;
  std::string file_hash;
  if (!declarative.empty()) {
    struct stat st;
    if (::stat(declarative.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      fail("cannot read --declarative_config " + declarative);
    }
    std::string details;
    absl::StatusOr<FileConfig> cfg = readConfigFile(declarative, 1, &details);
    if (!cfg.ok()) {
      for (absl::string_view line : absl::StrSplit(details, '\n', absl::SkipEmpty())) {
        LOG_ERROR("config", "%s", line);
      }
      fail("invalid --declarative_config " + declarative + ": " +
           std::string(cfg.status().message()));
    }
    file_generation = cfg->snapshot->generation();
    file_hash = cfg->hash;
    config::FieldErrors errors;
    absl::Status applied = applySnapshot(store, retirer, std::move(cfg->snapshot),
                                         std::move(cfg->key_auth), file_hash, &errors);
    if (!applied.ok()) {
      std::string why(applied.message());
      if (!errors.empty()) {
        const config::FieldError& e = errors.front();
        why = absl::StrCat("config rejected (", errors.size(), " error(s)): ", e.entity_type, " ",
                           e.entity_id, ": ", e.field, ": ", e.reason);
      }
      fail("invalid --declarative_config " + declarative + ": " + why);
    }
    releaseFreedMemory();  // the file's text and the parsed messages are gone by now
  }

  // Declared before the proxy, which records into it, and the sync client, which reports it.
  std::unique_ptr<vitals::Collector> vitals;
  if (declarative.empty() && absl::GetFlag(FLAGS_vitals)) {
    vitals = std::make_unique<vitals::Collector>(proxy_options.workers);
    proxy_options.vitals = vitals.get();
  }
  absl::StatusOr<std::unique_ptr<ProxyServer>> proxy = ProxyServer::start(proxy_options, store);
  if (!proxy.ok()) {
    fail(std::string(proxy.status().message()));
  }
  absl::StatusOr<std::unique_ptr<StatusServer>> status =
      StatusServer::start(status_options, store, &(*proxy)->stats());
  if (!status.ok()) {
    fail(std::string(status.status().message()));
  }

  // ---- Control-plane sync (data_plane/sync_client/, built when that target exists) ----------
  std::unique_ptr<SyncClient> sync;
  if (declarative.empty()) {
    SyncClient::Options sync_options;
    sync_options.cp_address = absl::GetFlag(FLAGS_cp_address);
    {
      absl::StatusOr<sync::ClusterTlsFlags> tls = sync::clusterTlsFromFlags();
      if (!tls.ok()) {
        fail(std::string(tls.status().message()));
      }
      sync_options.insecure = tls->insecure;
      sync_options.cert_path = tls->cert_path;
      sync_options.key_path = tls->key_path;
      sync_options.ca_path = tls->ca_path;
      sync_options.mtls = tls->mtls;
    }
    const std::string sync_cert_path = sync_options.cert_path;
    sync_options.server_name = absl::GetFlag(FLAGS_cluster_server_name);
    sync_options.join_token = absl::GetFlag(FLAGS_cluster_join_token);
    sync_options.group = absl::GetFlag(FLAGS_control_plane);
    {
      absl::StatusOr<std::map<std::string, std::string>> labels =
          parseDpLabels(absl::GetFlag(FLAGS_dp_labels));
      if (!labels.ok()) {
        fail("invalid --dp_labels: " + std::string(labels.status().message()));
      }
      sync_options.labels = *std::move(labels);
    }
    sync_options.cache_path = absl::GetFlag(FLAGS_config_cache_path);
    // Issue 10: current again <= 5 s after the CP returns. With the client's 10 s default, a
    // DP retrying for a while sleeps up to 10 s between attempts (full jitter: after a long
    // outage about 1 in 4 would still wait over 5 s once the CP is back); the CP's
    // retry-after hint still spreads a returning fleet out.
    sync_options.backoff_max_ms =
        static_cast<uint32_t>(std::max(100, absl::GetFlag(FLAGS_cluster_reconnect_max_ms)));
    sync_options.version = kPorticoVersion;
    for (const PluginFactory& plugin : builtinPlugins()) {
      sync_options.plugins.emplace_back(plugin.name);
    }
    // The CP's DELETE/GET /proxy-cache...: this process's proxy-cache store.
    sync_options.cache_purge = [](const sync::v1::CachePurge& purge) {
      const plugins::proxy_cache::PurgeOutcome o =
          plugins::proxy_cache::purgeOrLookup(purge.cache_key(), purge.lookup());
      sync::v1::CachePurgeResult result;
      result.set_purged(o.purged);
      result.set_entry_json(o.entry_json);
      return result;
    };
    // Balancer health for the CP's GET /upstreams/{u}/health (Heartbeat.upstreams).
    sync_options.health = [&store] { return upstreamHealth(store.get().get()); };
    sync_options.vitals = vitals.get();
    sync = std::make_unique<SyncClient>(
        std::move(sync_options),
        SyncClient::SharedApplyFn([&store, &retirer](
                                      std::shared_ptr<const config::v1::Snapshot> shared,
                                      std::shared_ptr<const config::KeyAuthTable> key_auth,
                                      const std::string& hash,
                                      config::FieldErrors* errors) -> absl::Status {
          return applySnapshot(store, retirer, std::move(shared), std::move(key_auth), hash,
                               errors);
        }));
    StatusNode node;
    node.node_id = sync->nodeId();
    if (vitals != nullptr) {
      node.extra_metrics = [v = vitals.get()](metrics::Writer& w) {
        const vitals::Collector::Stats s = v->stats();
        w.gauge("portico_dp_vitals_pending_batches",
                "Vitals batches waiting for the control plane's acknowledgement.",
                static_cast<double>(s.pending));
        w.counter("portico_dp_vitals_batches_total", "Vitals batches made since start.",
                  static_cast<double>(s.batches));
        w.counter("portico_dp_vitals_acknowledged_total",
                  "Vitals batches the control plane acknowledged (stored, duplicate or refused).",
                  static_cast<double>(s.acknowledged));
        w.counter("portico_dp_vitals_dropped_total",
                  "Vitals batches and buckets dropped because the buffers were full (the "
                  "control plane was out of reach too long).",
                  static_cast<double>(s.dropped_batches + s.dropped_buckets));
      };
    }
    node.cp_connected = [client = sync.get()] { return client->state().connected; };
    node.cp_link = [client = sync.get(), address = absl::GetFlag(FLAGS_cp_address),
                    group = absl::GetFlag(FLAGS_control_plane)] {
      const SyncClient::State st = client->state();
      return ControlPlaneLink{st.connected, address, group.empty() ? "default" : group,
                              st.last_contact_unix_ms};
    };
    node.cluster_cert_expiry_s = certificateExpiry(sync_cert_path);
    (*status)->setNode(std::move(node));
    absl::Status started = sync->start();
    if (!started.ok()) {
      fail(std::string(started.message()));
    }
  }
  // ---------------------------------------------------------------------------------------------

  int sig = 0;
  while (sigwait(&signals, &sig) == 0 && (sig == SIGUSR1 || sig == SIGHUP)) {
    if (sig == SIGHUP) {
      if (declarative.empty()) {
        LOG_INFO("main", "SIGHUP: ignored (config comes from the control plane)");
      } else {
        reloadConfigFile(declarative, store, retirer, &file_generation, &file_hash);
      }
      continue;
    }
    LOG_INFO("main", "SIGUSR1: reopening file-log files");
    plugins::logging::reopenLogFiles();
  }
  LOG_INFO("main", "signal %d: draining (up to %d ms)", sig,
           absl::GetFlag(FLAGS_drain_timeout_ms));
  if (sync) {
    sync->stop();
  }
  const bool drained =
      (*proxy)->drain(std::chrono::milliseconds(absl::GetFlag(FLAGS_drain_timeout_ms)));
  (*proxy)->stop();
  (*status)->stop();
  LOG_INFO("main", "stopped (%s)", drained ? "drained" : "drain timeout");
  return 0;
}

}  // namespace portico::dp
