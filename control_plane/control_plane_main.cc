// portico-cp's program (control_plane/main.cc only calls it): its flags, and
// ControlPlaneMain, which serves the Admin API and the cluster (sync) listener over the
// PostgreSQL database of record, or manages its schema (`portico-cp migrations ...`).
#include "control_plane/control_plane_main.h"

#include <arpa/inet.h>
#include <malloc.h>
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "common/flags.h"
#include "common/heap.h"
#include "common/sync/cluster_flags.h"
#include "common/log_flags.h"
#include "common/logging.h"
#include "control_plane/admin_api/admin_auth.h"
#include "control_plane/admin_api/http_server.h"
#include "control_plane/store/change_log_pruner.h"
#include "control_plane/store/migrations.h"
#include "control_plane/store/pg_store_impl.h"
#include "control_plane/store/pg_changes.h"
#include "control_plane/sync/sync_metrics.h"
#include "control_plane/sync/sync_server.h"
#include "control_plane/fleet/fleet_registry.h"
#include "control_plane/portal/portal_server.h"
#include "control_plane/console/console_server.h"
#include "control_plane/provisioning/credentials.h"
#include "control_plane/provisioning/keyring.h"
#include "control_plane/provisioning/pki.h"
#include "control_plane/vitals/vitals_api.h"
#include "control_plane/vitals/vitals_ingest.h"
#include "control_plane/vitals/vitals_store.h"

ABSL_FLAG(std::string, keyring, "",
          "A file holding the 32-byte key (64 hex characters) that seals the control plane's "
          "own cluster CA in PostgreSQL; created (mode 0600) if missing. Every CP of one "
          "database needs the same file. With --cluster_mtls=pki it enables issuing data plane "
          "certificates and join tokens (POST /control-planes/{id}/data-plane-certificates, "
          "/data-plane-tokens); without --cluster_ca/--cluster_cert/--cluster_key the CA also "
          "signs this CP's certificate.");
ABSL_FLAG(std::string, cluster_server_names, "localhost,127.0.0.1",
          "Names and addresses in this CP's cluster certificate when --keyring issues it.");
ABSL_FLAG(std::string, cluster_advertise_address, "",
          "host:port data planes reach the cluster listener at, for the run commands of issued "
          "credentials (default: the first --cluster_server_names and --cluster_listen's port).");
ABSL_FLAG(int32_t, vitals_top_consumers, 10,
          "Vitals: consumers kept per route in each 10 s bucket (by requests); the rest are "
          "reported together as consumer \"*\". Bounds the rows per route.");
ABSL_FLAG(int32_t, vitals_flush_interval_s, 10,
          "Vitals: how often data planes send their closed 10 s buckets.");
ABSL_FLAG(std::string, pg_dsn, "host=127.0.0.1 port=5432 dbname=portico user=postgres",
          "libpq connection string of the PostgreSQL database of record");
ABSL_FLAG(int32_t, pg_commit_resolve_timeout_ms, 10000,
          "how long a write whose COMMIT got no answer (PostgreSQL or the connection went away "
          "during it) tries to find out whether it committed before it answers 503 with "
          "\"outcome\": \"unknown\"");
ABSL_FLAG(std::string, admin_listen, "127.0.0.1:8001", "Admin API listener (host:port)");
ABSL_FLAG(std::string, cluster_listen, "0.0.0.0:8005", "cluster (CP/DP sync) gRPC listener");
ABSL_FLAG(std::string, cluster_join_tokens, "",
          "pki: join tokens as <group>=<token>[,<group>=<token>...]; a data plane sending one "
          "may join that group (prefer the environment variable PORTICO_CLUSTER_JOIN_TOKENS)");
ABSL_FLAG(int32_t, cluster_max_concurrent_syncs, 256,
          "data planes in their initial sync at once; more get RESOURCE_EXHAUSTED with a "
          "retry-after-ms hint (0 = no limit)");
