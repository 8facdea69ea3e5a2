#include "data_plane/status/status_server.h"

#include <utility>  // Boost 1.74 asio/awaitable.hpp uses std::exchange without it

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <chrono>
#include <cstdio>
#include <memory>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "common/http/http_parser.h"
#include "common/metrics/metrics.h"
#include "common/logging.h"
#include "data_plane/plugins/prometheus/exposition.h"
#include "data_plane/proxy/local_reply.h"
#include "data_plane/plugins/plugin_stats.h"
#include "data_plane/ratelimit/policy.h"

namespace portico::dp {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

std::string jsonEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
    }
    if (static_cast<unsigned char>(c) >= 0x20) {
      out.push_back(c);
    }
  }
  return out;
}

std::string response(int status, std::string_view content_type, const std::string& body,
                     bool keep_alive) {
  return absl::StrCat("HTTP/1.1 ", status, " ",
                      absl::string_view(reasonPhrase(status).data(), reasonPhrase(status).size()),
                      "\r\nContent-Type: ",
                      absl::string_view(content_type.data(), content_type.size()),
                      "\r\nContent-Length: ", body.size(),
                      keep_alive ? "\r\n" : "\r\nConnection: close\r\n", "\r\n", body);
}

// A node id for a DP that has none of its own (declarative config): random, once per process.
const std::string& processNodeId() {
  static const std::string* const kId = [] {
    std::random_device rd;
    std::mt19937_64 rng((static_cast<uint64_t>(rd()) << 32) ^ rd());
    const uint64_t hi = (rng() & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;
    const uint64_t lo = (rng() & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;
    char buf[37];
    std::snprintf(buf, sizeof(buf), "%08x-%04x-%04x-%04x-%012llx",
                  static_cast<unsigned>(hi >> 32), static_cast<unsigned>((hi >> 16) & 0xffff),
                  static_cast<unsigned>(hi & 0xffff), static_cast<unsigned>(lo >> 48),
                  static_cast<unsigned long long>(lo & 0xffffffffffffULL));
    return new std::string(buf);
  }();
  return *kId;
}

}  // namespace

struct StatusServer::Impl {
  asio::io_context io{1};
  tcp::acceptor acceptor{io};
  std::thread thread;
  const SnapshotStore* store = nullptr;
  const ProxyStats* stats = nullptr;
  StatusOptions options;
  uint32_t connections = 0;  // io thread only
  absl::Mutex node_mu;
  StatusNode node ABSL_GUARDED_BY(node_mu);

  std::string handle(const http::RequestHead& req, bool* keep_alive) {
    *keep_alive = req.keep_alive;
    if (req.method != "GET" && req.method != "HEAD") {
      return response(405, "application/json; charset=utf-8",
                      "{\"message\":\"Method not allowed\"}", *keep_alive);
    }
    if (req.path == "/status") {
      StatusNode n;
      {
        absl::MutexLock lock(&node_mu);
        n = node;
      }
      return response(200, "application/json; charset=utf-8", statusJson(*store, stats, &n),
                      *keep_alive);
    }
    if (req.path == "/status/ready") {
      if (store->get() != nullptr) {
        return response(200, "application/json; charset=utf-8", "{\"status\":\"ready\"}",
                        *keep_alive);
      }
      return response(503, "application/json; charset=utf-8",
                      "{\"status\":\"not ready\",\"message\":\"no configuration applied yet\"}",
                      *keep_alive);
    }
    if (req.path == "/metrics") {
      StatusNode n;
      {
        absl::MutexLock lock(&node_mu);
        n = node;
      }
      return response(200, metrics::Writer::kContentType, metricsText(*store, stats, &n),
                      *keep_alive);
    }
    return response(404, "application/json; charset=utf-8", "{\"message\":\"Not found\"}",
                    *keep_alive);
  }

  asio::awaitable<void> serve(tcp::socket client) {
    ++connections;
    auto sock = std::make_shared<tcp::socket>(std::move(client));
    tcp::socket& socket = *sock;
    // The deadline closes the socket, which ends whatever read is pending.
    asio::steady_timer deadline(io);
    auto arm = [&] {
      deadline.expires_after(std::chrono::milliseconds(options.header_timeout_ms));
      deadline.async_wait([weak = std::weak_ptr<tcp::socket>(sock)](error_code e) {
        if (auto s = weak.lock(); !e && s) {
          error_code ignored;
          s->close(ignored);
        }
      });
    };
    struct Release {
      uint32_t& n;
      ~Release() { --n; }
    } release{connections};
    std::string buf;
    http::HeadParser parser;
    http::RequestHead req;
    char tmp[4096];
    error_code ec;
    arm();
    for (;;) {
      http::HeadParser::Status st = parser.parseRequest(buf, &req);
      if (st == http::HeadParser::Status::kIncomplete) {
        size_t n = co_await socket.async_read_some(asio::buffer(tmp),
                                                   asio::redirect_error(asio::use_awaitable, ec));
        if (ec || n == 0) {
          co_return;
        }
        buf.append(tmp, n);
        continue;
      }
      if (st == http::HeadParser::Status::kError) {
        std::string out = response(http::statusFor(parser.error()), "application/json",
                                   "{\"message\":\"Bad request\"}", false);
        co_await asio::async_write(socket, asio::buffer(out),
                                   asio::redirect_error(asio::use_awaitable, ec));
        co_return;
      }
      bool keep_alive = false;
      std::string out = handle(req, &keep_alive);
      buf.erase(0, req.head_bytes);  // GET bodies are not expected here
      parser.reset();
      co_await asio::async_write(socket, asio::buffer(out),
                                 asio::redirect_error(asio::use_awaitable, ec));
      if (ec || !keep_alive) {
        co_return;
      }
      arm();  // the next head (or the idle wait for it) gets a fresh deadline
    }
  }

  asio::awaitable<void> acceptLoop() {
    for (;;) {
      error_code ec;
      tcp::socket s = co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        if (!acceptor.is_open()) {
          co_return;
        }
        continue;
      }
      if (options.max_connections != 0 && connections >= options.max_connections) {
        s.close(ec);  // over the cap: probes and scrapers retry
        continue;
      }
      asio::co_spawn(io, serve(std::move(s)), asio::detached);
    }
  }
};

