#include "data_plane/balancer/health.h"

#include <utility>  // Boost 1.74 asio/awaitable.hpp uses std::exchange without it

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <chrono>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/clock.h"

namespace portico::dp::balancer {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Json = nlohmann::json;
using boost::system::error_code;

// Reads `obj[key]` into *out when present and not null; fails on a type mismatch.
absl::Status readNumber(const Json& obj, const char* key, const std::string& path, double* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    return absl::OkStatus();
  }
  if (!it->is_number()) {
    return absl::InvalidArgumentError(absl::StrCat(path, key, ": expected a number"));
  }
  *out = it->get<double>();
  return absl::OkStatus();
}

absl::Status readCount(const Json& obj, const char* key, const std::string& path,
                       uint32_t* out) {
  double v = *out;
  absl::Status st = readNumber(obj, key, path, &v);
  if (st.ok()) {
    *out = v < 0 ? 0 : static_cast<uint32_t>(v);
  }
  return st;
}

absl::Status readStatuses(const Json& obj, const std::string& path, std::bitset<1000>* out) {
  auto it = obj.find("http_statuses");
  if (it == obj.end() || it->is_null()) {
    return absl::OkStatus();
  }
  if (!it->is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(path, "http_statuses: expected an array"));
  }
  out->reset();
  for (const Json& v : *it) {
    if (!v.is_number_integer() || v.get<int>() < 100 || v.get<int>() > 999) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, "http_statuses: expected integers between 100 and 999"));
    }
    out->set(static_cast<size_t>(v.get<int>()));
  }
  return absl::OkStatus();
}

const Json& member(const Json& obj, const char* key) {
  static const Json* const kEmpty = new Json(Json::object());
  auto it = obj.find(key);
  return it != obj.end() && it->is_object() ? *it : *kEmpty;
}

void setStatuses(std::bitset<1000>* bits, std::initializer_list<int> codes) {
  for (int c : codes) {
    bits->set(static_cast<size_t>(c));
  }
}

}  // namespace

absl::StatusOr<HealthConfig> HealthConfig::parse(std::string_view text) {
  HealthConfig c;
  setStatuses(&c.active.thresholds.healthy_statuses, {200, 302});
  setStatuses(&c.active.thresholds.unhealthy_statuses, {429, 404, 500, 501, 502, 503, 504, 505});
  setStatuses(&c.passive.healthy_statuses, {200, 201, 202, 203, 204, 205, 206, 207, 208, 226,
                                            300, 301, 302, 303, 304, 305, 306, 307, 308});
  setStatuses(&c.passive.unhealthy_statuses, {429, 500, 503});
  if (text.empty()) {
    return c;
  }
  Json root = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded() || !root.is_object()) {
    return absl::InvalidArgumentError("healthchecks: expected a JSON object");
  }
  absl::Status st;
  auto check = [&st](absl::Status s) {
    if (st.ok()) {
      st = std::move(s);
    }
  };
  check(readNumber(root, "threshold", "healthchecks.", &c.threshold));
  const Json& active = member(root, "active");
  {
    const std::string p = "healthchecks.active.";
    if (auto it = active.find("type"); it != active.end() && it->is_string()) {
      c.active.type = it->get<std::string>();
    }
    double timeout_s = 1;
    check(readNumber(active, "timeout", p, &timeout_s));
    c.active.timeout_ms = static_cast<uint32_t>(timeout_s * 1000);
    check(readCount(active, "concurrency", p, &c.active.concurrency));
    if (c.active.concurrency == 0) {
      c.active.concurrency = 1;
    }
    if (auto it = active.find("http_path"); it != active.end() && it->is_string()) {
      c.active.http_path = it->get<std::string>();
    }
    if (auto it = active.find("https_sni"); it != active.end() && it->is_string()) {
      c.active.https_sni = it->get<std::string>();
    }
    if (auto it = active.find("https_verify_certificate"); it != active.end() && it->is_boolean()) {
      c.active.https_verify_certificate = it->get<bool>();
    }
    if (auto it = active.find("headers"); it != active.end() && it->is_object()) {
      for (auto h = it->begin(); h != it->end(); ++h) {
        if (h->is_array()) {
          for (const Json& v : *h) {
            if (v.is_string()) {
              c.active.headers.emplace_back(h.key(), v.get<std::string>());
            }
          }
        } else if (h->is_string()) {
          c.active.headers.emplace_back(h.key(), h->get<std::string>());
        }
      }
    }
    const Json& healthy = member(active, "healthy");
    const Json& unhealthy = member(active, "unhealthy");
    double interval = 0;
    check(readNumber(healthy, "interval", p + "healthy.", &interval));
    c.active.healthy_interval_ms = static_cast<uint32_t>(interval * 1000);
    interval = 0;
    check(readNumber(unhealthy, "interval", p + "unhealthy.", &interval));
    c.active.unhealthy_interval_ms = static_cast<uint32_t>(interval * 1000);
    HealthThresholds& t = c.active.thresholds;
    check(readStatuses(healthy, p + "healthy.", &t.healthy_statuses));
    check(readCount(healthy, "successes", p + "healthy.", &t.successes));
    check(readStatuses(unhealthy, p + "unhealthy.", &t.unhealthy_statuses));
    check(readCount(unhealthy, "http_failures", p + "unhealthy.", &t.http_failures));
    check(readCount(unhealthy, "tcp_failures", p + "unhealthy.", &t.tcp_failures));
    check(readCount(unhealthy, "timeouts", p + "unhealthy.", &t.timeouts));
  }
  const Json& passive = member(root, "passive");
  {
    const std::string p = "healthchecks.passive.";
    const Json& healthy = member(passive, "healthy");
    const Json& unhealthy = member(passive, "unhealthy");
    HealthThresholds& t = c.passive;
    check(readStatuses(healthy, p + "healthy.", &t.healthy_statuses));
    check(readCount(healthy, "successes", p + "healthy.", &t.successes));
    check(readStatuses(unhealthy, p + "unhealthy.", &t.unhealthy_statuses));
    check(readCount(unhealthy, "http_failures", p + "unhealthy.", &t.http_failures));
    check(readCount(unhealthy, "tcp_failures", p + "unhealthy.", &t.tcp_failures));
    check(readCount(unhealthy, "timeouts", p + "unhealthy.", &t.timeouts));
  }
  if (!st.ok()) {
    return st;
  }
  return c;
}

