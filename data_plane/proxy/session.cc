#include "data_plane/proxy/session.h"

#include <boost/asio/buffer.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <array>

#include "common/http/chunked.h"
#include "common/logging.h"
#include "data_plane/proxy/local_reply.h"
#include "data_plane/router/path.h"

namespace portico::dp {
namespace {

using boost::system::error_code;

// How a request/response field is treated when forwarding.
enum class FieldAction : uint8_t { kForward, kDrop, kXForwardedFor, kVia };

inline char lowerAscii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

// Classifies by name without allocating: switch on length, then compare case-insensitively.
FieldAction classify(std::string_view name, bool request) {
  using http::equalsIgnoreCase;
  switch (name.size()) {
    case 2:
      return equalsIgnoreCase(name, "te") ? FieldAction::kDrop : FieldAction::kForward;
    case 3:
      return equalsIgnoreCase(name, "via") ? FieldAction::kVia : FieldAction::kForward;
    case 4:
      return request && equalsIgnoreCase(name, "host") ? FieldAction::kDrop : FieldAction::kForward;
    case 6:
      return request && equalsIgnoreCase(name, "expect") ? FieldAction::kDrop
                                                           : FieldAction::kForward;
    case 7:
      return (equalsIgnoreCase(name, "upgrade") || equalsIgnoreCase(name, "trailer"))
                 ? FieldAction::kDrop
                 : FieldAction::kForward;
    case 9:
      return request && equalsIgnoreCase(name, "x-real-ip") ? FieldAction::kDrop
                                                              : FieldAction::kForward;
    case 10:
      return (equalsIgnoreCase(name, "connection") || equalsIgnoreCase(name, "keep-alive"))
                 ? FieldAction::kDrop
                 : FieldAction::kForward;
    case 15:
      if (request && equalsIgnoreCase(name, "x-forwarded-for")) {
        return FieldAction::kXForwardedFor;
      }
      return FieldAction::kForward;
    case 16:
      return (equalsIgnoreCase(name, "proxy-connection") ||
              (request && (equalsIgnoreCase(name, "x-forwarded-host") ||
                           equalsIgnoreCase(name, "x-forwarded-port") ||
                           equalsIgnoreCase(name, "x-forwarded-path"))))
                 ? FieldAction::kDrop
                 : FieldAction::kForward;
    case 17:
      return (equalsIgnoreCase(name, "transfer-encoding") ||
              (request && equalsIgnoreCase(name, "x-forwarded-proto")))
                 ? FieldAction::kDrop
                 : FieldAction::kForward;
    case 18:
      return request && equalsIgnoreCase(name, "x-forwarded-prefix") ? FieldAction::kDrop
                                                                       : FieldAction::kForward;
    default:
      return FieldAction::kForward;
  }
}

// Field names listed in Connection are hop-by-hop too (RFC 9110 §7.6.1).
struct Nominated {
  std::array<std::string_view, 8> names;
  size_t n = 0;
  bool contains(std::string_view name) const {
    for (size_t i = 0; i < n; ++i) {
      if (http::equalsIgnoreCase(names[i], name)) {
        return true;
      }
    }
    return false;
  }
};

Nominated nominatedBy(const http::MessageHead& h) {
  Nominated out;
  for (uint32_t i = 0; i < h.num_headers; ++i) {
    const http::Header& f = h.headers[i];
    if (f.name.size() != 10 || !http::equalsIgnoreCase(f.name, "connection")) {
      continue;
    }
    std::string_view v = f.value;
    while (!v.empty() && out.n < out.names.size()) {
      size_t comma = v.find(',');
      std::string_view tok = v.substr(0, comma);
      while (!tok.empty() && (tok.front() == ' ' || tok.front() == '\t')) {
        tok.remove_prefix(1);
      }
      while (!tok.empty() && (tok.back() == ' ' || tok.back() == '\t')) {
        tok.remove_suffix(1);
      }
      if (!tok.empty() && !http::equalsIgnoreCase(tok, "close") &&
          !http::equalsIgnoreCase(tok, "keep-alive")) {
        out.names[out.n++] = tok;
      }
      if (comma == std::string_view::npos) {
        break;
      }
      v.remove_prefix(comma + 1);
    }
  }
  return out;
}

void appendUint(uint64_t v, std::string* out) {
  char buf[24];
  size_t n = 0;
  do {
    buf[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0) {
    out->push_back(buf[--n]);
  }
}

std::string_view hostWithoutPort(std::string_view host) {
  size_t colon = host.rfind(':');
  size_t bracket = host.rfind(']');
  if (colon != std::string_view::npos && (bracket == std::string_view::npos || colon > bracket)) {
    return host.substr(0, colon);
  }
  return host;
}

inline auto awaitWith(error_code& ec) { return asio::redirect_error(kUseAwaitable, ec); }

constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

}  // namespace

Session::Session(Worker& worker, Socket socket)
    : worker_(worker),
      client_(std::move(socket)),
      in_(8 * 1024),
      parser_(worker.options().limits) {
  error_code ec;
  tcp::endpoint remote = client_.remote_endpoint(ec);
  if (!ec) {
    client_ip_ = remote.address().to_string();
  }
  worker_.add(this);
  WorkerStats::inc(worker_.stats().connections_active);
}

Session::~Session() {
  worker_.remove(this);
  WorkerStats::dec(worker_.stats().connections_active);
}

void Session::checkDeadline(uint64_t now_ms) {
  if (deadline_ms_ != 0 && now_ms >= deadline_ms_ && watch_socket_ != nullptr) {
    fired_ = true;
    deadline_ms_ = 0;
    error_code ec;
    watch_socket_->cancel(ec);
  }
}

void Session::closeIfIdle() {
  if (idle_) {
    error_code ec;
    client_.cancel(ec);
  }
}

Task<void> runSession(std::unique_ptr<Session> session) { co_await session->run(); }

Task<void> Session::run() {
  const ProxyOptions& opts = worker_.options();
  const size_t max_in = opts.limits.max_head_bytes + 16 * 1024;
  error_code ec;
  for (;;) {
    parser_.reset();
    for (;;) {
      http::HeadParser::Status st = parser_.parseRequest(in_.view(), &req_);
      if (st == http::HeadParser::Status::kComplete) {
        break;
      }
      if (st == http::HeadParser::Status::kError) {
        WorkerStats::inc(worker_.stats().bad_requests_total);
        const http::ParseError err = parser_.error();
        std::string_view msg = err == http::ParseError::kHeaderTooLarge ? kMsgHeaderTooLarge
                               : err == http::ParseError::kUriTooLong   ? kMsgUriTooLong
                               : err == http::ParseError::kNotImplemented ? kMsgNotImplemented
                               : err == http::ParseError::kVersionNotSupported ? kMsgVersion
                                                                               : kMsgBadRequest;
        co_await sendLocal(http::statusFor(err), msg, false);
        goto close;
      }
      idle_ = in_.empty();
      if (idle_ && worker_.draining()) {
        goto close;
      }
      if (!in_.prepare(2048, max_in)) {
        co_await sendLocal(431, kMsgHeaderTooLarge, false);
        goto close;
      }
      arm(&client_, idle_ ? opts.keepalive_timeout_ms : opts.client_header_timeout_ms);
      size_t n = co_await client_.async_read_some(asio::buffer(in_.tail(), in_.tailSize()),
                                                  awaitWith(ec));
      disarm();
      idle_ = false;
      if (ec || n == 0) {
        goto close;
      }
      in_.commit(n);
      WorkerStats::inc(worker_.stats().bytes_received_total, n);
    }
    ++requests_;
    Outcome outcome = co_await handle(req_);
    if (!outcome.keep_client) {
      break;
    }
  }
close:
  // Lingering close: half-close, then read (and drop) what the client still sends for a short
  // while, so unread request bytes do not turn our close into a RST that destroys the response.
  client_.shutdown(Socket::shutdown_send, ec);
  for (size_t drained = 0; drained < 64 * 1024;) {
    in_.clear();
    arm(&client_, 1000);
    size_t n = co_await client_.async_read_some(asio::buffer(in_.tail(), in_.tailSize()),
                                                awaitWith(ec));
    disarm();
    if (ec || n == 0) {
      break;
    }
    drained += n;
  }
  client_.close(ec);
}

Task<void> Session::sendLocal(int status, std::string_view message, bool keep_alive,
                              std::string_view extra_headers) {
  out_.clear();
  appendLocalReply(status, message, keep_alive, worker_.date(), &out_, extra_headers);
  WorkerStats& st = worker_.stats();
  WorkerStats::inc(st.responses_by_class[status / 100 < 6 ? status / 100 : 5]);
  WorkerStats::inc(st.bytes_sent_total, out_.size());
  error_code ec;
  arm(&client_, worker_.options().send_timeout_ms);
  co_await asio::async_write(client_, asio::buffer(out_), awaitWith(ec));
  disarm();
}

Task<bool> Session::connect(UpstreamConn& conn, const ServiceTarget& target,
                                       bool* timed_out) {
  error_code ec;
  *timed_out = false;
  asio::ip::address addr = asio::ip::make_address(target.address, ec);
  if (ec) {
    co_return false;
  }
  tcp::endpoint ep(addr, target.port);
  conn.socket.open(ep.protocol(), ec);
  if (ec) {
    co_return false;
  }
  conn.socket.set_option(tcp::no_delay(true), ec);
  arm(&conn.socket, target.connect_timeout_ms);
  co_await conn.socket.async_connect(ep, awaitWith(ec));
  disarm();
  WorkerStats& st = worker_.stats();
  if (ec) {
    *timed_out = fired_;
    WorkerStats::inc(fired_ ? st.upstream_timeouts_total : st.upstream_connect_errors_total);
    co_return false;
  }
  WorkerStats::inc(st.upstream_connects_total);
  co_return true;
}

Task<Session::Pump> Session::pump(Socket& src, IoBuffer& in, uint32_t src_timeout_ms,
                                  Socket& dst,
                                             uint32_t dst_timeout_ms, http::BodyKind kind,
                                             uint64_t length, bool chunk_out,
                                             std::string_view head, bool* src_eof) {
  error_code ec;
  uint64_t remaining = length;
  http::ChunkedDecoder decoder;
  bool done = kind == http::BodyKind::kNone ||
              (kind == http::BodyKind::kContentLength && length == 0);
  char chunk_header[24];
  const bool to_client = &dst == &client_;
  *src_eof = false;
  for (;;) {
    // 1. Forward what is buffered (and the head, on the first round) in one gather write.
    std::array<asio::const_buffer, 5> bufs;
    size_t nb = 0;
    size_t consumed = 0;
    if (!head.empty()) {
      bufs[nb++] = asio::buffer(head.data(), head.size());
    }
    if (!done && !in.empty()) {
      switch (kind) {
        case http::BodyKind::kContentLength: {
          size_t take = in.size() < remaining ? in.size() : static_cast<size_t>(remaining);
          bufs[nb++] = asio::buffer(in.data(), take);
          consumed = take;
          remaining -= take;
          done = remaining == 0;
          break;
        }
        case http::BodyKind::kChunked: {
          staging_.clear();
          http::ChunkedDecoder::Result r = decoder.decode(
              in.view(), &consumed, [this](std::string_view piece) { staging_.append(piece); });
          if (r == http::ChunkedDecoder::Result::kError) {
            co_return Pump::kBadFraming;
          }
          done = r == http::ChunkedDecoder::Result::kDone;
          if (!staging_.empty()) {
            if (chunk_out) {
              bufs[nb++] = asio::buffer(chunk_header,
                                        http::formatChunkHeader(staging_.size(), chunk_header));
              bufs[nb++] = asio::buffer(staging_);
              bufs[nb++] = asio::buffer(http::kChunkEnd.data(), http::kChunkEnd.size());
            } else {
              bufs[nb++] = asio::buffer(staging_);
            }
          }
          if (done && chunk_out) {
            bufs[nb++] = asio::buffer(http::kLastChunk.data(), http::kLastChunk.size());
          }
          break;
        }
        case http::BodyKind::kUntilClose:
          consumed = in.size();
          if (chunk_out) {
            bufs[nb++] = asio::buffer(chunk_header,
                                      http::formatChunkHeader(in.size(), chunk_header));
            bufs[nb++] = asio::buffer(in.data(), in.size());
            bufs[nb++] = asio::buffer(http::kChunkEnd.data(), http::kChunkEnd.size());
          } else {
            bufs[nb++] = asio::buffer(in.data(), in.size());
          }
          break;
        case http::BodyKind::kNone:
          break;
      }
    }
    if (nb > 0) {
      arm(&dst, dst_timeout_ms);
      size_t written = co_await asio::async_write(
          dst, std::array<asio::const_buffer, 5>(bufs), awaitWith(ec));
      disarm();
      if (ec) {
        co_return fired_ ? Pump::kDstTimeout : Pump::kDstError;
      }
      if (to_client) {
        WorkerStats::inc(worker_.stats().bytes_sent_total, written);
      }
    }
    in.consume(consumed);
    head = {};
    if (done) {
      co_return Pump::kOk;
    }
    // 2. Read more of the body.
    in.prepare(1, in.capacity());
    arm(&src, src_timeout_ms);
    size_t n = co_await src.async_read_some(asio::buffer(in.tail(), in.tailSize()), awaitWith(ec));
    disarm();
    if (ec == asio::error::eof || (!ec && n == 0)) {
      *src_eof = true;
      if (kind == http::BodyKind::kUntilClose) {
        if (chunk_out) {
          arm(&dst, dst_timeout_ms);
          co_await asio::async_write(
              dst, asio::buffer(http::kLastChunk.data(), http::kLastChunk.size()), awaitWith(ec));
          disarm();
          if (ec) {
            co_return fired_ ? Pump::kDstTimeout : Pump::kDstError;
          }
        }
        co_return Pump::kOk;
      }
      co_return Pump::kSrcClosed;
    }
    if (ec) {
      co_return fired_ ? Pump::kSrcTimeout : Pump::kSrcError;
    }
    in.commit(n);
    if (!to_client) {
      WorkerStats::inc(worker_.stats().bytes_received_total, n);
    }
  }
}

void Session::buildUpstreamHead(const http::RequestHead& req, const router::Match& m,
                                const ServiceTarget& target, std::string* out) {
  out->append(req.method);
  out->push_back(' ');
  router::appendUpstreamPath(target.base_path, m.normalized_path, m.strip_len, out);
  if (req.has_query) {
    out->push_back('?');
    out->append(req.query);
  }
  out->append(" HTTP/1.1\r\nHost: ");
  if (m.route->preserve_host() && !req.host.empty()) {
    out->append(req.host);
  } else {
    out->append(target.host_header);
  }
  out->append("\r\n");
  const Nominated nominated = nominatedBy(req);
  std::string_view via;
  bool first_xff = true;
  std::string_view xff_values[4];
  size_t n_xff = 0;
  for (uint32_t i = 0; i < req.num_headers; ++i) {
    const http::Header& h = req.headers[i];
    FieldAction action = classify(h.name, /*request=*/true);
    if (action == FieldAction::kDrop || (nominated.n > 0 && nominated.contains(h.name))) {
      continue;
    }
    if (action == FieldAction::kXForwardedFor) {
      if (n_xff < 4) {
        xff_values[n_xff++] = h.value;
      }
      continue;
    }
    if (action == FieldAction::kVia) {
      via = h.value;
      continue;
    }
    out->append(h.name);
    out->append(": ");
    out->append(h.value);
    out->append("\r\n");
  }
  // Kong (no trusted_ips): X-Real-IP is the peer; X-Forwarded-For appends it to what the
  // client sent; X-Forwarded-Proto/Host/Port/Path describe this hop, whatever the client sent.
  out->append("X-Real-IP: ");
  out->append(client_ip_);
  out->append("\r\nX-Forwarded-For: ");
  for (size_t i = 0; i < n_xff; ++i) {
    if (!first_xff || i > 0) {
      out->append(", ");
    }
    out->append(xff_values[i]);
    first_xff = false;
  }
  if (n_xff > 0) {
    out->append(", ");
  }
  out->append(client_ip_);
  out->append("\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: ");
  for (char c : hostWithoutPort(req.host)) {
    out->push_back(lowerAscii(c));
  }
  out->append("\r\nX-Forwarded-Port: ");
  appendUint(worker_.listenPort(), out);
  out->append("\r\nX-Forwarded-Path: ");
  out->append(req.path);
  if (m.strip_len > 0) {
    out->append("\r\nX-Forwarded-Prefix: ");
    router::appendEscaped(m.normalized_path.substr(0, m.strip_len), out);
  }
  out->append("\r\nVia: ");
  if (!via.empty()) {
    out->append(via);
    out->append(", ");
  }
  out->append(kViaValue);
  if (req.body == http::BodyKind::kChunked) {
    out->append("\r\nTransfer-Encoding: chunked");
  }
  out->append("\r\nConnection: keep-alive\r\n\r\n");
}

void Session::buildClientHead(const http::ResponseHead& resp, bool chunk_out, bool keep_alive,
                              std::string* out) {
  out->append("HTTP/1.1 ");
  appendUint(static_cast<uint64_t>(resp.status), out);
  out->push_back(' ');
  out->append(resp.reason);
  out->append("\r\n");
  const Nominated nominated = nominatedBy(resp);
  std::string_view via;
  for (uint32_t i = 0; i < resp.num_headers; ++i) {
    const http::Header& h = resp.headers[i];
    FieldAction action = classify(h.name, /*request=*/false);
    if (action == FieldAction::kDrop || (nominated.n > 0 && nominated.contains(h.name))) {
      continue;
    }
    if (action == FieldAction::kVia) {
      via = h.value;
      continue;
    }
    out->append(h.name);
    out->append(": ");
    out->append(h.value);
    out->append("\r\n");
  }
  out->append("Via: ");
  if (!via.empty()) {
    out->append(via);
    out->append(", ");
  }
  out->append(kViaValue);
  out->append("\r\n");
  if (chunk_out) {
    out->append("Transfer-Encoding: chunked\r\n");
  }
  if (!keep_alive) {
    out->append("Connection: close\r\n");
  } else if (client_http10_) {
    out->append("Connection: keep-alive\r\n");
  }
  out->append("\r\n");
}

Task<Session::Outcome> Session::handle(const http::RequestHead& req) {
  WorkerStats& st = worker_.stats();
  const ProxyOptions& opts = worker_.options();
  WorkerStats::inc(st.requests_total);
  const bool head_method = req.method == "HEAD";
  client_http10_ = req.version == http::Version::kHttp10;
  bool client_keep = req.keep_alive && !worker_.draining() && requests_ < opts.keepalive_requests;
  const http::BodyKind req_body = req.body;
  const uint64_t req_len = req.content_length;
  // A local reply keeps the connection only if the request's body is already here to skip.
  const bool body_buffered =
      req_body == http::BodyKind::kNone ||
      (req_body == http::BodyKind::kContentLength && in_.size() - req.head_bytes >= req_len);

  // The snapshot is read once; this request uses it until it is done (STYLE rule 7).
  SnapshotConstSharedPtr snap = worker_.store().get();
  router::Match m;
  bool matched = false;
  if (snap) {
    router::RequestView rv;
    rv.method = req.method;
    rv.host = req.host;
    rv.path = req.path;
    rv.server_port = worker_.listenPort();
    rv.headers = req.headers.data();
    rv.num_headers = req.num_headers;
    matched = snap->router().match(rv, &scratch_, &m);
  }
  if (matched && m.https_required) {
    // Kong: 426 with Upgrade, or the route's redirect status with Location: https://host/uri.
    const int code = m.route->https_redirect_status_code();
    std::string extra;
    if (code == 301 || code == 302 || code == 307 || code == 308) {
      extra.append("Location: https://");
      extra.append(hostWithoutPort(req.host));
      extra.append(req.target.front() == '/' ? req.target : std::string_view(req.path));
      extra.append("\r\n");
      const bool keep = client_keep && body_buffered;
      if (keep) {
        in_.consume(req.head_bytes + (req_body == http::BodyKind::kContentLength
                                          ? static_cast<size_t>(req_len) : 0));
      }
      co_await sendLocal(code, kMsgUseHttps, keep, extra);
      co_return Outcome{keep};
    }
    co_await sendLocal(426, kMsgUseHttps, false,
                       "Connection: Upgrade\r\nUpgrade: TLS/1.2, HTTP/1.1\r\n");
    co_return Outcome{false};
  }
  const ServiceTarget* target =
      matched && m.service != nullptr ? &snap->target(m.service_index) : nullptr;
  if (target == nullptr || !target->resolved) {
    const bool keep = client_keep && body_buffered;
    if (keep) {
      in_.consume(req.head_bytes +
                  (req_body == http::BodyKind::kContentLength ? static_cast<size_t>(req_len) : 0));
    }
    if (!matched) {
      WorkerStats::inc(st.no_route_total);
      co_await sendLocal(404, kMsgNoRoute, keep);
    } else if (m.service == nullptr) {
      co_await sendLocal(503, kMsgNoService, keep);
    } else {
      co_await sendLocal(503, kMsgNameResolution, keep);
    }
    co_return Outcome{keep};
  }

  out_.clear();
  buildUpstreamHead(req, m, *target, &out_);
  in_.consume(req.head_bytes);  // `req` views must not be used after the body is read

  error_code ec;
  if (req.expect_continue && req_body != http::BodyKind::kNone && in_.empty() && !client_http10_) {
    arm(&client_, opts.send_timeout_ms);
    co_await asio::async_write(client_, asio::buffer(kContinue.data(), kContinue.size()),
                               awaitWith(ec));
    disarm();
    if (ec) {
      co_return Outcome{false};
    }
  }

  UpstreamConnPtr conn;
  http::HeadParser rp(opts.limits);
  for (int attempt = 0;; ++attempt) {
    conn = worker_.pool().acquire(target->pool_key, nowMs());
    const bool reused = conn != nullptr;
    // Only a request without a body can be sent again on a fresh connection when a pooled one
    // turns out to be closed by the upstream.
    const bool may_retry = reused && attempt == 0 && req_body == http::BodyKind::kNone;
    if (reused) {
      WorkerStats::inc(st.upstream_reused_total);
    } else {
      conn = std::make_unique<UpstreamConn>(worker_.io());
      conn->key = target->pool_key;
      bool timed_out = false;
      if (!co_await connect(*conn, *target, &timed_out)) {
        const bool keep = client_keep && req_body == http::BodyKind::kNone;
        co_await sendLocal(timed_out ? 504 : 502, timed_out ? kMsgTimeout : kMsgBadGateway, keep);
        co_return Outcome{keep};
      }
    }
    ++conn->requests;

    bool eof = false;
    Pump p = co_await pump(client_, in_, opts.client_body_timeout_ms, conn->socket,
                           target->write_timeout_ms, req_body, req_len,
                           req_body == http::BodyKind::kChunked, out_, &eof);
    if (p == Pump::kDstError && may_retry) {
      continue;
    }
    switch (p) {
      case Pump::kOk:
        break;
      case Pump::kBadFraming:
        WorkerStats::inc(st.bad_requests_total);
        co_await sendLocal(400, kMsgBadRequest, false);
        co_return Outcome{false};
      case Pump::kDstError:
        WorkerStats::inc(st.upstream_bad_responses_total);
        co_await sendLocal(502, kMsgBadGateway, false);
        co_return Outcome{false};
      case Pump::kDstTimeout:
        WorkerStats::inc(st.upstream_timeouts_total);
        co_await sendLocal(504, kMsgTimeout, false);
        co_return Outcome{false};
      default:  // the client went away or stalled mid-body
        co_return Outcome{false};
    }

    // Response head (skipping interim 1xx responses).
    rp.reset();
    bool retry = false;
    for (;;) {
      http::HeadParser::Status s = rp.parseResponse(conn->in.view(), head_method, &resp_);
      if (s == http::HeadParser::Status::kComplete) {
        if (resp_.status >= 100 && resp_.status < 200 && resp_.status != 101) {
          conn->in.consume(resp_.head_bytes);
          rp.reset();
          continue;
        }
        break;
      }
      if (s == http::HeadParser::Status::kError) {
        WorkerStats::inc(st.upstream_bad_responses_total);
        co_await sendLocal(502, kMsgBadGateway, false);
        co_return Outcome{false};
      }
      conn->in.prepare(1024, opts.limits.max_head_bytes + 16 * 1024);
      arm(&conn->socket, target->read_timeout_ms);
      size_t n = co_await conn->socket.async_read_some(
          asio::buffer(conn->in.tail(), conn->in.tailSize()), awaitWith(ec));
      disarm();
      if (ec || n == 0) {
        if (fired_) {
          WorkerStats::inc(st.upstream_timeouts_total);
          co_await sendLocal(504, kMsgTimeout, false);
          co_return Outcome{false};
        }
        if (may_retry && conn->in.empty()) {
          retry = true;
          break;
        }
        WorkerStats::inc(st.upstream_bad_responses_total);
        co_await sendLocal(502, kMsgBadGateway, false);
        co_return Outcome{false};
      }
      conn->in.commit(n);
    }
    if (retry) {
      continue;
    }
    break;
  }

  if (resp_.status == 101) {
    // TODO(portico): WebSocket / Upgrade tunnelling.
    WorkerStats::inc(st.upstream_bad_responses_total);
    co_await sendLocal(502, kMsgBadGateway, false);
    co_return Outcome{false};
  }
  const http::BodyKind resp_body = resp_.body;
  const bool unframed = resp_body == http::BodyKind::kChunked ||
                        resp_body == http::BodyKind::kUntilClose;
  const bool chunk_out = unframed && !client_http10_;
  if (unframed && client_http10_) {
    client_keep = false;  // an HTTP/1.0 client learns the end of the body from the close
  }
  if (worker_.draining()) {
    client_keep = false;
  }
  const bool upstream_keep = resp_.keep_alive && resp_body != http::BodyKind::kUntilClose;
  const int status = resp_.status;
  const uint64_t resp_len = resp_.content_length;
  out_.clear();
  buildClientHead(resp_, chunk_out, client_keep, &out_);
  conn->in.consume(resp_.head_bytes);

  bool upstream_eof = false;
  Pump p = co_await pump(conn->socket, conn->in, target->read_timeout_ms, client_,
                         opts.send_timeout_ms, resp_body, resp_len, chunk_out, out_,
                         &upstream_eof);
  WorkerStats::inc(st.responses_by_class[status / 100 < 6 ? status / 100 : 5]);
  if (p != Pump::kOk) {
    if (p == Pump::kSrcTimeout) {
      WorkerStats::inc(st.upstream_timeouts_total);
    }
    // The head is already out: all we can do is close, so the client sees a truncated body.
    co_return Outcome{false};
  }
  if (upstream_keep && !upstream_eof && conn->in.empty() &&
      conn->requests < opts.upstream_keepalive_max_requests) {
    worker_.pool().release(std::move(conn), nowMs());
  }
  co_return Outcome{client_keep};
}

}  // namespace portico::dp