absl::StatusOr<std::unique_ptr<StatusServer>> StatusServer::start(const StatusOptions& options,
                                                                  const SnapshotStore& store,
                                                                  const ProxyStats* stats) {
  std::unique_ptr<StatusServer> server(new StatusServer());
  server->impl_ = std::make_unique<Impl>();
  Impl& impl = *server->impl_;
  impl.store = &store;
  impl.stats = stats;
  impl.options = options;
  error_code ec;
  asio::ip::address addr = asio::ip::make_address(options.listen_address, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid status listen address: ", options.listen_address));
  }
  tcp::endpoint ep(addr, options.listen_port);
  impl.acceptor.open(ep.protocol(), ec);
  if (!ec) {
    impl.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  }
  if (!ec) {
    impl.acceptor.bind(ep, ec);
  }
  if (!ec) {
    impl.acceptor.listen(128, ec);
  }
  if (ec) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.listen_address, ":",
                                               options.listen_port, ": ", ec.message()));
  }
  server->port_ = impl.acceptor.local_endpoint().port();
  asio::co_spawn(impl.io, impl.acceptLoop(), asio::detached);
  impl.thread = std::thread([&impl] { impl.io.run(); });
  LOG_INFO("status", "status listener on %s:%d", options.listen_address, server->port_);
  return server;
}

StatusServer::~StatusServer() { stop(); }

void StatusServer::stop() {
  if (!impl_) {
    return;
  }
  impl_->io.stop();
  if (impl_->thread.joinable()) {
    impl_->thread.join();
  }
  impl_.reset();
}

void StatusServer::setNode(StatusNode node) {
  if (!impl_) {
    return;
  }
  absl::MutexLock lock(&impl_->node_mu);
  impl_->node = std::move(node);
}

std::string StatusServer::statusJson(const SnapshotStore& store, const ProxyStats* stats,
                                     const StatusNode* node) {
  SnapshotConstSharedPtr snap = store.get();
  ProxyTotals t = stats != nullptr ? stats->totals() : ProxyTotals{};
  std::string control_plane;
  if (node != nullptr && node->cp_link) {
    const ControlPlaneLink link = node->cp_link();
    control_plane = absl::StrCat(
        ",\"control_plane\":{\"connected\":", link.connected ? "true" : "false",
        ",\"address\":\"", jsonEscape(link.address), "\",\"group\":\"", jsonEscape(link.group),
        "\",\"last_contact\":",
        link.last_contact_unix_ms == 0
            ? std::string("null")
            : absl::StrFormat("%d.%03d", link.last_contact_unix_ms / 1000,
                              link.last_contact_unix_ms % 1000),
        "}");
  }
  return absl::StrCat(
      "{\"generation\":", snap ? snap->generation() : 0, ",\"config_hash\":\"",
      snap ? jsonEscape(snap->hash()) : "", "\",\"ready\":", snap ? "true" : "false",
      ",\"connections_active\":", t.connections_active,
      ",\"connections_accepted\":", t.connections_accepted,
      ",\"requests_total\":", t.requests_total, ",\"workers\":", stats ? stats->size() : 0,
      control_plane, "}");
}