bool AddressHealth::record(HealthEvent event, uint32_t /*status*/, const HealthThresholds& t) {
  constexpr uint64_t kSuccessMask = 0xff;
  constexpr uint64_t kFailureMask = 0xffffff00;
  uint32_t limit = 0;
  int shift = 0;
  switch (event) {
    case HealthEvent::kSuccess:
      limit = t.successes;
      break;
    case HealthEvent::kHttpFailure:
      limit = t.http_failures;
      shift = 8;
      break;
    case HealthEvent::kTcpFailure:
      limit = t.tcp_failures;
      shift = 16;
      break;
    case HealthEvent::kTimeout:
      limit = t.timeouts;
      shift = 24;
      break;
  }
  uint64_t old = bits_.load(std::memory_order_relaxed);
  for (;;) {
    const bool unhealthy = (old & kUnhealthy) != 0;
    uint64_t next;
    if (event == HealthEvent::kSuccess) {
      if (!unhealthy) {
        // The common case on the hot path: a healthy target answering well writes nothing.
        if ((old & kFailureMask) == 0) {
          return false;
        }
        next = 0;  // failures must be consecutive to count
      } else {
        if (limit == 0) {
          return false;  // successes cannot heal it from this source (Kong's passive default)
        }
        const uint64_t n = (old & kSuccessMask) + 1;
        next = n >= limit ? 0 : (kUnhealthy | n);
      }
    } else {
      if (limit == 0) {
        return false;
      }
      if (unhealthy) {
        if ((old & kSuccessMask) == 0) {
          return false;
        }
        next = kUnhealthy;  // successes must be consecutive to count
      } else {
        const uint64_t n = ((old >> shift) & 0xff) + 1;
        next = n >= limit ? kUnhealthy
                          : (old & ~kSuccessMask & ~(uint64_t{0xff} << shift)) | (n << shift);
      }
    }
    if (bits_.compare_exchange_weak(old, next, std::memory_order_relaxed)) {
      return ((old ^ next) & kUnhealthy) != 0;
    }
  }
}

AddressHealthSharedPtr UpstreamHealth::address(const std::string& hostname, const std::string& ip,
                                               uint16_t port) {
  const std::string key = absl::StrCat(hostname, "|", ip, "|", port);
  absl::MutexLock lock(&mu_);
  AddressHealthSharedPtr& slot = by_key_[key];
  if (!slot) {
    slot = std::make_shared<AddressHealth>(hostname, ip, port);
  }
  return slot;
}