ABSL_FLAG(int32_t, cluster_max_pending_connections, 1024,
          "cluster connections that have not opened a call yet (TLS handshake, unauthenticated), "
          "in all; more are closed at accept and the data plane retries");
ABSL_FLAG(int32_t, cluster_max_pending_per_client, 128,
          "the same per client IP address");
ABSL_FLAG(int32_t, cluster_handshake_timeout_ms, 10000,
          "a cluster connection that has not completed TLS and opened its call within this "
          "long is closed (slow and silent clients)");
ABSL_FLAG(int32_t, cluster_retry_after_ms, 1000,
          "retry hint (plus up to 100% jitter) sent to data planes refused under load");
ABSL_FLAG(int32_t, cluster_heartbeat_interval_ms, 5000,
          "heartbeat cadence the CP asks of data planes; 3 missed heartbeats = offline");
ABSL_FLAG(int64_t, cluster_data_plane_purge_delay, 1209600,
          "seconds after which a data plane not seen is removed from the fleet registry");
ABSL_FLAG(int32_t, cluster_delta_window, 128,
          "generations kept for deltas (0 = always send full snapshots)");
ABSL_FLAG(int64_t, cluster_change_log_retention, 1000,
          "generations of change_log rows kept per group (older ones are pruned every minute); "
          "at least --cluster_delta_window");
ABSL_FLAG(int32_t, cluster_workers, 1,
          "io threads serving data-plane sync streams (one handles thousands of idle streams; "
          "more help TLS handshake storms)");
ABSL_FLAG(int32_t, admin_workers, 8,
          "threads (and PostgreSQL connections) serving Admin API requests");
ABSL_FLAG(std::string, admin_auth, "off",
          "on: every Admin API request needs a Kong-Admin-Token (see 'portico-cp admins')");
ABSL_FLAG(std::string, admin_ssl_cert, "", "Admin API TLS certificate chain (PEM); with "
          "--admin_ssl_key the Admin listener serves HTTPS only");
ABSL_FLAG(std::string, admin_ssl_key, "", "Admin API TLS private key (PEM)");
ABSL_FLAG(int32_t, admin_header_timeout_ms, 60000,
          "a request head must arrive whole within this (nginx's client_header_timeout; also "
          "how long an idle keep-alive connection stays open)");
ABSL_FLAG(int32_t, admin_body_timeout_ms, 60000,
          "a request body must arrive whole within this of its head");
ABSL_FLAG(int32_t, admin_max_connections, 2048,
          "open Admin API connections in all; more are answered 503 and closed (0: no cap)");
ABSL_FLAG(int32_t, admin_max_connections_per_client, 256,
          "open Admin API connections per client address (0: no cap)");
ABSL_FLAG(std::string, admin_gui_url, "",
          "comma-separated URLs of the consoles that call the Admin API from a browser: "
          "answers allow only their origins (CORS), as Kong's admin_gui_url; empty: any");