std::string StatusServer::metricsText(const SnapshotStore& store, const ProxyStats* stats,
                                      const StatusNode* node) {
  SnapshotConstSharedPtr snap = store.get();
  ProxyTotals t = stats != nullptr ? stats->totals() : ProxyTotals{};
  metrics::Writer w;
  auto counter = [&](const char* name, const char* help, uint64_t v) {
    w.counter(name, help, static_cast<double>(v));
  };
  auto gauge = [&](const char* name, const char* help, double v) { w.gauge(name, help, v); };
  gauge("portico_dp_config_generation", "Generation of the applied config snapshot (0: none).",
        snap ? static_cast<double>(snap->generation()) : 0);
  gauge("portico_dp_config_ready", "1 once a config snapshot has been applied.", snap ? 1 : 0);
  gauge("portico_dp_connections_active", "Client connections open now.",
        static_cast<double>(t.connections_active));
  counter("portico_dp_connections_accepted_total", "Client connections accepted.",
          t.connections_accepted);
  counter("portico_dp_requests_total", "Requests received (parsed heads).", t.requests_total);
  w.beginCounter("portico_dp_responses_total", "Responses sent to clients, by status class.");
  static const char* kClasses[] = {"", "1xx", "2xx", "3xx", "4xx", "5xx"};
  for (int k = 1; k < 6; ++k) {
    w.sample(static_cast<double>(t.responses_by_class[k]), {{"code", kClasses[k]}});
  }
  counter("portico_dp_no_route_total", "Requests no route matched (404).", t.no_route_total);
  counter("portico_dp_bad_requests_total", "Requests rejected as malformed (400/414/431/501).",
          t.bad_requests_total);
  counter("portico_dp_upstream_connections_total", "New upstream connections opened.",
          t.upstream_connects_total);
  counter("portico_dp_upstream_reused_total", "Requests sent on a pooled keep-alive connection.",
          t.upstream_reused_total);
  counter("portico_dp_upstream_connect_errors_total", "Upstream connection failures (502).",
          t.upstream_connect_errors_total);
  counter("portico_dp_upstream_timeouts_total", "Upstream connect/read/write timeouts (504).",
          t.upstream_timeouts_total);
  counter("portico_dp_upstream_bad_responses_total",
          "Upstream responses that were invalid or cut short.", t.upstream_bad_responses_total);
  counter("portico_dp_client_bytes_received_total", "Bytes received from clients.",
          t.bytes_received_total);
  counter("portico_dp_client_bytes_sent_total", "Bytes sent to clients.", t.bytes_sent_total);
  counter("portico_dp_upstream_retries_total",
          "Further upstream tries after a failure (service.retries).", t.upstream_retries_total);
  counter("portico_dp_upstream_tls_errors_total",
          "Upstream TLS handshakes that failed (incl. verification).",
          t.upstream_tls_errors_total);
  counter("portico_dp_tls_handshake_errors_total", "Client TLS handshakes that failed.",
          t.tls_handshake_errors_total);
  counter("portico_dp_upgraded_connections_total",
          "Connections switched to another protocol (101, e.g. WebSocket) and relayed.",
          t.upgraded_total);
  gauge("portico_dp_config_routes", "Routes in the applied config.",
        snap ? static_cast<double>(snap->config().routes_size()) : 0);
  gauge("portico_dp_config_certificates", "Certificates in the applied config.",
        snap ? static_cast<double>(snap->config().certificates_size()) : 0);
  ratelimit::appendMetrics(&w);  // the rate-limit plugins' policies (Redis, local counters)
  plugins::appendPluginCounters(&w);  // what plugins count about themselves (plugin_stats.h)
  if (node != nullptr && node->extra_metrics) {
    node->extra_metrics(w);
  }

  // Kong's families (the prometheus plugin's exporter).
  plugins::prometheus::NodeInfo info;
  info.node_id = node != nullptr && !node->node_id.empty() ? node->node_id : processNodeId();
  info.version = node != nullptr ? node->version : kPorticoVersion;
  if (node != nullptr && node->cp_connected) {
    info.hybrid = true;
    info.cp_connected = node->cp_connected();
    info.cluster_cert_expiry_s = node->cluster_cert_expiry_s;
  }
  plugins::prometheus::appendKongFamilies(snap, t, info, &w);
  return w.text();
}

}  // namespace portico::dp