std::vector<AddressHealthSharedPtr> UpstreamHealth::liveAddresses() {
  std::vector<AddressHealthSharedPtr> out;
  absl::MutexLock lock(&mu_);
  for (auto it = by_key_.begin(); it != by_key_.end();) {
    if (it->second.use_count() == 1) {
      by_key_.erase(it++);  // no balancer table uses it any more
      continue;
    }
    out.push_back(it->second);
    ++it;
  }
  return out;
}

// ---- HealthChecker ------------------------------------------------------------------------

struct HealthChecker::Impl {
  HealthChecker* owner = nullptr;
  asio::io_context io;
  asio::steady_timer tick{io};
  absl::Mutex mu;
  absl::flat_hash_map<std::string, std::weak_ptr<UpstreamHealth>> upstreams ABSL_GUARDED_BY(mu);
  std::thread thread;

  void scheduleTick();
  void onTick();
  asio::awaitable<void> probe(UpstreamHealthSharedPtr up, AddressHealthSharedPtr addr);
};

namespace {

// Shared with the timeout timer's handler, which may run after the probe coroutine finished.
struct ProbeState {
  explicit ProbeState(asio::io_context& io) : socket(io), timer(io) {}
  tcp::socket socket;
  asio::steady_timer timer;
  bool timed_out = false;
};

// Parses "HTTP/1.x NNN" at the start of `data`; 0 when incomplete or malformed.
int statusOf(std::string_view data) {
  if (data.size() < 12 || data.substr(0, 5) != "HTTP/") {
    return 0;
  }
  size_t sp = data.find(' ');
  if (sp == std::string_view::npos || sp + 4 > data.size()) {
    return 0;
  }
  int code = 0;
  for (size_t i = sp + 1; i < sp + 4; ++i) {
    if (data[i] < '0' || data[i] > '9') {
      return 0;
    }
    code = code * 10 + (data[i] - '0');
  }
  return code;
}

}  // namespace

void HealthChecker::Impl::scheduleTick() {
  tick.expires_after(std::chrono::milliseconds(50));
  tick.async_wait([this](error_code ec) {
    if (!ec) {
      onTick();
      scheduleTick();
    }
  });
}

void HealthChecker::Impl::onTick() {
  std::vector<UpstreamHealthSharedPtr> live;
  {
    absl::MutexLock lock(&mu);
    for (auto it = upstreams.begin(); it != upstreams.end();) {
      UpstreamHealthSharedPtr u = it->second.lock();
      if (!u) {
        upstreams.erase(it++);  // no snapshot uses it any more: probing stops
        continue;
      }
      if (u->config().activeEnabled()) {
        live.push_back(std::move(u));
      }
      ++it;
    }
  }
  const uint64_t now = steadyMs();
  for (const UpstreamHealthSharedPtr& up : live) {
    const HealthConfig::Active& a = up->config().active;
    for (const AddressHealthSharedPtr& addr : up->liveAddresses()) {
      if (addr->probing || addr->next_probe_ms > now) {
        continue;
      }
      const uint32_t interval = addr->healthy() ? a.healthy_interval_ms : a.unhealthy_interval_ms;
      if (interval == 0) {
        addr->next_probe_ms = now + 100;  // not probed in this state; look again later
        continue;
      }
      if (up->probes_in_flight >= a.concurrency) {
        break;
      }
      addr->probing = true;
      ++up->probes_in_flight;
      asio::co_spawn(io, probe(up, addr), asio::detached);
    }
  }
}