namespace portico::cp {
namespace {

constexpr char kUsage[] =
    "portico-cp [flags]                 serve the Admin API and the cluster listener\n"
    "portico-cp migrations up|status|finish   manage the database schema\n"
    "portico-cp admins create <name> [admin|read-only]   make an Admin API token (printed once)\n"
    "portico-cp admins list | admins revoke <name or id>  list or revoke Admin API tokens\n"
    "portico-cp vitals pack             rebuild the last hour's packed 10 s vitals buckets from\n"
    "                                   the 10 s route rows (after an upgrade or SQL fills)";

int fail(const std::string& line) {
  std::fprintf(stderr, "portico-cp: %s\n", line.c_str());
  return 1;
}

int runMigrations(const std::string& dsn, const std::string& command) {
  if (command == "status") {
    auto states = migrationStatus(dsn);
    if (!states.ok()) {
      return fail(std::string(states.status().message()));
    }
    int pending = 0;
    for (const auto& s : *states) {
      const char* state = !s.up_applied                     ? "pending"
                          : s.has_finish && !s.finish_applied ? "up (finish pending)"
                                                              : "applied";
      pending += s.up_applied ? 0 : 1;
      std::printf("%s\t%s\n", s.name.c_str(), state);
    }
    std::printf("%s\n", pending == 0 ? "database is up to date"
                                     : (std::to_string(pending) + " migration(s) pending").c_str());
    return 0;
  }
  if (command == "up" || command == "finish") {
    auto applied = command == "up" ? migrateUp(dsn) : migrateFinish(dsn);
    if (!applied.ok()) {
      return fail(std::string(applied.status().message()));
    }
    for (const auto& name : *applied) {
      std::printf("applied %s.%s\n", name.c_str(), command.c_str());
    }
    if (applied->empty()) {
      std::printf("nothing to apply: database is up to date\n");
    }
    return 0;
  }
  return fail("unknown migrations command '" + command + "' (expected up, status or finish)");
}

// `portico-cp admins ...`: Admin API tokens. The token is printed once and stored hashed.
int runVitals(const std::string& dsn, const std::vector<std::string>& args) {
  if (args.size() != 3 || args[2] != "pack") {
    std::fprintf(stderr, "usage: portico-cp vitals pack\n");
    return 2;
  }
  PgPool pool(dsn, 1);
  auto written = vitals::packRouteBuckets(pool);
  if (!written.ok()) return fail(std::string(written.status().message()));
  std::printf("packed %llu vitals buckets\n", static_cast<unsigned long long>(*written));
  return 0;
}

int runAdmins(const std::string& dsn, const std::vector<std::string>& args) {
  const std::string command = args.size() >= 3 ? args[2] : "";
  const bool ok_args = (command == "create" && (args.size() == 4 || args.size() == 5)) ||
                       (command == "list" && args.size() == 3) ||
                       (command == "revoke" && args.size() == 4);
  if (!ok_args) {
    std::fprintf(stderr, "usage: portico-cp admins create <name> [admin|read-only] | list | "
                         "revoke <name or id>\n");
    return 2;
  }
  auto pending = pendingMigrations(dsn);
  if (!pending.ok()) {
    return fail(std::string(pending.status().message()));
  }
  if (!pending->empty()) {
    return fail("database schema is not up to date; run 'portico-cp migrations up'");
  }
  auto store = PgConfigStore::open({dsn, 1});
  if (!store.ok()) {
    return fail(std::string(store.status().message()));
  }
  if (command == "create") {
    const std::string role = args.size() == 5 ? args[4] : kRoleAdmin;
    if (role != kRoleAdmin && role != kRoleReadOnly) {
      return fail("role must be 'admin' or 'read-only', got '" + role + "'");
    }
    const NewAdminToken token = makeAdminToken(args[3], role);
    auto created = (*store)->createAdmin(token.record);
    if (!created.ok()) {
      return fail(std::string(created.status().message()));
    }
    std::printf("created admin %s (%s, id %s); its token, shown only now:\n%s\n",
                created->name.c_str(), created->role.c_str(), created->id.c_str(),
                token.token.c_str());
    return 0;
  }
  if (command == "list") {
    auto admins = (*store)->listAdmins();
    if (!admins.ok()) {
      return fail(std::string(admins.status().message()));
    }
    std::printf("ID\tNAME\tROLE\tCREATED\tSTATE\n");
    for (const AdminRecord& a : *admins) {
      std::printf("%s\t%s\t%s\t%s\t%s\n", a.id.c_str(), a.name.c_str(), a.role.c_str(),
                  a.created_at.c_str(), a.revoked ? "revoked" : "active");
    }
    return 0;
  }
  const absl::Status st = (*store)->revokeAdmin(args[3]);
  if (!st.ok()) {
    return fail(std::string(st.message()));
  }
  std::printf("revoked %s\n", args[3].c_str());
  return 0;
}

int serve(const std::string& dsn) {
  // Debian's Abseil is built without NDEBUG, so every absl::Mutex (gRPC 1.51's own locks
  // included) runs the deadlock detector: a global graph lookup and lock bookkeeping per
  // Lock(), ~5 % of the CP's CPU under sync load (perf; tests/bench/RESULTS.md, "Config
  // sync"). Tests keep it; a serving CP turns it off unless PORTICO_ABSL_DEADLOCK_DETECTION
  // is set (debugging).
  if (std::getenv("PORTICO_ABSL_DEADLOCK_DETECTION") == nullptr) {
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  }
  // Signals are taken synchronously by this thread; block them before any thread starts so
  // every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto pending = pendingMigrations(dsn);
  if (!pending.ok()) {
    return fail(std::string(pending.status().message()));
  }
  if (!pending->empty()) {
    std::string names;
    for (const auto& n : *pending) {
      names += (names.empty() ? "" : ", ") + n;
    }
    return fail("database schema is not up to date (pending: " + names +
                "); run 'portico-cp migrations up'");
  }

  const int workers = std::max(1, absl::GetFlag(FLAGS_admin_workers));
  // One connection per Admin worker, plus headroom for the sync server's snapshot loads.
  auto store = PgConfigStore::open(
      {dsn, workers + 2,
       std::chrono::milliseconds(std::max(0, absl::GetFlag(FLAGS_pg_commit_resolve_timeout_ms)))});
  if (!store.ok()) {
    return fail(std::string(store.status().message()));
  }

  SyncServerOptions sync_options;
  sync_options.listen_address = absl::GetFlag(FLAGS_cluster_listen);

  sync_options.workers = static_cast<uint32_t>(std::max(1, absl::GetFlag(FLAGS_cluster_workers)));
  {
    absl::StatusOr<sync::ClusterTlsFlags> tls = sync::clusterTlsFromFlags();
    if (!tls.ok()) {
      return fail(std::string(tls.status().message()));
    }
    sync_options.insecure = tls->insecure;
    sync_options.cert_path = tls->cert_path;
    sync_options.key_path = tls->key_path;
    sync_options.ca_path = tls->ca_path;
    sync_options.mtls = tls->mtls;
  }
  // The control plane's own CA (issue DP certificates and tokens by API): pki mode with a
  // keyring. Without --cluster_ca/--cluster_cert/--cluster_key the CA in PostgreSQL (created
  // on first start) signs this CP's server certificate too.
  const std::string keyring_path = absl::GetFlag(FLAGS_keyring);
  std::unique_ptr<PgPool> provisioning_pool;
  std::unique_ptr<provisioning::Credentials> credentials;
  if (!keyring_path.empty()) {
    if (sync_options.insecure || sync_options.mtls != sync::ClusterMtls::kPki) {
      return fail("--keyring needs --cluster_mtls=pki (the CA it keeps signs PKI certificates)");
    }
    auto keyring = pki::Keyring::loadOrCreate(keyring_path);
    if (!keyring.ok()) {
      return fail(std::string(keyring.status().message()));
    }
    provisioning_pool = std::make_unique<PgPool>(dsn, 2);
    auto ca = provisioning::ensureClusterCa(*provisioning_pool, *keyring);
    if (!ca.ok()) {
      return fail(std::string(ca.status().message()));
    }
    const std::vector<std::string> names = absl::StrSplit(
        absl::GetFlag(FLAGS_cluster_server_names), ',', absl::SkipEmpty());
    if (names.empty()) {
      return fail("--cluster_server_names must name at least one host name or address");
    }
    const bool own_material = sync_options.ca_path.empty() && sync_options.cert_path.empty() &&
                              sync_options.key_path.empty();
    if (own_material) {
      pki::IssueRequest req;
      req.common_name = names.front();
      for (const std::string& n : names) {
        in6_addr a6;
        in_addr a4;
        (inet_pton(AF_INET, n.c_str(), &a4) == 1 || inet_pton(AF_INET6, n.c_str(), &a6) == 1
             ? req.ip_addresses
             : req.dns_names)
            .push_back(n);
      }
      req.server = true;
      req.not_after_unix = static_cast<int64_t>(std::time(nullptr)) + 365 * 24 * 3600;
      auto server = pki::issue(*ca, req);
      if (!server.ok()) {
        return fail("cannot issue the control plane's certificate: " +
                    std::string(server.status().message()));
      }
      sync_options.cert_pem = server->cert_pem;
      sync_options.key_pem = server->key_pem;
      sync_options.ca_pem = ca->cert_pem;
    }
    provisioning::ProvisioningOptions popts;
    popts.server_name = names.front();
    popts.cp_address = absl::GetFlag(FLAGS_cluster_advertise_address);
    if (popts.cp_address.empty()) {
      const std::string listen = absl::GetFlag(FLAGS_cluster_listen);
      popts.cp_address = names.front() + listen.substr(listen.rfind(':'));
    }
    credentials = std::make_unique<provisioning::Credentials>(*provisioning_pool, *ca, popts);
    if (absl::Status st = credentials->start(); !st.ok()) {
      return fail(std::string(st.message()));
    }
    sync_options.credentials = credentials.get();
  }
  const std::vector<std::string> join_tokens = absl::StrSplit(
      absl::GetFlag(FLAGS_cluster_join_tokens), ',', absl::SkipEmpty());
  for (const std::string& entry : join_tokens) {
    const size_t eq = entry.find('=');
    if (eq == 0 || eq == std::string::npos || eq + 1 == entry.size()) {
      return fail("invalid --cluster_join_tokens entry (expected <group>=<token>)");
    }
    sync_options.join_tokens[entry.substr(eq + 1)] = entry.substr(0, eq);
  }
  sync_options.max_pending_connections =
      static_cast<uint32_t>(std::max(1, absl::GetFlag(FLAGS_cluster_max_pending_connections)));
  sync_options.max_pending_per_client =
      static_cast<uint32_t>(std::max(1, absl::GetFlag(FLAGS_cluster_max_pending_per_client)));
  sync_options.handshake_timeout_ms = static_cast<uint32_t>(
      std::max(100, absl::GetFlag(FLAGS_cluster_handshake_timeout_ms)));
  sync_options.max_concurrent_syncs =
      static_cast<uint32_t>(std::max(0, absl::GetFlag(FLAGS_cluster_max_concurrent_syncs)));
  sync_options.retry_after_ms =
      static_cast<uint32_t>(std::max(1, absl::GetFlag(FLAGS_cluster_retry_after_ms)));
  sync_options.heartbeat_interval_ms =
      static_cast<uint32_t>(std::max(100, absl::GetFlag(FLAGS_cluster_heartbeat_interval_ms)));
  sync_options.delta_window =
      static_cast<uint32_t>(std::max(0, absl::GetFlag(FLAGS_cluster_delta_window)));
  // Vitals: the DPs' Report streams land here; stored in PostgreSQL, served on /vitals.
  vitals::IngestOptions vitals_options;
  vitals_options.dsn = dsn;
  vitals_options.top_consumers =
      static_cast<uint32_t>(std::max(0, absl::GetFlag(FLAGS_vitals_top_consumers)));
  vitals_options.flush_interval_ms = static_cast<uint32_t>(
      1000 * std::clamp(absl::GetFlag(FLAGS_vitals_flush_interval_s), 1, 600));
  vitals::VitalsIngest vitals_ingest(vitals_options);
  vitals_ingest.start();
  sync_options.vitals = &vitals_ingest;
  // Deltas read the change log through their own small pool; the rest is the PgConfigStore.
  PgChangeLogStore change_log_store(**store, dsn);
  auto sync = SyncServer::start(change_log_store, sync_options);  // registers the callback
  if (!sync.ok()) {
    return fail(std::string(sync.status().message()));
  }
  fleet::FleetOptions fleet_options;
  fleet_options.dsn = dsn;
  fleet_options.purge_delay =
      absl::Seconds(std::max<int64_t>(1, absl::GetFlag(FLAGS_cluster_data_plane_purge_delay)));
  fleet_options.offline_after = absl::Milliseconds(3 * sync_options.heartbeat_interval_ms);
  fleet::FleetRegistry fleet_registry((*sync)->registry(), fleet_options);
  fleet_registry.start();
  (*store)->startListening();

  // Its own thread and connection; deltas need no row older than the delta window.
  ChangeLogPrunerOptions prune_options;
  prune_options.dsn = dsn;
  prune_options.keep_generations = static_cast<uint64_t>(
      std::max<int64_t>(0, absl::GetFlag(FLAGS_cluster_change_log_retention)));
  prune_options.min_keep_generations =
      static_cast<uint64_t>(std::max(0, absl::GetFlag(FLAGS_cluster_delta_window)));
  ChangeLogPruner change_log_pruner(prune_options);
  change_log_pruner.start();

  AdminServerOptions admin_options;
  admin_options.listen_address = absl::GetFlag(FLAGS_admin_listen);
  admin_options.db_workers = workers;
  const std::string admin_auth = absl::GetFlag(FLAGS_admin_auth);
  if (admin_auth != "on" && admin_auth != "off") {
    return fail("--admin_auth must be 'on' or 'off', got '" + admin_auth + "'");
  }
  admin_options.require_auth = admin_auth == "on";
  admin_options.ssl_cert_path = absl::GetFlag(FLAGS_admin_ssl_cert);
  admin_options.ssl_key_path = absl::GetFlag(FLAGS_admin_ssl_key);
  admin_options.header_timeout =
      std::chrono::milliseconds(std::max(100, absl::GetFlag(FLAGS_admin_header_timeout_ms)));
  admin_options.body_timeout =
      std::chrono::milliseconds(std::max(100, absl::GetFlag(FLAGS_admin_body_timeout_ms)));
  admin_options.max_connections =
      static_cast<uint32_t>(std::max(0, absl::GetFlag(FLAGS_admin_max_connections)));
  admin_options.max_connections_per_client =
      static_cast<uint32_t>(std::max(0, absl::GetFlag(FLAGS_admin_max_connections_per_client)));
  absl::StatusOr<CorsOrigins> cors = CorsOrigins::parse(absl::GetFlag(FLAGS_admin_gui_url));
  if (!cors.ok()) {
    return fail(std::string(cors.status().message()));
  }
  admin_options.cors = *std::move(cors);
  admin_options.fleet = &fleet_registry;
  admin_options.metrics = [&](metrics::Writer& w) {
    writeSyncMetrics(**sync, w);
    vitals_ingest.writeMetrics(w);
    const ChangeLogPruner::Stats p = change_log_pruner.stats();
    w.counter("portico_cp_change_log_pruned_rows_total",
              "change_log rows deleted by the retention pruner.", static_cast<double>(p.rows_deleted));
    w.counter("portico_cp_change_log_prune_failures_total",
              "Prune rounds that failed (PostgreSQL unreachable, ...); retried next round.",
              static_cast<double>(p.failures));
  };
  // proxy-cache purges reach every DP of the group over its sync stream; the Admin API waits
  // up to a second for their answers.
  admin_options.cache_purge = [&](const std::string& group, const std::string& key,
                                  bool lookup) {
    const SyncServer::CachePurgeOutcome o =
        (*sync)->purgeCache(group, key, lookup, absl::Seconds(1));
    return AdminApiOptions::CachePurgeReply{o.data_planes, o.answered, o.purged, o.entry_json};
  };
  admin_options.vitals = [&](const std::string& method, const std::string& group,
                             const std::vector<std::string>& segments,
                             const std::map<std::string, std::string>& query) {
    vitals::ApiAnswer a = vitals::handleApi(vitals_ingest.pool(), method, group, segments,
                                            query, static_cast<int64_t>(std::time(nullptr)));
    return ApiResponse{a.status, std::move(a.body), "", std::move(a.stream)};
  };
  if (credentials != nullptr) {
    admin_options.provisioning = [&](const std::string& method, const std::string& group,
                                     const std::vector<std::string>& segments,
                                     const std::string& body) {
      provisioning::Credentials::Answer a = credentials->handle(method, group, segments, body);
      return ApiResponse{a.status, std::move(a.body), ""};
    };
  }
  auto admin = AdminHttpServer::start(**store, admin_options);
  if (!admin.ok()) {
    return fail(std::string(admin.status().message()));
  }
  auto portal = portal::PortalServer::startFromFlags(**store);  // null with --portal_listen=off
  if (!portal.ok()) {
    return fail(std::string(portal.status().message()));
  }
  // null with --console_listen=off
  auto console = console::ConsoleServer::startFromFlags(**store, admin_options, (*admin)->port());
  if (!console.ok()) {
    return fail(std::string(console.status().message()));
  }
  LOG_INFO("cp", "portico-cp ready (admin %s)", admin_options.listen_address);

  int signal = 0;
  sigwait(&signals, &signal);
  LOG_INFO("cp", "received %s, shutting down", signal == SIGTERM ? "SIGTERM" : "SIGINT");
  if (*portal != nullptr) {
    (*portal)->shutdown();
  }
  if (*console != nullptr) {
    (*console)->shutdown();
  }
  (*admin)->shutdown();
  change_log_pruner.stop();
  (*sync)->shutdown();
  vitals_ingest.stop();  // after the streams: what they queued is stored and acknowledged
  fleet_registry.stop();  // after the streams ended: their disconnects are written too
  (*store)->stop();
  LOG_INFO("cp", "stopped");
  return 0;
}

}  // namespace

int ControlPlaneMain(int argc, char** argv) {
  // Vitals ingest builds maps of hundreds of MB per write and frees them: with glibc's
  // defaults each comes from a fresh mmap and is returned after, so every write page-faults
  // its memory in again (perf: ~40% of the writer's time in faults and malloc at 20 DPs).
  // Keep large blocks on the heap and do not trim it below 1 GB.
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  // One arena: the cluster thread allocates the batches and the writer frees them, and a
  // thread's own arena gives a whole 64 MB sub-heap back to the kernel (munmap) as soon as
  // it is free, whatever the trim threshold (perf at 50 DPs: page faults were ~20% of that
  // thread). The main arena is trimmed by the threshold above only.
  mallopt(M_ARENA_MAX, 1);
  // The heap's first 512 MB on huge pages: a POST /config of 10,000 routes builds and drops
  // a few hundred thousand small objects on fresh pages; its load took 757 -> 567 ms
  // (medians of 12 alternated runs) with them.
  reserveHugePageHeap(512 << 20);
  const std::vector<std::string> args = parseFlagsWithEnv(argc, argv, kUsage);
  LogLevel level;
  if (!parseLogLevel(absl::GetFlag(FLAGS_log_level), &level)) {
    std::fprintf(stderr, "portico-cp: invalid --log_level '%s' (debug, info, warn, error)\n",
                 absl::GetFlag(FLAGS_log_level).c_str());
    return 2;
  }
  setLogLevel(level);
  const std::string dsn = absl::GetFlag(FLAGS_pg_dsn);
  if (args.size() >= 2 && args[1] == "migrations") {
    if (args.size() != 3) {
      std::fprintf(stderr, "usage: portico-cp migrations up|status|finish\n");
      return 2;
    }
    return runMigrations(dsn, args[2]);
  }
  if (args.size() >= 2 && args[1] == "vitals") {
    return runVitals(dsn, args);
  }
  if (args.size() >= 2 && args[1] == "admins") {
    return runAdmins(dsn, args);
  }
  if (args.size() > 1) {
    std::fprintf(stderr, "portico-cp: unknown command '%s'\n%s\n", args[1].c_str(),
                 kUsage);
    return 2;
  }
  return serve(dsn);
}

}  // namespace portico::cp
