// portico-cp: the control plane. Serves the Admin API and the cluster (sync) listener over
// the PostgreSQL database of record, or manages its schema (`portico-cp migrations ...`).
#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "common/flags.h"
#include "common/logging.h"
#include "control_plane/admin_api/http_server.h"
#include "control_plane/store/migrations.h"
#include "control_plane/store/pg_store_impl.h"
#include "control_plane/store/pg_changes.h"
#ifdef PORTICO_HAVE_CP_SYNC
#include "control_plane/sync/sync_server.h"
#endif
#ifdef PORTICO_HAVE_CP_FLEET
#include "control_plane/fleet/fleet_registry.h"
#endif

ABSL_FLAG(std::string, pg_dsn, "host=127.0.0.1 port=5432 dbname=portico user=postgres",
          "libpq connection string of the PostgreSQL database of record");
ABSL_FLAG(std::string, admin_listen, "127.0.0.1:8001", "Admin API listener (host:port)");
ABSL_FLAG(std::string, cluster_listen, "0.0.0.0:8005", "cluster (CP/DP sync) gRPC listener");
ABSL_FLAG(bool, cluster_insecure, false, "serve the cluster listener without TLS (tests only)");
ABSL_FLAG(std::string, cluster_cert, "", "cluster listener certificate (PEM)");
ABSL_FLAG(std::string, cluster_key, "", "cluster listener private key (PEM)");
ABSL_FLAG(std::string, cluster_ca, "", "CA that signs data-plane client certificates (PEM)");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warn or error");
ABSL_FLAG(int32_t, cluster_heartbeat_interval_ms, 5000,
          "heartbeat cadence the CP asks of data planes; 3 missed heartbeats = offline");
ABSL_FLAG(int64_t, cluster_data_plane_purge_delay, 1209600,
          "seconds after which a data plane not seen is removed from the fleet registry");
ABSL_FLAG(int32_t, cluster_delta_window, 128,
          "generations kept for deltas (0 = always send full snapshots)");
ABSL_FLAG(int32_t, admin_workers, 4,
          "threads (and PostgreSQL connections) serving Admin API requests");

namespace portico::cp {
namespace {

constexpr char kUsage[] =
    "portico-cp [flags]                 serve the Admin API and the cluster listener\n"
    "portico-cp migrations up|status|finish   manage the database schema";

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

int serve(const std::string& dsn) {
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
  auto store = PgConfigStore::open({dsn, workers + 2});
  if (!store.ok()) {
    return fail(std::string(store.status().message()));
  }

#ifdef PORTICO_HAVE_CP_SYNC
  SyncServerOptions sync_options;
  sync_options.listen_address = absl::GetFlag(FLAGS_cluster_listen);
  sync_options.insecure = absl::GetFlag(FLAGS_cluster_insecure);
  sync_options.cert_path = absl::GetFlag(FLAGS_cluster_cert);
  sync_options.key_path = absl::GetFlag(FLAGS_cluster_key);
  sync_options.ca_path = absl::GetFlag(FLAGS_cluster_ca);
  sync_options.heartbeat_interval_ms =
      static_cast<uint32_t>(std::max(100, absl::GetFlag(FLAGS_cluster_heartbeat_interval_ms)));
  sync_options.delta_window =
      static_cast<uint32_t>(std::max(0, absl::GetFlag(FLAGS_cluster_delta_window)));
  // Deltas read the change log through their own small pool; the rest is the PgConfigStore.
  PgChangeLogStore change_log_store(**store, dsn);
  auto sync = SyncServer::start(change_log_store, sync_options);  // registers the callback
  if (!sync.ok()) {
    return fail(std::string(sync.status().message()));
  }
#ifdef PORTICO_HAVE_CP_FLEET
  fleet::FleetOptions fleet_options;
  fleet_options.dsn = dsn;
  fleet_options.purge_delay =
      absl::Seconds(std::max<int64_t>(1, absl::GetFlag(FLAGS_cluster_data_plane_purge_delay)));
  fleet_options.offline_after = absl::Milliseconds(3 * sync_options.heartbeat_interval_ms);
  fleet::FleetRegistry fleet_registry((*sync)->registry(), fleet_options);
  fleet_registry.start();
  fleet::installedFleetEndpoints().store(&fleet_registry);
#endif
#else
  (*store)->setChangeCallback([](const std::string& group, uint64_t generation) {
    LOG_DEBUG("cp", "group %s is at generation %d", group, generation);
  });
#endif
  (*store)->startListening();

  AdminServerOptions admin_options;
  admin_options.listen_address = absl::GetFlag(FLAGS_admin_listen);
  admin_options.db_workers = workers;
  auto admin = AdminHttpServer::start(**store, admin_options);
  if (!admin.ok()) {
    return fail(std::string(admin.status().message()));
  }
  LOG_INFO("cp", "portico-cp ready (admin %s)", admin_options.listen_address);

  int signal = 0;
  sigwait(&signals, &signal);
  LOG_INFO("cp", "received %s, shutting down", signal == SIGTERM ? "SIGTERM" : "SIGINT");
  (*admin)->shutdown();
#ifdef PORTICO_HAVE_CP_SYNC
  (*sync)->shutdown();
#ifdef PORTICO_HAVE_CP_FLEET
  fleet::installedFleetEndpoints().store(nullptr);
  fleet_registry.stop();  // after the streams ended: their disconnects are written too
#endif
#endif
  (*store)->stop();
  LOG_INFO("cp", "stopped");
  return 0;
}

}  // namespace
}  // namespace portico::cp

int main(int argc, char** argv) {
  const std::vector<std::string> args = portico::parseFlagsWithEnv(argc, argv, portico::cp::kUsage);
  portico::LogLevel level;
  if (!portico::parseLogLevel(absl::GetFlag(FLAGS_log_level), &level)) {
    std::fprintf(stderr, "portico-cp: invalid --log_level '%s' (debug, info, warn, error)\n",
                 absl::GetFlag(FLAGS_log_level).c_str());
    return 2;
  }
  portico::setLogLevel(level);
  const std::string dsn = absl::GetFlag(FLAGS_pg_dsn);
  if (args.size() >= 2 && args[1] == "migrations") {
    if (args.size() != 3) {
      std::fprintf(stderr, "usage: portico-cp migrations up|status|finish\n");
      return 2;
    }
    return portico::cp::runMigrations(dsn, args[2]);
  }
  if (args.size() > 1) {
    std::fprintf(stderr, "portico-cp: unknown command '%s'\n%s\n", args[1].c_str(),
                 portico::cp::kUsage);
    return 2;
  }
  return portico::cp::serve(dsn);
}