asio::awaitable<void> HealthChecker::Impl::probe(UpstreamHealthSharedPtr up,
                                                 AddressHealthSharedPtr addr) {
  const HealthConfig::Active& a = up->config().active;
  owner->probes_.fetch_add(1, std::memory_order_relaxed);
  auto st = std::make_shared<ProbeState>(io);
  st->timer.expires_after(std::chrono::milliseconds(a.timeout_ms > 0 ? a.timeout_ms : 1));
  st->timer.async_wait([st](error_code ec) {
    if (!ec) {
      st->timed_out = true;
      error_code ignored;
      st->socket.cancel(ignored);
    }
  });
  HealthEvent event = HealthEvent::kSuccess;
  int status = 0;
  bool counted = true;
  error_code ec;
  auto await_ec = asio::redirect_error(asio::use_awaitable, ec);
  tcp::endpoint ep(asio::ip::make_address(addr->ip(), ec), addr->port());
  if (!ec) {
    co_await st->socket.async_connect(ep, await_ec);
  }
  const bool https = a.type == "https";
  const bool http = a.type == "http" || https;
  if (ec) {
    event = st->timed_out ? HealthEvent::kTimeout : HealthEvent::kTcpFailure;
  } else if (http) {
    const bool default_port = addr->port() == (https ? 443 : 80);
    std::string req = absl::StrCat("GET ", a.http_path, " HTTP/1.1\r\nHost: ", addr->hostname(),
                                   default_port ? "" : absl::StrCat(":", addr->port()),
                                   "\r\nUser-Agent: portico-healthcheck\r\nConnection: close\r\n");
    for (const auto& [name, value] : a.headers) {
      absl::StrAppend(&req, name, ": ", value, "\r\n");
    }
    req.append("\r\n");
    std::string resp;
    char buf[1024];
    if (https) {
      asio::ssl::context ctx(asio::ssl::context::tls_client);
      ctx.set_default_verify_paths(ec);
      asio::ssl::stream<tcp::socket&> tls(st->socket, ctx);
      const std::string& sni = a.https_sni.empty() ? addr->hostname() : a.https_sni;
      SSL_set_tlsext_host_name(tls.native_handle(), sni.c_str());
      if (a.https_verify_certificate) {
        tls.set_verify_mode(asio::ssl::verify_peer);
        tls.set_verify_callback(asio::ssl::host_name_verification(sni));
      } else {
        tls.set_verify_mode(asio::ssl::verify_none);
      }
      co_await tls.async_handshake(asio::ssl::stream_base::client, await_ec);
      if (!ec) {
        co_await asio::async_write(tls, asio::buffer(req), await_ec);
      }
      while (!ec && statusOf(resp) == 0 && resp.size() < 4096) {
        size_t n = co_await tls.async_read_some(asio::buffer(buf), await_ec);
        resp.append(buf, n);
      }
    } else {
      co_await asio::async_write(st->socket, asio::buffer(req), await_ec);
      while (!ec && statusOf(resp) == 0 && resp.size() < 4096) {
        size_t n = co_await st->socket.async_read_some(asio::buffer(buf), await_ec);
        resp.append(buf, n);
      }
    }
    status = statusOf(resp);
    if (status != 0) {
      const size_t s = static_cast<size_t>(status);
      if (a.thresholds.healthy_statuses.test(s)) {
        event = HealthEvent::kSuccess;
      } else if (a.thresholds.unhealthy_statuses.test(s)) {
        event = HealthEvent::kHttpFailure;
      } else {
        counted = false;  // neither list names it: Kong ignores it
      }
    } else {
      event = st->timed_out ? HealthEvent::kTimeout : HealthEvent::kTcpFailure;
    }
  }
  st->timer.cancel();
  error_code ignored;
  st->socket.close(ignored);
  if (counted && addr->record(event, static_cast<uint32_t>(status), a.thresholds)) {
    LOG_INFO("health", "upstream %s: %s:%d (%s) is now %s (active %s, status %d)", up->name(),
             addr->ip(), addr->port(), addr->hostname(), addr->healthy() ? "healthy" : "unhealthy",
             a.type, status);
  }
  addr->probing = false;
  --up->probes_in_flight;
  const uint32_t interval = addr->healthy() ? a.healthy_interval_ms : a.unhealthy_interval_ms;
  addr->next_probe_ms = steadyMs() + (interval > 0 ? interval : 100);
}

HealthChecker::HealthChecker() : impl_(std::make_unique<Impl>()) {
  impl_->owner = this;
  impl_->scheduleTick();
  impl_->thread = std::thread([impl = impl_.get()] { impl->io.run(); });
}

HealthChecker::~HealthChecker() {
  impl_->io.stop();
  impl_->thread.join();
}

UpstreamHealthSharedPtr HealthChecker::acquire(const std::string& upstream_id,
                                               const std::string& name,
                                               const std::string& healthchecks_text,
                                               const HealthConfig& config) {
  const std::string key = absl::StrCat(upstream_id, "\n", name, "\n", healthchecks_text);
  absl::MutexLock lock(&impl_->mu);
  std::weak_ptr<UpstreamHealth>& slot = impl_->upstreams[key];
  UpstreamHealthSharedPtr h = slot.lock();
  if (!h) {
    h = std::make_shared<UpstreamHealth>(upstream_id, name, config);
    slot = h;
  }
  return h;
}

}  // namespace portico::dp::balancer
