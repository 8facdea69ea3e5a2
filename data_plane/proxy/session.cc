#include "data_plane/proxy/session.h"

#include <ctime>

#include <boost/asio/buffer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <mutex>
#include <chrono>
#include <exception>
#include <optional>

#include <re2/re2.h>

#include "common/http/chunked.h"
#include "common/logging.h"
#include "data_plane/vitals/vitals.h"
#include "data_plane/proxy/local_reply.h"
#include "data_plane/router/path.h"

namespace portico::dp {
namespace {

using boost::system::error_code;

// How a request/response field is treated when forwarding.
enum class FieldAction : uint8_t {
  kForward, kDrop, kXForwardedFor, kVia, kUpgrade,
  kXfProto, kXfHost, kXfPort, kXfPath, kXfPrefix,  // request only: re-set by the proxy
};

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
      if (equalsIgnoreCase(name, "upgrade")) {
        return FieldAction::kUpgrade;
      }
      return equalsIgnoreCase(name, "trailer") ? FieldAction::kDrop : FieldAction::kForward;
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
      if (equalsIgnoreCase(name, "proxy-connection")) {
        return FieldAction::kDrop;
      }
      if (request) {
        if (equalsIgnoreCase(name, "x-forwarded-host")) return FieldAction::kXfHost;
        if (equalsIgnoreCase(name, "x-forwarded-port")) return FieldAction::kXfPort;
        if (equalsIgnoreCase(name, "x-forwarded-path")) return FieldAction::kXfPath;
      }
      return FieldAction::kForward;
    case 17:
      if (equalsIgnoreCase(name, "transfer-encoding")) {
        return FieldAction::kDrop;
      }
      return request && equalsIgnoreCase(name, "x-forwarded-proto") ? FieldAction::kXfProto
                                                                      : FieldAction::kForward;
    case 18:
      return request && equalsIgnoreCase(name, "x-forwarded-prefix") ? FieldAction::kXfPrefix
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
          !http::equalsIgnoreCase(tok, "keep-alive") && !http::equalsIgnoreCase(tok, "upgrade")) {
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

// nginx's proxy_next_upstream default leaves these out once the request was sent.
bool idempotent(std::string_view method) {
  return method != "POST" && method != "PATCH" && method != "LOCK";
}

inline auto awaitWith(error_code& ec) { return asio::redirect_error(kUseAwaitable, ec); }

// What the balancer may hash on (data_plane/balancer). `req` is null for a retry's pick, made
// after the head's bytes were consumed: the retry then just walks to another address.
class HashInputs final : public balancer::RequestInputs {
 public:
  HashInputs(const http::RequestHead* req, std::string_view client_ip)
      : req_(req), client_ip_(client_ip) {}
  std::string_view clientIp() const override { return client_ip_; }
  std::string_view path() const override { return req_ != nullptr ? req_->path : ""; }
  std::string_view query() const override {
    return req_ != nullptr && req_->has_query ? req_->query : "";
  }
  std::string_view header(std::string_view name) const override {
    std::string_view v;
    return req_ != nullptr && req_->find(name, &v) ? v : std::string_view();
  }

 private:
  const http::RequestHead* req_;
  std::string_view client_ip_;
};

constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

// A coroutine spawned next to the session's main flow (request body pump, relay direction).
// The main flow always waits for it (join()) before leaving the frame that owns this object.
struct Spawned {
  bool done = false;
  int result = 0;
  Timer* waiter = nullptr;
  void finish(int r) {
    done = true;
    result = r;
    if (waiter != nullptr) {
      waiter->cancel();
    }
  }
};

Task<void> join(asio::io_context& io, Spawned& s) {
  while (!s.done) {
    Timer t(io, Timer::time_point::max());
    s.waiter = &t;
    error_code ec;
    co_await t.async_wait(awaitWith(ec));
    s.waiter = nullptr;
  }
}

}  // namespace

// Header edits of one request, kept in two strings whose capacity is reused from request to
// request (a vector of string pairs cost ~15 allocations per authenticated request): `lines`
// holds the "Name: value\r\n" fields to add, `dropped` the '\n'-terminated names whose
// existing values are removed.
struct HeaderEdits {
  std::string lines;
  std::string dropped;

  bool empty() const { return lines.empty() && dropped.empty(); }
  void clear() {
    lines.clear();
    dropped.clear();
  }
  void add(std::string_view name, std::string_view value) {
    lines.append(name).append(": ").append(value).append("\r\n");
  }
  void remove(std::string_view name) {
    if (!drops(name)) {
      dropped.append(name).push_back('\n');
    }
    for (size_t pos = 0; pos < lines.size();) {
      const size_t eol = lines.find("\r\n", pos);
      const size_t colon = lines.find(':', pos);
      if (colon < eol && http::equalsIgnoreCase(std::string_view(lines).substr(pos, colon - pos),
                                                name)) {
        lines.erase(pos, eol + 2 - pos);
      } else {
        pos = eol + 2;
      }
    }
  }
  bool drops(std::string_view name) const {
    for (size_t pos = 0; pos < dropped.size();) {
      const size_t nl = dropped.find('\n', pos);
      if (http::equalsIgnoreCase(std::string_view(dropped).substr(pos, nl - pos), name)) {
        return true;
      }
      pos = nl + 1;
    }
    return false;
  }
};

// The RequestContext plugins see; one per session, reused by every request that has plugins.
// Header edits are kept as lists and applied when the heads are written.
// The Waker of a parked request (plugin.h). resume() comes from any thread (a Redis callback):
// it posts to the session's worker, which cancels the wait timer. disarm() (worker thread, when
// the wait is over or the session ends) makes later resume() calls do nothing.
class Session::WakeState final : public Waker, public std::enable_shared_from_this<WakeState> {
 public:
  explicit WakeState(Executor executor) : executor_(executor) {}
  void resume() override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!armed_ || resumed_) {
      return;
    }
    resumed_ = true;
    asio::post(executor_, [self = shared_from_this()] {
      self->woken_ = true;
      if (self->timer_ != nullptr) {
        self->timer_->cancel();
      }
    });
  }
  void disarm() {
    std::lock_guard<std::mutex> lock(mu_);
    armed_ = false;
    timer_ = nullptr;
  }
  // Worker thread only.
  bool woken() const { return woken_; }
  void setTimer(Timer* timer) { timer_ = timer; }

 private:
  Executor executor_;
  std::mutex mu_;
  bool armed_ = true;
  bool resumed_ = false;
  bool woken_ = false;       // worker thread
  Timer* timer_ = nullptr;   // worker thread: the session's wait timer while it waits
};

class Session::Context final : public RequestContext {
 public:
  explicit Context(Session& s) : s_(s) {}
  void begin(const http::RequestHead& req, const router::Match* m) {
    head_ = &req;
    method_.assign(req.method);
    path_.assign(req.path);
    query_.assign(req.has_query ? req.query : std::string_view());
    host_.assign(req.host);
    route_ = m != nullptr ? m->route : nullptr;
    service_ = m != nullptr ? m->service : nullptr;
    service_index_ = m != nullptr ? m->service_index : -1;
    setCaptures(m);
    destination_ = nullptr;
    consumer_ = nullptr;
    credential_id_.clear();
    up_.clear();
    query_override_.reset();
    resp_.clear();
    local_status_ = 0;
    status_override_ = 0;
    local_message_.clear();
    local_body_.reset();
    local_type_.clear();
    local_ctype_ = {};
    buffer_body_ = false;
    shared_.clear();
    latencies_ = Latencies{};
    latencies_.started_at_ms = wallMs();
    started_mono_ms_ = nowMs();
    body_.reset();
    body_pending_ = false;
    method_override_.reset();
    path_override_.reset();
    host_override_.reset();
    body_override_.reset();
    log_req_head_.clear();
    keeps_req_head_ = false;
    proxied_ = false;
    upstream_status_ = 0;
  }
  // A plugin logs the request (PluginConfig::logsRequest()): copy its head while it is here.
  void keepRequestHead(std::string_view head) {
    if (!keeps_req_head_) {
      keeps_req_head_ = true;
      log_req_head_.assign(head);
    }
  }
  void setRoute(const router::Match* m) {
    route_ = m != nullptr ? m->route : nullptr;
    service_ = m != nullptr ? m->service : nullptr;
    service_index_ = m != nullptr ? m->service_index : -1;
    setCaptures(m);
  }
  // Where a plugin moved the request (setUpstreamDestination), null for the service's own.
  const ServiceTarget* destination() const { return destination_; }
  void setBodyPending(bool pending) { body_pending_ = pending; }
  const std::optional<std::string>& methodOverride() const { return method_override_; }
  const std::optional<std::string>& pathOverride() const { return path_override_; }
  const std::optional<std::string>& hostOverride() const { return host_override_; }
  const std::optional<std::string>& bodyOverride() const { return body_override_; }
  // The request head's views die once the body is read; phases after the upstream request
  // was built see the copies only.
  void headGone() { head_ = nullptr; }
  void setBufferedBody(std::string_view body) {
    body_ = body;
    body_pending_ = false;
  }
  void bodyGone() { body_.reset(); }
  void markUpstreamStart() { latencies_.kong_ms = static_cast<int64_t>(nowMs() - started_mono_ms_); upstream_mono_ms_ = nowMs(); proxied_ = true; }
  void markUpstreamHead() {
    latencies_.upstream_ms = static_cast<int64_t>(nowMs() - upstream_mono_ms_);
    upstream_status_ = s_.status_;  // the upstream's, before a plugin replaces it
  }
  void markDone() {
    latencies_.request_ms = static_cast<int64_t>(nowMs() - started_mono_ms_);
    if (latencies_.kong_ms < 0) latencies_.kong_ms = latencies_.request_ms;
  }

  int localStatusValue() const { return local_status_; }
  int statusOverride() const { return status_override_; }
  const std::string& localMessage() const { return local_message_; }
  const std::optional<std::string>& localBody() const { return local_body_; }
  const std::string& localType() const { return local_type_; }
  // A reply of our own: the Content-Type it goes with, for responseHeader().
  void setLocalContentType(std::string_view type) { local_ctype_ = type; }
  bool buffersBody() const { return buffer_body_; }
  const std::optional<std::string>& queryOverride() const { return query_override_; }
  bool dropsUpstream(std::string_view name) const { return up_.drops(name); }
  bool dropsResponse(std::string_view name) const { return resp_.drops(name); }
  bool hasUpstreamEdits() const { return !up_.empty(); }
  bool hasResponseEdits() const { return !resp_.empty(); }
  void appendUpstreamHeaders(std::string* out) const { out->append(up_.lines); }
  void appendResponseHeaders(std::string* out) const { out->append(resp_.lines); }

  // Interface
  std::string_view method() const override { return method_; }
  std::string_view path() const override { return path_; }
  std::string_view query() const override { return query_; }
  std::string_view scheme() const override { return s_.tls_ ? "https" : "http"; }
  std::string_view host() const override { return host_; }
  std::string_view clientIp() const override { return s_.client_ip_; }
  const http::RequestHead& requestHead() const override {
    static const http::RequestHead kEmpty;
    return head_ != nullptr ? *head_ : kEmpty;
  }
  void limitRequestBody(uint64_t max_bytes) override { s_.req_body_limit_ = max_bytes; }
  WakerPtr suspend(uint32_t timeout_ms) override {
    if (s_.wake_ != nullptr) {
      s_.wake_->disarm();  // a second suspend in one onRequest(): the last one counts
    }
    s_.wake_ = std::make_shared<WakeState>(s_.worker_.io().get_executor());
    s_.wake_timeout_ms_ = timeout_ms;
    return s_.wake_;
  }
  bool bufferedBody(std::string_view* body) const override {
    if (!body_) return false;
    *body = *body_;
    return true;
  }
  bool requestBodyPending() const override { return body_pending_; }
  const config::v1::Route* route() const override { return route_; }
  const config::v1::Service* service() const override { return service_; }
  const ConsumerIndex& consumers() const override { return s_.snap_->consumers(); }
  const Consumer* consumer() const override { return consumer_; }
  std::string_view credentialId() const override { return credential_id_; }
  void authenticate(const Consumer* consumer, std::string_view credential_id) override {
    consumer_ = consumer;
    credential_id_.assign(credential_id);
  }
  void setUpstreamHeader(std::string_view name, std::string_view value) override {
    removeUpstreamHeader(name);
    addUpstreamHeader(name, value);
  }
  void addUpstreamHeader(std::string_view name, std::string_view value) override {
    if (!checkValue(value)) {
      return;
    }
    if (name.size() == 4 && http::equalsIgnoreCase(name, "host")) {
      host_override_.emplace(value);  // Kong: a Host set upstream is upstream_host
      return;
    }
    up_.add(name, value);
  }
  void removeUpstreamHeader(std::string_view name) override { up_.remove(name); }
  void setUpstreamQuery(std::string query) override { query_override_ = std::move(query); }
  void upstreamHeaders(std::vector<std::pair<std::string, std::string>>* out) const override {
    if (head_ != nullptr) {
      for (uint32_t i = 0; i < head_->num_headers; ++i) {
        const http::Header& h = head_->headers[i];
        if (!up_.drops(h.name)) {
          out->emplace_back(std::string(h.name), std::string(h.value));
        }
      }
    }
    std::string_view lines = up_.lines;
    while (!lines.empty()) {
      const size_t eol = lines.find("\r\n");
      const std::string_view line = lines.substr(0, eol);
      const size_t colon = line.find(':');
      out->emplace_back(std::string(line.substr(0, colon)), std::string(line.substr(colon + 2)));
      lines.remove_prefix(eol + 2);
    }
  }
  std::string_view upstreamQuery() const override {
    return query_override_ ? std::string_view(*query_override_) : std::string_view(query_);
  }
  bool uriCapture(std::string_view key, bool numeric, std::string_view* value) const override {
    if (regex_ == nullptr) {
      return false;
    }
    if (!captures_done_) {
      captures_done_ = true;
      const int n = regex_->NumberOfCapturingGroups();
      captures_.assign(static_cast<size_t>(n) + 1, re2::StringPiece());
      if (!regex_->Match(re2::StringPiece(capture_path_.data(), capture_path_.size()), 0,
                         capture_path_.size(), RE2::ANCHOR_START, captures_.data(), n + 1)) {
        captures_.clear();
      }
    }
    size_t index = 0;
    if (numeric) {
      for (char c : key) {
        index = index * 10 + static_cast<size_t>(c - '0');
      }
    } else {
      const auto& names = regex_->NamedCapturingGroups();
      auto it = names.find(std::string(key));
      if (it == names.end()) {
        return false;
      }
      index = static_cast<size_t>(it->second);
    }
    if (index >= captures_.size() || captures_[index].data() == nullptr) {
      return false;
    }
    *value = std::string_view(captures_[index].data(), captures_[index].size());
    return true;
  }
  void setUpstreamMethod(std::string_view method) override { method_override_.emplace(method); }
  bool setUpstreamDestination(const UpstreamDestination& dest, bool only_if_available) override {
    if (service_ == nullptr) {
      return false;  // no service: the request goes nowhere anyway (503)
    }
    const ServiceTarget* t = s_.snap_->destination(service_index_, dest);
    if (t == nullptr) {
      // Announced destinations are all built; a miss is a bug, and the request must not
      // silently go to the service instead.
      LOG_ERROR("proxy", "plugin destination %s:%u of service %d was not built", dest.host,
                dest.port, service_index_);
      sendLocalReply(500, kUnexpected);
      return false;
    }
    if (only_if_available && !t->balancer->available()) {
      return false;
    }
    destination_ = t;
    return true;
  }
  void setUpstreamPath(std::string path) override {
    if (checkValue(path)) path_override_ = std::move(path);
  }
  void setUpstreamBody(std::string body) override {
    if (body_pending_) {
      sendLocalReply(500, kUnexpected);  // the client's body would still be on the wire
      return;
    }
    body_override_ = std::move(body);
  }
  bool responseHeader(std::string_view name, std::string_view* value) const override {
    if (s_.resp_.status != 0) {
      return s_.resp_.find(name, value);  // an upstream head exists
    }
    if (!local_ctype_.empty() && http::equalsIgnoreCase(name, "content-type")) {
      *value = local_ctype_;  // a reply of our own
      return true;
    }
    return false;
  }
  void bufferResponseBody() override { buffer_body_ = true; }
  void responseHeaderList(std::vector<std::pair<std::string, std::string>>* out) const override {
    if (s_.resp_.status == 0) {
      return;
    }
    for (uint32_t i = 0; i < s_.resp_.num_headers; ++i) {
      out->emplace_back(std::string(s_.resp_.headers[i].name),
                        std::string(s_.resp_.headers[i].value));
    }
  }
  void responseHeaderValues(std::string_view name,
                            std::vector<std::string_view>* out) const override {
    if (s_.resp_.status == 0) {
      return;
    }
    for (uint32_t i = 0; i < s_.resp_.num_headers; ++i) {
      if (http::equalsIgnoreCase(s_.resp_.headers[i].name, name)) {
        out->push_back(s_.resp_.headers[i].value);
      }
    }
  }
  void setResponseStatus(int status) override {
    if (status >= 100 && status <= 999) status_override_ = status;
  }
  void setResponseHeader(std::string_view name, std::string_view value) override {
    removeResponseHeader(name);
    addResponseHeader(name, value);
  }
  void addResponseHeader(std::string_view name, std::string_view value) override {
    if (checkValue(value)) resp_.add(name, value);
  }
  void removeResponseHeader(std::string_view name) override {
    resp_.remove(name);
  }
  void sendLocalReply(int status, std::string_view message) override {
    if (local_status_ == 0) {
      local_status_ = status;
      local_message_.assign(message);
    }
  }
  void sendLocalBody(int status, std::string_view body, std::string_view content_type) override {
    if (local_status_ == 0) {
      local_status_ = status;
      local_body_.emplace(body);
      local_type_.assign(content_type);
    }
  }
  int localStatus() const override { return local_status_; }
  int responseStatus() const override { return s_.status_; }
  Source responseSource() const override { return s_.source_; }
  uint64_t requestSize() const override {
    // Everything read since the head began that is no longer buffered (what is left in in_
    // belongs to the next request); a reply that closes without reading the body still
    // counts the head.
    const uint64_t end = s_.client_in_ - s_.in_.size();
    const uint64_t read = end > s_.req_in_start_ ? end - s_.req_in_start_ : 0;
    return read > s_.req_head_bytes_ ? read : s_.req_head_bytes_;
  }
  uint64_t responseSize() const override { return s_.client_out_ - s_.req_out_start_; }
  absl::flat_hash_map<std::string, std::string>& shared() override { return shared_; }
  const Latencies& latencies() const override { return latencies_; }
  std::string_view serverAddress() const override { return s_.server_addr_; }
  uint16_t serverPort() const override { return s_.server_port_; }
  uint64_t connectionSerial() const override { return s_.serial_; }
  uint32_t connectionRequests() const override { return s_.requests_; }
  void logDetails(LogDetails* out) const override {
    out->request_head = log_req_head_;
    // out_ holds the last client head built; it is this request's once bytes went out.
    if (s_.client_out_ > s_.req_out_start_) {
      const size_t end = s_.out_.find("\r\n\r\n");
      if (end != std::string::npos) {
        out->response_head = std::string_view(s_.out_).substr(0, end + 4);
      }
    }
    if (proxied_) {
      // up_head_: "<METHOD> <target> HTTP/1.1\r\n..."
      const std::string_view line = std::string_view(s_.up_head_).substr(0, s_.up_head_.find('\r'));
      const size_t sp = line.find(' ');
      const size_t sp2 = sp == std::string_view::npos ? sp : line.find(' ', sp + 1);
      if (sp2 != std::string_view::npos) {
        out->upstream_target = line.substr(sp + 1, sp2 - sp - 1);
      }
      out->upstream_ip = s_.ep_.address;
      out->upstream_port = s_.ep_.port;
    }
    out->upstream_status = upstream_status_;
    if (s_.tls_) {
      SSL* ssl = const_cast<SslStream&>(*s_.tls_).native_handle();
      out->tls_version = SSL_get_version(ssl);
      if (const char* cipher = SSL_get_cipher_name(ssl)) out->tls_cipher = cipher;
    }
  }

 private:
  static uint64_t wallMs() {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
  }
  // A value with CR, LF or NUL would split or truncate the head it goes into: the request is
  // refused rather than forwarded with a forged field.
  void setCaptures(const router::Match* m) {
    regex_ = m != nullptr ? m->regex : nullptr;
    captures_done_ = false;
    if (regex_ != nullptr) {
      capture_path_ = m->normalized_path;  // in the session's match scratch, stable till the next request
    }
  }
  bool checkValue(std::string_view value) {
    if (value.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos) {
      return true;
    }
    sendLocalReply(400, kMsgBadRequest);
    return false;
  }

  Session& s_;
  const http::RequestHead* head_ = nullptr;
  std::string method_;
  std::string path_;
  std::string query_;
  std::string host_;
  const config::v1::Route* route_ = nullptr;
  const config::v1::Service* service_ = nullptr;
  const Consumer* consumer_ = nullptr;
  std::string credential_id_;
  HeaderEdits up_;
  std::optional<std::string> query_override_;
  HeaderEdits resp_;
  int local_status_ = 0;
  int status_override_ = 0;  // setResponseStatus()
  std::string local_message_;
  std::optional<std::string> local_body_;
  std::string local_type_;
  std::string_view local_ctype_;  // set by Session::sendLocal (static or local_type_)
  bool buffer_body_ = false;      // bufferResponseBody()
  absl::flat_hash_map<std::string, std::string> shared_;
  Latencies latencies_;
  uint64_t started_mono_ms_ = 0;
  uint64_t upstream_mono_ms_ = 0;
  std::optional<std::string_view> body_;
  bool body_pending_ = false;
  int32_t service_index_ = -1;
  const ServiceTarget* destination_ = nullptr;  // points into s_.snap_
  std::optional<std::string> method_override_;
  std::optional<std::string> path_override_;
  std::optional<std::string> host_override_;
  std::optional<std::string> body_override_;
  std::string log_req_head_;     // keepRequestHead(), for LogDetails
  bool keeps_req_head_ = false;
  bool proxied_ = false;         // an upstream request was made (up_head_ is this request's)
  int upstream_status_ = 0;
  const re2::RE2* regex_ = nullptr;  // the matched regex path (uri_captures), computed lazily
  std::string_view capture_path_;
  mutable bool captures_done_ = false;
  mutable std::vector<re2::StringPiece> captures_;
};

Session::Session(Worker& worker, Socket socket, bool tls)
    : worker_(worker),
      client_(std::move(socket)),
      in_(8 * 1024),
      parser_(worker.options().limits) {
  error_code ec;
  tcp::endpoint remote = client_.remote_endpoint(ec);
  if (!ec) {
    peer_ip_ = remote.address().to_string();
    peer_trusted_ = !worker_.options().trusted_ips.empty() &&
                    worker_.options().trusted_ips.contains(remote.address());
  }
  client_ip_ = peer_ip_;
  if (tcp::endpoint local = client_.local_endpoint(ec); !ec) {
    server_addr_ = local.address().to_string();
  }
  thread_local uint64_t next_serial = 0;  // sessions live on their worker's thread
  serial_ = ++next_serial;
  server_port_ = worker_.listenPort();
  if (tls && worker_.tlsContext() != nullptr) {
    tls_.emplace(client_, *worker_.tlsContext());
    server_port_ = worker_.tlsListenPort();
  }
  worker_.add(this);
  WorkerStats::inc(worker_.stats().connections_active);
  setState(ConnState::kReading);  // the TLS handshake or the first head
}

Session::~Session() {
  if (wake_ != nullptr) {
    wake_->disarm();  // a Redis answer arriving later must not reach a freed session
  }
  setState(ConnState::kNone);
  worker_.remove(this);
  WorkerStats::dec(worker_.stats().connections_active);
}

void Session::countIn(uint64_t n) {
  client_in_ += n;
  WorkerStats::inc(worker_.stats().bytes_received_total, n);
}

void Session::countOut(uint64_t n) {
  client_out_ += n;
  WorkerStats::inc(worker_.stats().bytes_sent_total, n);
}

void Session::setState(ConnState state) {
  if (state == state_) {
    return;
  }
  WorkerStats& st = worker_.stats();
  if (state_ == ConnState::kReading) WorkerStats::dec(st.connections_reading);
  if (state_ == ConnState::kWriting) WorkerStats::dec(st.connections_writing);
  if (state == ConnState::kReading) WorkerStats::inc(st.connections_reading);
  if (state == ConnState::kWriting) WorkerStats::inc(st.connections_writing);
  state_ = state;
}

void Session::checkDeadline(uint64_t now_ms) {
  for (Deadline* d : {&dl_, &aux_dl_}) {
    if (d->at_ms != 0 && now_ms >= d->at_ms && d->socket != nullptr) {
      d->fired = true;
      d->at_ms = 0;
      error_code ec;
      d->socket->cancel(ec);
    }
  }
}

void Session::closeIfIdle() {
  if (idle_) {
    error_code ec;
    client_.cancel(ec);
  }
}

Task<void> runSession(std::unique_ptr<Session> session) { co_await session->run(); }

void Session::runBodyPhase(std::string_view data, bool end_of_body) {
  for (Plugin* p : body_plugins_) {
    p->onResponseBody(*context_, data, end_of_body);
  }
}

void Session::recordVitals() {
  vitals::WorkerVitals* v = worker_.vitals();
  if (v == nullptr) {
    return;
  }
  vitals::Sample s;
  if (vit_.service != nullptr) s.service = vit_.service->id();
  if (vit_.route != nullptr) s.route = vit_.route->id();
  if (!plugins_.empty() && context_->consumer() != nullptr) {
    s.consumer = context_->consumer()->entity->id();
  }
  // No status: the client went away before a response (nginx's 499).
  s.status = status_ != 0 ? status_ : 499;
  s.bytes_in = client_in_ - req_in_start_;
  s.bytes_out = client_out_ - req_out_start_;
  const uint64_t now = nowMs();
  s.total_ms = static_cast<int64_t>(now - vit_.start_ms);
  s.upstream_ms = vit_.upstream_ms;
  v->record(s, static_cast<int64_t>(std::time(nullptr)));
}

void Session::runLogPhase() {
  recordVitals();
  rewritten_.clear();
  body_plugins_.clear();
  if (!plugins_.empty()) {
    context_->markDone();
    for (PluginPtr& p : plugins_) {
      p->onLog(*context_);
    }
    plugins_.clear();
  }
  snap_.reset();
}

Task<void> Session::run() {
  const ProxyOptions& opts = worker_.options();
  const size_t max_in = opts.limits.max_head_bytes + 16 * 1024;
  error_code ec;
  if (tls_) {
    dl_.arm(&client_, opts.client_header_timeout_ms);
    co_await tls_->async_handshake(asio::ssl::stream_base::server, awaitWith(ec));
    dl_.disarm();
    if (ec) {
      WorkerStats::inc(worker_.stats().tls_handshake_errors_total);
      client_.close(ec);
      co_return;
    }
    if (const char* name = SSL_get_servername(tls_->native_handle(), TLSEXT_NAMETYPE_host_name)) {
      sni_ = name;
    }
  }
  for (;;) {
    parser_.reset();
    // nginx's client_header_timeout: one deadline for the whole head, from its first byte,
    // not one per read (a client sending a byte every few seconds must not hold us forever).
    uint64_t head_deadline_ms = 0;
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
        resp_extra_.clear();
        co_await sendLocal(http::statusFor(err), msg, false);
        goto close;
      }
      idle_ = in_.empty();
      setState(idle_ ? ConnState::kWaiting : ConnState::kReading);
      if (idle_ && worker_.draining()) {
        goto close;
      }
      if (!in_.prepare(2048, max_in)) {
        resp_extra_.clear();
        co_await sendLocal(431, kMsgHeaderTooLarge, false);
        goto close;
      }
      if (idle_) {
        dl_.arm(&client_, opts.keepalive_timeout_ms);
      } else {
        const uint64_t now = nowMs();
        if (head_deadline_ms == 0) {
          head_deadline_ms = now + opts.client_header_timeout_ms;
        }
        if (now >= head_deadline_ms) {
          goto close;
        }
        dl_.arm(&client_, static_cast<uint32_t>(head_deadline_ms - now));
      }
      size_t n = co_await asyncReadSome(clientStream(),
                                        asio::buffer(in_.tail(), in_.tailSize()), awaitWith(ec));
      dl_.disarm();
      idle_ = false;
      if (ec || n == 0) {
        goto close;
      }
      in_.commit(n);
      countIn(n);
    }
    setState(ConnState::kWriting);
    ++requests_;
    Outcome outcome = co_await handle(req_);
    runLogPhase();  // onLog always runs, whatever happened to the request
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
    dl_.arm(&client_, 1000);
    size_t n = co_await client_.async_read_some(asio::buffer(in_.tail(), in_.tailSize()),
                                                awaitWith(ec));
    dl_.disarm();
    if (ec || n == 0) {
      break;
    }
    drained += n;
  }
  client_.close(ec);
}

Task<void> Session::sendLocal(int status, std::string_view message, bool keep_alive,
                              std::string_view extra_headers, const LocalBody* body) {
  status_ = status;
  std::string edited;  // the body after onBufferedResponseBody(), when a plugin asked for it
  if (!plugins_.empty()) {
    context_->setLocalContentType(body != nullptr ? body->content_type : kLocalReplyType);
    for (PluginPtr& p : plugins_) {
      p->onResponseHeaders(*context_);
    }
    context_->appendResponseHeaders(&resp_extra_);
    if (context_->buffersBody()) {
      edited = body != nullptr ? std::string(body->body) : localReplyBody(message);
      for (PluginPtr& p : plugins_) {
        p->onBufferedResponseBody(*context_, &edited);
      }
    }
  }
  out_.clear();
  if (!resp_extra_.empty()) {
    resp_extra_.append(extra_headers);
    extra_headers = resp_extra_;
  }
  if (!plugins_.empty() && context_->buffersBody()) {
    appendLocalBody(status, edited, body != nullptr ? body->content_type : kLocalReplyType,
                    keep_alive, worker_.date(), &out_, extra_headers);
  } else if (body != nullptr) {
    appendLocalBody(status, body->body, body->content_type, keep_alive, worker_.date(), &out_,
                    extra_headers);
  } else {
    appendLocalReply(status, message, keep_alive, worker_.date(), &out_, extra_headers);
  }
  if (!body_plugins_.empty()) {
    const size_t head_end = out_.find("\r\n\r\n");
    runBodyPhase(head_end == std::string::npos ? std::string_view()
                                                : std::string_view(out_).substr(head_end + 4),
                 true);
  }
  WorkerStats& st = worker_.stats();
  WorkerStats::inc(st.responses_by_class[status / 100 < 6 ? status / 100 : 5]);
  countOut(out_.size());
  error_code ec;
  dl_.arm(&client_, worker_.options().send_timeout_ms);
  co_await asyncWriteAll(clientStream(), asio::buffer(out_), awaitWith(ec));
  dl_.disarm();
}

Task<void> Session::sendPluginReply(bool keep_alive) {
  if (context_->localBody()) {
    const LocalBody body{*context_->localBody(), context_->localType()};
    co_await sendLocal(context_->localStatusValue(), {}, keep_alive, {}, &body);
  } else {
    co_await sendLocal(context_->localStatusValue(), context_->localMessage(), keep_alive);
  }
}

Task<bool> Session::connect(UpstreamConn& conn, const ServiceTarget& target, bool* timed_out) {
  error_code ec;
  *timed_out = false;
  asio::ip::address addr = asio::ip::make_address(ep_.address, ec);
  if (ec) {
    co_return false;
  }
  tcp::endpoint ep(addr, ep_.port);
  conn.socket.open(ep.protocol(), ec);
  if (ec) {
    co_return false;
  }
  conn.socket.set_option(tcp::no_delay(true), ec);
  dl_.arm(&conn.socket, target.connect_timeout_ms);
  co_await conn.socket.async_connect(ep, awaitWith(ec));
  dl_.disarm();
  WorkerStats& st = worker_.stats();
  if (ec) {
    *timed_out = dl_.fired;
    WorkerStats::inc(dl_.fired ? st.upstream_timeouts_total : st.upstream_connect_errors_total);
    co_return false;
  }
  if (target.tls) {
    // nginx bounds the upstream handshake by proxy_connect_timeout too.
    conn.tls.emplace(conn.socket, *target.tls->context);
    SSL* ssl = conn.tls->native_handle();
    const std::string& name = target.tls->server_name;
    asio::ip::address literal = asio::ip::make_address(name, ec);
    if (ec) {
      ec.clear();
      SSL_set_tlsext_host_name(ssl, name.c_str());  // no SNI for IP literals (RFC 6066)
    }
    if (target.tls->verify) {
      X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
      if (literal.is_unspecified()) {
        X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size());
      } else {
        X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str());
      }
    }
    dl_.arm(&conn.socket, target.connect_timeout_ms);
    co_await conn.tls->async_handshake(asio::ssl::stream_base::client, awaitWith(ec));
    dl_.disarm();
    if (ec) {
      *timed_out = dl_.fired;
      WorkerStats::inc(dl_.fired ? st.upstream_timeouts_total : st.upstream_tls_errors_total);
      co_return false;
    }
  }
  WorkerStats::inc(st.upstream_connects_total);
  co_return true;
}

Task<Session::Pump> Session::bufferResponseBody(UpstreamConn& conn, uint32_t timeout_ms,
                                                http::BodyKind kind, uint64_t length,
                                                std::string* body, size_t* raw, bool* eof) {
  // Nothing is consumed from conn.in: on kTooLarge the pump sends all of it as it came.
  const uint64_t limit = worker_.options().max_response_body_buffer;
  IoBuffer& in = conn.in;
  http::ChunkedDecoder decoder;
  size_t decoded_to = 0;  // raw bytes of in the decoder has seen (chunked)
  body->clear();
  *eof = false;
  if (kind == http::BodyKind::kContentLength && length > limit) {
    co_return Pump::kTooLarge;
  }
  error_code ec;
  for (;;) {
    switch (kind) {
      case http::BodyKind::kContentLength:
        if (in.size() >= length) {
          body->assign(in.data(), static_cast<size_t>(length));
          *raw = static_cast<size_t>(length);
          co_return Pump::kOk;
        }
        break;
      case http::BodyKind::kChunked: {
        size_t consumed = 0;
        const http::ChunkedDecoder::Result r = decoder.decode(
            in.view().substr(decoded_to), &consumed,
            [body](std::string_view piece) { body->append(piece); });
        decoded_to += consumed;
        if (r == http::ChunkedDecoder::Result::kError) {
          co_return Pump::kBadFraming;
        }
        if (r == http::ChunkedDecoder::Result::kDone) {
          *raw = decoded_to;
          co_return Pump::kOk;
        }
        break;
      }
      default:
        break;
    }
    // Raw bytes bound the decoded ones: past the limit (plus chunk framing) it cannot fit.
    if (in.size() > limit + limit / 16 + 4096 || !in.prepare(4096, limit + limit / 16 + 8192)) {
      co_return Pump::kTooLarge;
    }
    dl_.arm(&conn.socket, timeout_ms);
    const size_t n =
        co_await asyncReadSome(streamOf(conn), asio::buffer(in.tail(), in.tailSize()),
                               awaitWith(ec));
    dl_.disarm();
    if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated || (!ec && n == 0)) {
      *eof = true;
      if (kind == http::BodyKind::kUntilClose) {
        if (in.size() > limit) {
          co_return Pump::kTooLarge;  // the pump still sends what is held, then ends
        }
        body->assign(in.view());
        *raw = in.size();
        co_return Pump::kOk;
      }
      co_return Pump::kSrcClosed;
    }
    if (ec) {
      co_return dl_.fired ? Pump::kSrcTimeout : Pump::kSrcError;
    }
    in.commit(n);
  }
}

Task<Session::Pump> Session::pump(Stream src, IoBuffer& in, uint32_t src_timeout_ms, Stream dst,
                                  uint32_t dst_timeout_ms, http::BodyKind kind, uint64_t length,
                                  bool chunk_out, std::string_view head, bool* src_eof,
                                  Deadline& dl, std::string& staging) {
  error_code ec;
  uint64_t remaining = length;
  http::ChunkedDecoder decoder;
  uint64_t decoded = 0;  // chunked data bytes so far (req_body_limit_)
  bool done = kind == http::BodyKind::kNone ||
              (kind == http::BodyKind::kContentLength && length == 0);
  char chunk_header[24];
  const bool to_client = dst.sock == &client_;
  const bool observe = to_client && !body_plugins_.empty();
  *src_eof = false;
  if (observe && done) {
    runBodyPhase({}, true);  // a response without a body still ends
  }
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
          if (observe) {
            runBodyPhase(std::string_view(in.data(), take), done);
          }
          break;
        }
        case http::BodyKind::kChunked: {
          staging.clear();
          http::ChunkedDecoder::Result r = decoder.decode(
              in.view(), &consumed, [&staging](std::string_view piece) { staging.append(piece); });
          if (r == http::ChunkedDecoder::Result::kError) {
            co_return Pump::kBadFraming;
          }
          done = r == http::ChunkedDecoder::Result::kDone;
          decoded += staging.size();
          if (!to_client && req_body_limit_ != 0 && decoded > req_body_limit_) {
            co_return Pump::kTooLarge;  // before the bytes past the limit go upstream
          }
          if (observe) {
            runBodyPhase(staging, done);
          }
          if (!staging.empty()) {
            if (chunk_out) {
              bufs[nb++] = asio::buffer(chunk_header,
                                        http::formatChunkHeader(staging.size(), chunk_header));
              bufs[nb++] = asio::buffer(staging);
              bufs[nb++] = asio::buffer(http::kChunkEnd.data(), http::kChunkEnd.size());
            } else {
              bufs[nb++] = asio::buffer(staging);
            }
          }
          if (done && chunk_out) {
            bufs[nb++] = asio::buffer(http::kLastChunk.data(), http::kLastChunk.size());
          }
          break;
        }
        case http::BodyKind::kUntilClose:
          consumed = in.size();
          if (observe) {
            runBodyPhase(std::string_view(in.data(), in.size()), false);
          }
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
      dl.arm(dst.sock, dst_timeout_ms);
      size_t written = co_await asyncWriteAll(dst, std::array<asio::const_buffer, 5>(bufs),
                                              awaitWith(ec));
      dl.disarm();
      if (ec) {
        co_return dl.fired ? Pump::kDstTimeout : Pump::kDstError;
      }
      if (to_client) {
        countOut(written);
      }
    }
    in.consume(consumed);
    head = {};
    if (done) {
      co_return Pump::kOk;
    }
    // 2. Read more of the body.
    in.prepare(1, in.capacity());
    dl.arm(src.sock, src_timeout_ms);
    size_t n = co_await asyncReadSome(src, asio::buffer(in.tail(), in.tailSize()), awaitWith(ec));
    dl.disarm();
    if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated || (!ec && n == 0)) {
      *src_eof = true;
      if (kind == http::BodyKind::kUntilClose) {
        if (observe) {
          runBodyPhase({}, true);
        }
        if (chunk_out) {
          dl.arm(dst.sock, dst_timeout_ms);
          co_await asyncWriteAll(
              dst, asio::buffer(http::kLastChunk.data(), http::kLastChunk.size()), awaitWith(ec));
          dl.disarm();
          if (ec) {
            co_return dl.fired ? Pump::kDstTimeout : Pump::kDstError;
          }
        }
        co_return Pump::kOk;
      }
      co_return Pump::kSrcClosed;
    }
    if (ec) {
      co_return dl.fired ? Pump::kSrcTimeout : Pump::kSrcError;
    }
    in.commit(n);
    if (!to_client) {
      countIn(n);
    }
  }
}

Task<void> Session::relayOneWay(Stream src, IoBuffer& in, Stream dst, uint32_t timeout_ms,
                                Deadline& dl) {
  error_code ec;
  const bool to_client = dst.sock == &client_;
  for (;;) {
    if (!in.empty()) {
      dl.arm(dst.sock, timeout_ms);
      size_t written = co_await asyncWriteAll(dst, asio::buffer(in.data(), in.size()),
                                              awaitWith(ec));
      dl.disarm();
      if (ec) {
        break;
      }
      in.consume(in.size());
      if (to_client) {
        countOut(written);
      } else {
        countIn(written);
      }
    }
    in.prepare(1, in.capacity());
    dl.arm(src.sock, timeout_ms);
    size_t n = co_await asyncReadSome(src, asio::buffer(in.tail(), in.tailSize()), awaitWith(ec));
    dl.disarm();
    if (ec || n == 0) {
      break;
    }
    in.commit(n);
  }
  // Pass the end on: the other side sees EOF (TCP half-close) and may finish its direction.
  dst.sock->shutdown(Socket::shutdown_send, ec);
}

void Session::resolveClientAddress(const http::RequestHead& req) {
  client_ip_ = peer_ip_;
  if (!peer_trusted_) {
    return;
  }
  const ProxyOptions& opts = worker_.options();
  std::string_view value;
  if (!req.find(opts.real_ip_header, &value)) {
    return;
  }
  // nginx realip: a list takes its last address, or with real_ip_recursive the last one that
  // is not itself trusted (the first when all are).
  std::string_view chosen;
  std::string_view rest = value;
  while (!rest.empty()) {
    size_t comma = rest.rfind(',');
    std::string_view item =
        http::trimOws(comma == std::string_view::npos ? rest : rest.substr(comma + 1));
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(0, comma);
    chosen = item;
    if (!opts.real_ip_recursive || !opts.trusted_ips.contains(item)) {
      break;
    }
  }
  error_code ec;
  asio::ip::address addr = asio::ip::make_address(std::string(chosen), ec);
  if (!ec) {
    client_ip_ = addr.to_string();
  }
}

void Session::addDebugHeaders(const http::RequestHead& req, const router::Match& m) {
  std::string_view v;
  if (!req.find("kong-debug", &v) || v.empty()) {
    return;
  }
  auto add = [this](std::string_view name, std::string_view value) {
    resp_extra_.append(name);
    resp_extra_.append(": ");
    resp_extra_.append(value);
    resp_extra_.append("\r\n");
  };
  add("Kong-Route-Id", m.route->id());
  if (m.route->has_name()) {
    add("Kong-Route-Name", m.route->name());
  }
  if (m.service != nullptr) {
    add("Kong-Service-Id", m.service->id());
    if (m.service->has_name()) {
      add("Kong-Service-Name", m.service->name());
    }
  }
}

void Session::buildUpstreamHead(const http::RequestHead& req, const router::Match& m,
                                const ServiceTarget& target, bool upgrade,
                                const std::string_view* body, std::string* out) {
  const Context* ctx = plugins_.empty() ? nullptr : context_.get();
  out->append(ctx != nullptr && ctx->methodOverride() ? std::string_view(*ctx->methodOverride())
                                                      : req.method);
  out->push_back(' ');
  if (ctx != nullptr && ctx->pathOverride()) {
    out->append(*ctx->pathOverride());  // Kong's set_path: replaces the whole upstream path
  } else {
    router::appendUpstreamPath(target.base_path, m.normalized_path, m.strip_len, out);
  }
  const bool edits = !plugins_.empty() && context_->hasUpstreamEdits();
  if (!plugins_.empty() && context_->queryOverride()) {
    if (!context_->queryOverride()->empty()) {
      out->push_back('?');
      out->append(*context_->queryOverride());
    }
  } else if (req.has_query) {
    out->push_back('?');
    out->append(req.query);
  }
  out->append(" HTTP/1.1\r\nHost: ");
  if (ctx != nullptr && ctx->hostOverride()) {
    out->append(*ctx->hostOverride());
  } else if (m.route->preserve_host() && !req.host.empty()) {
    out->append(req.host);
  } else {
    out->append(ep_.host_header);
  }
  out->append("\r\n");
  const Nominated nominated = nominatedBy(req);
  std::string_view via;
  std::string_view upgrade_value;
  std::string_view xff_values[4];
  size_t n_xff = 0;
  // Kong believes the client's X-Forwarded-* only from trusted_ips.
  std::string_view xf[5];  // proto, host, port, path, prefix
  for (uint32_t i = 0; i < req.num_headers; ++i) {
    const http::Header& h = req.headers[i];
    FieldAction action = classify(h.name, /*request=*/true);
    if (action == FieldAction::kDrop || (nominated.n > 0 && nominated.contains(h.name)) ||
        (edits && context_->dropsUpstream(h.name))) {
      continue;
    }
    switch (action) {
      case FieldAction::kForward:
        if (body != nullptr && h.name.size() == 14 && http::equalsIgnoreCase(h.name, "content-length")) {
          break;  // the replaced body has its own
        }
        out->append(h.name);
        out->append(": ");
        out->append(h.value);
        out->append("\r\n");
        break;
      case FieldAction::kXForwardedFor:
        if (n_xff < 4) {
          xff_values[n_xff++] = h.value;
        }
        break;
      case FieldAction::kVia:
        via = h.value;
        break;
      case FieldAction::kUpgrade:
        upgrade_value = h.value;
        break;
      case FieldAction::kXfProto:
      case FieldAction::kXfHost:
      case FieldAction::kXfPort:
      case FieldAction::kXfPath:
      case FieldAction::kXfPrefix: {
        std::string_view& slot = xf[static_cast<int>(action) - static_cast<int>(FieldAction::kXfProto)];
        if (slot.empty()) {
          slot = h.value;
        }
        break;
      }
      case FieldAction::kDrop:
        break;
    }
  }
  if (!peer_trusted_) {
    for (std::string_view& v : xf) {
      v = {};
    }
  }
  if (!up_extra_.empty()) {
    out->append(up_extra_);
  }
  if (edits) {
    context_->appendUpstreamHeaders(out);
  }
  // Kong: X-Real-IP is the (realip) client address; X-Forwarded-For appends the TCP peer to
  // what the client sent, or is the client address when it sent none.
  out->append("X-Real-IP: ");
  out->append(client_ip_);
  out->append("\r\nX-Forwarded-For: ");
  if (n_xff > 0) {
    for (size_t i = 0; i < n_xff; ++i) {
      out->append(xff_values[i]);
      out->append(", ");
    }
    out->append(peer_ip_);
  } else {
    out->append(client_ip_);
  }
  out->append("\r\nX-Forwarded-Proto: ");
  out->append(!xf[0].empty() ? xf[0] : (tls_ ? std::string_view("https") : "http"));
  out->append("\r\nX-Forwarded-Host: ");
  if (!xf[1].empty()) {
    out->append(xf[1]);
  } else {
    for (char c : hostWithoutPort(req.host)) {
      out->push_back(lowerAscii(c));
    }
  }
  out->append("\r\nX-Forwarded-Port: ");
  if (!xf[2].empty()) {
    out->append(xf[2]);
  } else {
    appendUint(server_port_, out);
  }
  out->append("\r\nX-Forwarded-Path: ");
  out->append(!xf[3].empty() ? xf[3] : req.path);
  if (!xf[4].empty()) {
    out->append("\r\nX-Forwarded-Prefix: ");
    out->append(xf[4]);
  } else if (m.strip_len > 0) {
    out->append("\r\nX-Forwarded-Prefix: ");
    router::appendEscaped(m.normalized_path.substr(0, m.strip_len), out);
  }
  out->append("\r\nVia: ");
  if (!via.empty()) {
    out->append(via);
    out->append(", ");
  }
  out->append(kViaValue);
  if (body != nullptr) {
    out->append("\r\nContent-Length: ");
    appendUint(body->size(), out);
  } else if (req.body == http::BodyKind::kChunked) {
    out->append("\r\nTransfer-Encoding: chunked");
  }
  if (upgrade && !upgrade_value.empty()) {
    out->append("\r\nUpgrade: ");
    out->append(upgrade_value);
    out->append("\r\nConnection: upgrade\r\n\r\n");
  } else {
    out->append("\r\nConnection: keep-alive\r\n\r\n");
  }
}

void Session::buildClientHead(const http::ResponseHead& resp, bool chunk_out, bool keep_alive,
                              bool upgrade, std::string* out, int64_t length) {
  out->append("HTTP/1.1 ");
  appendUint(static_cast<uint64_t>(resp.status), out);
  out->push_back(' ');
  out->append(resp.reason);
  out->append("\r\n");
  const Nominated nominated = nominatedBy(resp);
  const bool resp_edits = !plugins_.empty() && context_->hasResponseEdits();
  std::string_view via;
  for (uint32_t i = 0; i < resp.num_headers; ++i) {
    const http::Header& h = resp.headers[i];
    FieldAction action = classify(h.name, /*request=*/false);
    if (action == FieldAction::kUpgrade && upgrade) {
      action = FieldAction::kForward;
    }
    if (action == FieldAction::kDrop || action == FieldAction::kUpgrade ||
        (nominated.n > 0 && nominated.contains(h.name)) ||
        (resp_edits && context_->dropsResponse(h.name)) ||
        (length >= 0 && http::equalsIgnoreCase(h.name, "content-length"))) {
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
  if (!resp_extra_.empty()) {
    out->append(resp_extra_);
  }
  out->append("Via: ");
  if (!via.empty()) {
    out->append(via);
    out->append(", ");
  }
  out->append(kViaValue);
  out->append("\r\n");
  if (length >= 0) {
    out->append("Content-Length: ");
    appendUint(static_cast<uint64_t>(length), out);
    out->append("\r\n");
  }
  if (chunk_out) {
    out->append("Transfer-Encoding: chunked\r\n");
  }
  if (upgrade) {
    out->append("Connection: upgrade\r\n");
  } else if (!keep_alive) {
    out->append("Connection: close\r\n");
  } else if (client_http10_) {
    out->append("Connection: keep-alive\r\n");
  }
  out->append("\r\n");
}

// The request pipeline: plan -> route -> access (plugins) -> upstream request phase ->
// balance + forward + respond (forward()) -> log (run() calls runLogPhase()). Every response
// of our own leaves through localReply().
Task<Session::Outcome> Session::handle(const http::RequestHead& req) {
  RequestPlan plan = planRequest(req);
  if (req.method == "CONNECT") {
    // A gateway is no forward proxy: a tunnel request is refused, never sent upstream.
    co_await sendLocal(405, kMsgMethodNotAllowed, false);
    co_return Outcome{false};
  }
  snap_ = worker_.store().get();  // read once; kept until the log phase (STYLE rule 7)
  if (!runRewritePhase(req, plan)) {
    co_return co_await localReply(plan, 0, {});
  }
  router::Match m;
  const bool matched = routeRequest(req, &m);
  if (matched) {
    vit_.route = m.route;
    vit_.service = m.service;
  }
  if (matched && m.https_required) {
    // Kong: 426 with Upgrade, or the route's redirect status with Location: https://host/uri.
    const int code = m.route->https_redirect_status_code();
    if (code == 301 || code == 302 || code == 307 || code == 308) {
      std::string extra = "Location: https://";
      extra.append(hostWithoutPort(req.host));
      extra.append(req.target.front() == '/' ? req.target : std::string_view(req.path));
      extra.append("\r\n");
      co_return co_await localReply(plan, code, kMsgUseHttps, extra);
    }
    co_await sendLocal(426, kMsgUseHttps, false,
                       "Connection: Upgrade\r\nUpgrade: TLS/1.2, HTTP/1.1\r\n");
    co_return Outcome{false};
  }
  for (Access a = runAccessPhase(req, matched ? &m : nullptr, plan);;) {
    if (a == Access::kReplied) {
      co_return co_await localReply(plan, 0, {});
    }
    if (a == Access::kContinue) {
      break;
    }
    if (a == Access::kWait) {
      co_await waitForWake();
      a = runAccessPhase(req, &m, plan, Resume::kAfterWait);
      continue;
    }
    if (!co_await collectRequestBody(req, &plan)) {
      co_return Outcome{false};
    }
    a = runAccessPhase(req, &m, plan, Resume::kAfterBody);
  }
  const ServiceTarget* target =
      !matched || m.service == nullptr ? nullptr
      : !plugins_.empty() && context_->destination() != nullptr ? context_->destination()
                                                                : &snap_->target(m.service_index);
  if (!matched) {
    WorkerStats::inc(worker_.stats().no_route_total);
    co_return co_await localReply(plan, 404, kMsgNoRoute);
  }
  if (target == nullptr) {
    co_return co_await localReply(plan, 503, kMsgNoService);
  }
  if (!target->resolved) {
    co_return co_await localReply(plan, 503, kMsgNameResolution);
  }
  if (!runUpstreamRequestPhase()) {
    co_return co_await localReply(plan, 0, {});
  }
  co_return co_await forward(req, m, *target, plan);
}

Session::RequestPlan Session::planRequest(const http::RequestHead& req) {
  WorkerStats::inc(worker_.stats().requests_total);
  status_ = 0;
  if (worker_.vitals() != nullptr) {
    vit_ = VitalsMarks{};
    vit_.start_ms = nowMs();
  }
  source_ = RequestContext::Source::kExit;  // until the upstream answers or proxying fails
  req_in_start_ = client_in_ - in_.size();  // in_ starts with this request's head
  req_out_start_ = client_out_;
  req_head_bytes_ = req.head_bytes;
  req_body_limit_ = 0;
  // The previous request's upstream head points into a pooled connection's buffer: forget it,
  // so a local reply's response phase never reads stale (or freed) headers.
  resp_.status = 0;
  resp_.num_headers = 0;
  resp_extra_.clear();
  up_extra_.clear();
  client_http10_ = req.version == http::Version::kHttp10;
  RequestPlan plan;
  plan.head_bytes = req.head_bytes;
  plan.head_method = req.method == "HEAD";
  plan.client_keep = req.keep_alive && !worker_.draining() &&
                     requests_ < worker_.options().keepalive_requests;
  plan.body = req.body;
  plan.body_len = req.content_length;
  // A local reply keeps the connection only if the request's body is already here to skip.
  plan.body_buffered =
      plan.body == http::BodyKind::kNone ||
      (plan.body == http::BodyKind::kContentLength && in_.size() - req.head_bytes >= plan.body_len);
  if (peer_trusted_) {
    resolveClientAddress(req);
  }
  return plan;
}

bool Session::routeRequest(const http::RequestHead& req, router::Match* m) {
  if (!snap_) {
    return false;
  }
  router::RequestView rv;
  rv.method = req.method;
  rv.host = req.host;
  rv.path = req.path;
  rv.server_port = server_port_;
  rv.https = tls_.has_value();
  rv.sni = sni_;
  if (peer_trusted_ && !rv.https) {
    std::string_view proto;
    rv.forwarded_https = req.find("x-forwarded-proto", &proto) &&
                         http::equalsIgnoreCase(http::trimOws(proto), "https");
  }
  rv.headers = req.headers.data();
  rv.num_headers = req.num_headers;
  const bool matched = snap_->router().match(rv, &scratch_, m);
  if (matched && worker_.options().allow_debug_header) {
    addDebugHeaders(req, *m);
  }
  return matched;
}

bool Session::runRewritePhase(const http::RequestHead& req, const RequestPlan& plan) {
  if (!snap_ || snap_->plugins().rewrite().empty()) {
    return true;
  }
  if (!context_) {
    context_ = std::make_unique<Context>(*this);
  }
  context_->begin(req, nullptr);
  context_->setBodyPending(!plan.body_buffered);
  if (plan.body == http::BodyKind::kContentLength && plan.body_buffered) {
    context_->setBufferedBody(in_.view().substr(req.head_bytes, plan.body_len));
  }
  for (const ChainEntry& entry : snap_->plugins().rewrite()) {
    rewritten_.emplace_back(entry.base, entry.base->config->createPlugin());
    if (context_->localStatus() == 0) {
      rewritten_.back().second->onRewrite(*context_);
    }
  }
  if (context_->localStatus() != 0) {
    // Replied before routing: the global plugins it created still see the response and log.
    for (auto& [inst, plugin] : rewritten_) {
      plugins_.push_back(std::move(plugin));
      if (inst->config->wantsResponseBody()) {
        body_plugins_.push_back(plugins_.back().get());
      }
    }
    rewritten_.clear();
    return false;
  }
  return true;
}

Session::Access Session::afterOnRequest(PhaseResult r, size_t i) {
  if (r == PhaseResult::kNeedRequestBody) {
    if (context_->requestBodyPending()) {
      access_next_ = i;
      return Access::kNeedBody;
    }
    context_->sendLocalReply(500, RequestContext::kUnexpected);  // asked for no body
  } else if (r == PhaseResult::kWait) {
    if (wake_ != nullptr) {
      access_next_ = i;
      return Access::kWait;
    }
    context_->sendLocalReply(500, RequestContext::kUnexpected);  // parked without a Waker
  }
  return Access::kContinue;
}

Task<void> Session::waitForWake() {
  const std::shared_ptr<WakeState> wake = wake_;
  if (wake != nullptr && !wake->woken()) {
    if (wake_timer_ == nullptr) {
      wake_timer_ = std::make_unique<Timer>(worker_.io());
    }
    wake_timer_->expires_after(std::chrono::milliseconds(wake_timeout_ms_));
    wake->setTimer(wake_timer_.get());
    error_code ec;
    co_await wake_timer_->async_wait(awaitWith(ec));  // cancelled by resume(), or the deadline
    wake->setTimer(nullptr);
  }
  if (wake != nullptr) {
    wake->disarm();
  }
  wake_.reset();
}

Session::Access Session::runAccessPhase(const http::RequestHead& req, const router::Match* m,
                                        const RequestPlan& plan, Resume resume) {
  // No cost when the snapshot has no plugins. The walk resolves each plugin's instance when it
  // reaches it, so one scoped to the consumer an earlier auth plugin set is found (Kong's
  // plugins iterator). After a reply, the remaining plugins are still collected for the
  // response and log phases, but their access handlers are skipped.
  if (!snap_ || snap_->plugins().empty()) {
    return Access::kContinue;
  }
  const PluginChains& chains = snap_->plugins();
  bool reordered = false;
  const Chain& chain =
      m != nullptr ? chains.accessForRoute(m->route_index, &reordered) : chains.global();
  if (chain.empty()) {
    return Access::kContinue;
  }
  size_t i = 0;
  std::vector<uint16_t>& positions = access_positions_;  // with dynamic ordering: ranks
  if (resume != Resume::kNo) {
    // The body a plugin asked for is here, or its asynchronous work is done (or timed out):
    // its access handler runs again.
    if (resume == Resume::kAfterBody) {
      context_->setBufferedBody(req_body_);
    }
    i = access_next_;
    if (context_->localStatus() == 0) {
      const PhaseResult r = plugins_.back()->onRequest(*context_);
      if (r == PhaseResult::kNeedRequestBody && resume == Resume::kAfterBody) {
        context_->sendLocalReply(500, RequestContext::kUnexpected);  // asked twice
      } else if (Access a = afterOnRequest(r, i); a != Access::kContinue) {
        return a;
      }
    }
    ++i;
  } else {
    positions.clear();
    if (!context_) {
      context_ = std::make_unique<Context>(*this);
    }
    if (rewritten_.empty()) {
      context_->begin(req, m);
      context_->setBodyPending(!plan.body_buffered);
      if (plan.body == http::BodyKind::kContentLength && plan.body_buffered) {
        context_->setBufferedBody(in_.view().substr(req.head_bytes, plan.body_len));
      }
    } else {
      context_->setRoute(m);  // keeps what the rewrite phase did
    }
  }
  for (; i < chain.size(); ++i) {
    const ChainEntry& entry = chain[i];
    const PluginInstance* inst =
        chains.resolve(entry, context_->route(), context_->service(), context_->consumer());
    if (inst == nullptr) {
      continue;
    }
    if (reordered) {
      positions.push_back(entry.priority_pos);
    }
    PluginPtr plugin;
    for (auto& [done, object] : rewritten_) {
      if (done == inst && object != nullptr) {
        plugin = std::move(object);
        break;
      }
    }
    plugins_.push_back(plugin != nullptr ? std::move(plugin) : inst->config->createPlugin());
    if (inst->config->wantsResponseBody()) {
      body_plugins_.push_back(plugins_.back().get());
    }
    if (inst->config->logsRequest()) {
      context_->keepRequestHead(in_.view().substr(0, req.head_bytes));  // in_ starts with it
    }
    // Kong runs no access handler when no route matched (only the global plugins' response
    // and log phases, after the 404).
    if (m != nullptr && context_->localStatus() == 0) {
      if (Access a = afterOnRequest(plugins_.back()->onRequest(*context_), i);
          a != Access::kContinue) {
        return a;
      }
    }
  }
  rewritten_.clear();
  if (reordered) {
    restorePriorityOrder(positions);
  }
  return context_->localStatus() == 0 ? Access::kContinue : Access::kReplied;
}

Task<bool> Session::collectRequestBody(const http::RequestHead& req, RequestPlan* plan) {
  const ProxyOptions& opts = worker_.options();
  // A cap set by an earlier plugin (request-size-limiting on a chunked body) applies too.
  const uint64_t limit = req_body_limit_ != 0 && req_body_limit_ < opts.max_request_body_buffer
                             ? req_body_limit_
                             : opts.max_request_body_buffer;
  req_body_.clear();
  error_code ec;
  auto tooLarge = [&]() -> Task<bool> {
    co_await sendLocal(req.expect_continue ? 417 : 413, kMsgBodyTooLarge, false);
    co_return false;
  };
  auto readSome = [&](char* buf, size_t n) -> Task<size_t> {
    dl_.arm(&client_, opts.client_body_timeout_ms);
    size_t got = co_await asyncReadSome(clientStream(), asio::buffer(buf, n), awaitWith(ec));
    dl_.disarm();
    if (ec) {
      co_return 0;
    }
    countIn(got);
    co_return got;
  };
  const std::string_view here = in_.view().substr(req.head_bytes);
  if (req.expect_continue && here.empty() && !client_http10_) {
    dl_.arm(&client_, opts.send_timeout_ms);
    co_await asyncWriteAll(clientStream(), asio::buffer(kContinue.data(), kContinue.size()),
                           awaitWith(ec));
    dl_.disarm();
    if (ec) {
      co_return false;
    }
  }
  if (plan->body == http::BodyKind::kContentLength) {
    if (plan->body_len > limit) {
      co_return co_await tooLarge();
    }
    const size_t len = static_cast<size_t>(plan->body_len);
    req_body_.assign(here.substr(0, len));
    plan->body_in_buf = req_body_.size();
    size_t have = req_body_.size();
    req_body_.resize(len);
    while (have < len) {  // exactly the body: nothing of a pipelined request is read
      const size_t n = co_await readSome(req_body_.data() + have, len - have);
      if (n == 0) {
        co_return false;
      }
      have += n;
    }
  } else if (plan->body == http::BodyKind::kChunked) {
    http::ChunkedDecoder decoder;
    bool too_large = false;
    auto onData = [&](std::string_view d) {
      if (req_body_.size() + d.size() > limit) {
        too_large = true;
      } else {
        req_body_.append(d);
      }
    };
    size_t consumed = 0;
    http::ChunkedDecoder::Result r = decoder.decode(here, &consumed, onData);
    plan->body_in_buf = r == http::ChunkedDecoder::Result::kDone ? consumed : here.size();
    std::string chunk;
    while (r == http::ChunkedDecoder::Result::kNeedMore && !too_large) {
      chunk.resize(16 * 1024);
      const size_t n = co_await readSome(chunk.data(), chunk.size());
      if (n == 0) {
        co_return false;
      }
      r = decoder.decode(std::string_view(chunk.data(), n), &consumed, onData);
      if (r == http::ChunkedDecoder::Result::kDone && consumed < n) {
        plan->client_keep = false;  // bytes of a pipelined request were read: close after
      }
    }
    if (too_large) {
      co_return co_await tooLarge();
    }
    if (r == http::ChunkedDecoder::Result::kError) {
      WorkerStats::inc(worker_.stats().bad_requests_total);
      co_await sendLocal(400, kMsgBadRequest, false);
      co_return false;
    }
  }
  plan->body_collected = true;
  plan->body_buffered = true;
  co_return true;
}

void Session::restorePriorityOrder(const std::vector<uint16_t>& positions) {
  // Dynamic ordering moves access handlers only; every later phase runs by priority.
  std::vector<size_t> idx(plugins_.size());
  for (size_t i = 0; i < idx.size(); ++i) {
    idx[i] = i;
  }
  std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return positions[a] < positions[b]; });
  std::vector<PluginPtr> sorted;
  sorted.reserve(plugins_.size());
  for (size_t i : idx) {
    sorted.push_back(std::move(plugins_[i]));
  }
  plugins_ = std::move(sorted);
  std::vector<Plugin*> body;
  for (PluginPtr& p : plugins_) {
    if (std::find(body_plugins_.begin(), body_plugins_.end(), p.get()) != body_plugins_.end()) {
      body.push_back(p.get());
    }
  }
  body_plugins_ = std::move(body);
}

bool Session::runUpstreamRequestPhase() {
  for (PluginPtr& p : plugins_) {
    if (p->onUpstreamRequest(*context_) == PhaseResult::kStop || context_->localStatus() != 0) {
      break;
    }
  }
  return plugins_.empty() || context_->localStatus() == 0;
}

Task<Session::Outcome> Session::localReply(const RequestPlan& plan, int status,
                                           std::string_view message,
                                           std::string_view extra_headers) {
  const bool keep = plan.client_keep && plan.body_buffered;
  if (status == 0) {
    co_await sendPluginReply(keep);
  } else {
    co_await sendLocal(status, message, keep, extra_headers);
  }
  if (keep) {
    in_.consume(plan.head_bytes +
                (plan.body_collected ? static_cast<size_t>(plan.body_in_buf)
                 : plan.body == http::BodyKind::kContentLength ? static_cast<size_t>(plan.body_len)
                                                               : 0));
  }
  co_return Outcome{keep};
}

Task<Session::Outcome> Session::forward(const http::RequestHead& req, const router::Match& m,
                                        const ServiceTarget& target_ref, RequestPlan plan) {
  WorkerStats& st = worker_.stats();
  const ProxyOptions& opts = worker_.options();
  const ServiceTarget* target = &target_ref;
  // A method, or a body, replaced by a plugin (request-transformer).
  const Context* ctx = plugins_.empty() ? nullptr : context_.get();
  const std::string_view up_method = ctx != nullptr && ctx->methodOverride()
                                         ? std::string_view(*ctx->methodOverride())
                                         : req.method;
  const bool head_method = up_method == "HEAD";
  bool client_keep = plan.client_keep;
  std::optional<std::string_view> replaced_body;
  if (ctx != nullptr && ctx->bodyOverride()) {
    replaced_body = *ctx->bodyOverride();
  } else if (plan.body_collected) {
    replaced_body = req_body_;
  }
  const http::BodyKind req_body = replaced_body ? http::BodyKind::kContentLength : plan.body;
  const uint64_t req_len = replaced_body ? replaced_body->size() : plan.body_len;
  // The balancer picks the first attempt's address (Kong's balancer phase); retries after a
  // connect failure pick again below, avoiding the address that failed.
  balancer::Lease lease;
  {
    const HashInputs inputs(&req, client_ip_);
    const balancer::PickStatus ps = target->balancer->pick(inputs, 0, nullptr, &ep_, &lease);
    if (ps != balancer::PickStatus::kOk) {
      co_return co_await localReply(plan, 503,
                                    ps == balancer::PickStatus::kNoAddresses
                                        ? kMsgNameResolution
                                        : balancer::kMsgNoPeer);
    }
    ep_.pool_key.append(target->pool_key_suffix);
  }
  const bool upgrade = req.connection_upgrade && req_body == http::BodyKind::kNone;
  const bool may_resend_after_send = idempotent(up_method);
  up_head_.clear();
  buildUpstreamHead(req, m, *target, upgrade, replaced_body ? &*replaced_body : nullptr,
                    &up_head_);
  in_.consume(req.head_bytes);  // `req` views must not be used after the body is read
  if (replaced_body) {
    // The client's body bytes still in the buffer go: the replacement is sent instead.
    in_.consume(plan.body_collected ? static_cast<size_t>(plan.body_in_buf)
                                    : static_cast<size_t>(plan.body_len));
  }
  if (!plugins_.empty()) {
    context_->headGone();
    context_->bodyGone();
    context_->markUpstreamStart();
  }
  if (worker_.vitals() != nullptr) {
    vit_.upstream_start_ms = nowMs();
  }

  error_code ec;
  const bool has_body = !(req_body == http::BodyKind::kNone ||
                          (req_body == http::BodyKind::kContentLength && req_len == 0));
  // A body already entirely in the buffer is sent with the head and can be sent again on a
  // retry; any other body is streamed concurrently with the response (an upstream may answer
  // before it has read everything) and rules out retries once sending started.
  const bool body_in_buffer =
      !has_body || replaced_body ||
      (req_body == http::BodyKind::kContentLength && in_.size() >= req_len);
  if (req.expect_continue && has_body && !replaced_body && in_.empty() && !client_http10_) {
    dl_.arm(&client_, opts.send_timeout_ms);
    co_await asyncWriteAll(clientStream(), asio::buffer(kContinue.data(), kContinue.size()),
                           awaitWith(ec));
    dl_.disarm();
    if (ec) {
      co_return Outcome{false};
    }
  }

  UpstreamConnPtr conn;
  http::HeadParser rp(opts.limits);
  Spawned body;  // the concurrent request-body pump, when there is one
  body.done = true;
  bool body_eof = false;
  uint32_t tries_left = target->retries;
  // Kong's 502/504 once retries are exhausted (or not allowed).
  auto fail = [&](bool timeout) -> Task<Outcome> {
    if (!body.done) {
      client_.cancel(ec);
      if (conn) {
        conn->socket.cancel(ec);
      }
      co_await join(worker_.io(), body);
    }
    source_ = RequestContext::Source::kError;
    if (body.result == static_cast<int>(Pump::kBadFraming)) {
      WorkerStats::inc(st.bad_requests_total);
      co_await sendLocal(400, kMsgBadRequest, false);
      co_return Outcome{false};
    }
    if (body.result == static_cast<int>(Pump::kTooLarge)) {
      co_await sendLocal(req.expect_continue ? 417 : 413, kMsgBodyTooLarge, false);
      co_return Outcome{false};
    }
    const bool keep = client_keep && !has_body;
    if (timeout) {
      WorkerStats::inc(st.upstream_timeouts_total);
    } else {
      WorkerStats::inc(st.upstream_bad_responses_total);
    }
    co_await sendLocal(timeout ? 504 : 502, timeout ? kMsgTimeout : kMsgBadGateway, keep);
    co_return Outcome{keep};
  };
  for (bool stale_retry_used = false;;) {
    conn = worker_.pool().acquire(ep_.pool_key, nowMs());
    const bool reused = conn != nullptr;
    if (reused) {
      WorkerStats::inc(st.upstream_reused_total);
    } else {
      conn = std::make_unique<UpstreamConn>(worker_.io());
      conn->key = ep_.pool_key;
      bool timed_out = false;
      if (!co_await connect(*conn, *target, &timed_out)) {
        target->balancer->report(lease, timed_out ? balancer::Outcome::kTimeout
                                                  : balancer::Outcome::kConnectFailure, 0);
        // Nothing was sent: always safe to try again (proxy_next_upstream error timeout), on
        // another address when there is one.
        if (tries_left > 0) {
          --tries_left;
          WorkerStats::inc(st.upstream_retries_total);
          balancer::Lease failed = std::move(lease);
          const HashInputs inputs(nullptr, client_ip_);
          if (target->balancer->pick(inputs, target->retries - tries_left, &failed, &ep_,
                                     &lease) != balancer::PickStatus::kOk) {
            conn.reset();
            co_return co_await fail(timed_out);
          }
          ep_.pool_key.append(target->pool_key_suffix);
          continue;
        }
        conn.reset();
        co_return co_await fail(timed_out);
      }
    }
    ++conn->requests;
    // A pooled connection the upstream closed meanwhile fails before any response byte; a
    // request that can be sent again then goes out once more on a fresh connection.
    const bool may_resend =
        body_in_buffer && may_resend_after_send && reused && !stale_retry_used;
    const Stream up = streamOf(*conn);

    bool send_failed = false;
    if (body_in_buffer) {
      std::array<asio::const_buffer, 2> bufs = {
          asio::buffer(up_head_),
          replaced_body ? asio::buffer(replaced_body->data(), replaced_body->size())
                        : asio::buffer(in_.data(), has_body ? static_cast<size_t>(req_len) : 0)};
      dl_.arm(&conn->socket, target->write_timeout_ms);
      co_await asyncWriteAll(up, bufs, awaitWith(ec));
      dl_.disarm();
      if (ec) {
        const bool timeout = dl_.fired;
        if (may_resend) {
          stale_retry_used = true;
          continue;
        }
        if (may_resend_after_send && tries_left > 0) {
          --tries_left;
          WorkerStats::inc(st.upstream_retries_total);
          continue;
        }
        send_failed = true;
        co_return co_await fail(timeout);
      }
    } else {
      body.done = false;
      body.result = 0;
      asio::co_spawn(
          worker_.io(),
          pump(clientStream(), in_, opts.client_body_timeout_ms, up, target->write_timeout_ms,
               req_body, req_len, req_body == http::BodyKind::kChunked, up_head_, &body_eof,
               aux_dl_, req_staging_),
          [&body, &conn](std::exception_ptr e, Pump p) {
            if (e) {
              p = Pump::kSrcError;
            }
            body.finish(static_cast<int>(p));
            if (p == Pump::kSrcClosed || p == Pump::kSrcError || p == Pump::kSrcTimeout ||
                p == Pump::kBadFraming || p == Pump::kTooLarge) {
              // The client failed mid-body: stop waiting for the upstream's answer.
              error_code ignored;
              conn->socket.cancel(ignored);
            }
          });
    }
    (void)send_failed;

    // Response head (skipping interim 1xx responses other than 101).
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
        co_return co_await fail(false);
      }
      conn->in.prepare(1024, opts.limits.max_head_bytes + 16 * 1024);
      dl_.arm(&conn->socket, target->read_timeout_ms);
      size_t n = co_await asyncReadSome(up, asio::buffer(conn->in.tail(), conn->in.tailSize()),
                                        awaitWith(ec));
      dl_.disarm();
      if (ec || n == 0) {
        const bool timeout = dl_.fired;
        if (timeout) {
          target->balancer->report(lease, balancer::Outcome::kTimeout, 0);
        }
        if (!body.done) {
          client_.cancel(ec);
          conn->socket.cancel(ec);
          co_await join(worker_.io(), body);
        }
        if (!body_in_buffer) {
          // The client side of the body pump failing is not the upstream's fault: just close
          // (nginx logs such a request as 499).
          const Pump bp = static_cast<Pump>(body.result);
          if (bp == Pump::kSrcClosed || bp == Pump::kSrcError || bp == Pump::kSrcTimeout) {
            status_ = 499;  // Kong: proxying was under way, so the source stays "service"
            source_ = RequestContext::Source::kService;
            co_return Outcome{false};
          }
          co_return co_await fail(timeout);
        }
        if (!timeout && may_resend && conn->in.empty()) {
          stale_retry_used = true;
          retry = true;
          break;
        }
        if (body_in_buffer && may_resend_after_send && tries_left > 0) {
          --tries_left;
          WorkerStats::inc(st.upstream_retries_total);
          retry = true;
          break;
        }
        co_return co_await fail(timeout);
      }
      conn->in.commit(n);
    }
    if (retry) {
      continue;
    }
    break;
  }
  // Passive health checks and the latency EWMA see every response status.
  target->balancer->report(lease, balancer::Outcome::kResponse, resp_.status);
  if (body_in_buffer && has_body && !replaced_body) {
    in_.consume(static_cast<size_t>(req_len));
  }

  int status = resp_.status;
  status_ = status;
  source_ = RequestContext::Source::kService;
  if (!plugins_.empty()) {
    context_->markUpstreamHead();
  }
  if (worker_.vitals() != nullptr) {
    vit_.upstream_ms = static_cast<int64_t>(nowMs() - vit_.upstream_start_ms);
  }
  // hash_on=cookie and the client sent none: the balancer made one up; hand it to the client
  // so its next requests hash to the same target (Kong does the same).
  if (!ep_.set_cookie.empty()) {
    resp_extra_.append("Set-Cookie: ").append(ep_.set_cookie).append("\r\n");
  }
  if (!plugins_.empty()) {
    for (PluginPtr& p : plugins_) {
      p->onResponseHeaders(*context_);
    }
    context_->appendResponseHeaders(&resp_extra_);
    // A plugin replaced the status (response-ratelimiting's 429); the upstream's body follows.
    if (const int over = context_->statusOverride(); over != 0 && status != 101) {
      status = over;
      status_ = over;
      resp_.status = over;
      resp_.reason = reasonPhrase(over);
    }
  }
  if (status == 101) {
    if (!upgrade) {
      co_return co_await fail(false);
    }
    // WebSocket (or any Upgrade): pass the 101 on, then relay bytes both ways until one side
    // closes. Bytes that arrived early on either side go first.
    WorkerStats::inc(st.responses_by_class[1]);
    WorkerStats::inc(st.upgraded_total);
    out_.clear();
    buildClientHead(resp_, false, false, /*upgrade=*/true, &out_);
    conn->in.consume(resp_.head_bytes);
    dl_.arm(&client_, opts.send_timeout_ms);
    co_await asyncWriteAll(clientStream(), asio::buffer(out_), awaitWith(ec));
    dl_.disarm();
    if (ec) {
      co_return Outcome{false};
    }
    const Stream up = streamOf(*conn);
    Spawned down;
    asio::co_spawn(worker_.io(),
                   relayOneWay(up, conn->in, clientStream(), target->read_timeout_ms, aux_dl_),
                   [this, &down](std::exception_ptr) {
                     // The upstream is done: stop waiting for the client too.
                     error_code ignored;
                     client_.cancel(ignored);
                     down.finish(0);
                   });
    co_await relayOneWay(clientStream(), in_, up, target->read_timeout_ms, dl_);
    co_await join(worker_.io(), down);
    co_return Outcome{false};
  }

  const http::BodyKind resp_body = resp_.body;
  const bool unframed = resp_body == http::BodyKind::kChunked ||
                        resp_body == http::BodyKind::kUntilClose;
  const bool chunk_out = unframed && !client_http10_;
  if (unframed && client_http10_) {
    client_keep = false;  // an HTTP/1.0 client learns the end of the body from the close
  }
  if (worker_.draining() || !body.done) {
    client_keep = false;  // a request body still streaming may never be read to its end
  }
  bool upstream_keep = resp_.keep_alive && resp_body != http::BodyKind::kUntilClose;
  const uint64_t resp_len = resp_.content_length;
  out_.clear();
  const bool buffer_body =
      !plugins_.empty() && context_->buffersBody() && resp_body != http::BodyKind::kNone;
  if (buffer_body) {
    // resp_'s views point into conn->in, which buffering moves and grows: point them at a
    // copy of the head instead (keeping a status a plugin replaced).
    resp_head_.assign(conn->in.data(), resp_.head_bytes);
    const int kept_status = resp_.status;
    const std::string_view kept_reason = resp_.reason;
    http::HeadParser rp;
    rp.parseResponse(resp_head_, head_method, &resp_);
    if (resp_.status != kept_status) {
      resp_.status = kept_status;
      resp_.reason = kept_reason;  // reasonPhrase(): static
    }
  }
  conn->in.consume(resp_.head_bytes);

  bool upstream_eof = false;
  bool sent = false;
  Pump p = Pump::kOk;
  if (buffer_body) {
    // A plugin edits the whole body (response-transformer): hold it, let the plugins edit it,
    // send it with its own length. One over the buffer streams through unchanged below.
    std::string& edited = resp_buffered_;
    size_t raw = 0;
    p = co_await bufferResponseBody(*conn, target->read_timeout_ms, resp_body, resp_len,
                                    &edited, &raw, &upstream_eof);
    if (p == Pump::kOk) {
      for (PluginPtr& plugin : plugins_) {
        plugin->onBufferedResponseBody(*context_, &edited);
      }
      buildClientHead(resp_, false, client_keep, /*upgrade=*/false, &out_,
                      static_cast<int64_t>(edited.size()));
      if (!body_plugins_.empty()) {
        runBodyPhase(edited, true);
      }
      conn->in.consume(raw);
      const std::array<asio::const_buffer, 2> bufs{asio::buffer(out_), asio::buffer(edited)};
      dl_.arm(&client_, opts.send_timeout_ms);
      const size_t written = co_await asyncWriteAll(clientStream(), bufs, awaitWith(ec));
      dl_.disarm();
      countOut(written);
      if (ec) {
        p = Pump::kDstError;
      }
      sent = true;
      if (edited.capacity() > kUpstreamBufferSize) {
        std::string().swap(edited);  // an idle connection keeps no large buffer
      }
    } else if (p == Pump::kTooLarge) {
      for (PluginPtr& plugin : plugins_) {
        plugin->onBufferedResponseBody(*context_, nullptr);
      }
      p = Pump::kOk;
    } else {
      // The upstream failed before anything went to the client: a 502 of our own (the
      // response plugins already ran for the upstream head).
      if (p == Pump::kSrcTimeout) {
        WorkerStats::inc(st.upstream_timeouts_total);
      }
      status_ = 502;
      source_ = RequestContext::Source::kError;
      WorkerStats::inc(st.responses_by_class[5]);
      out_.clear();
      appendLocalReply(502, kMsgBadGateway, false, worker_.date(), &out_);
      countOut(out_.size());
      dl_.arm(&client_, opts.send_timeout_ms);
      co_await asyncWriteAll(clientStream(), asio::buffer(out_), awaitWith(ec));
      dl_.disarm();
      if (!body.done) {
        client_.cancel(ec);
        conn->socket.cancel(ec);
        co_await join(worker_.io(), body);
      }
      co_return Outcome{false};
    }
    if (conn->in.empty() && conn->in.capacity() > kUpstreamBufferSize) {
      conn->in = IoBuffer(kUpstreamBufferSize);  // a pooled connection keeps no large buffer
    }
  }
  if (!sent) {
    buildClientHead(resp_, chunk_out, client_keep, /*upgrade=*/false, &out_);
    p = co_await pump(streamOf(*conn), conn->in, target->read_timeout_ms, clientStream(),
                      opts.send_timeout_ms, resp_body, resp_len, chunk_out, out_, &upstream_eof,
                      dl_, staging_);
  }
  WorkerStats::inc(st.responses_by_class[status / 100 < 6 ? status / 100 : 5]);
  if (!body.done) {
    // The upstream answered before the whole request body was sent (nginx does the same):
    // stop reading it; neither connection can be reused.
    client_.cancel(ec);
    conn->socket.cancel(ec);
    co_await join(worker_.io(), body);
    client_keep = false;
    upstream_keep = false;
  } else if (static_cast<Pump>(body.result) != Pump::kOk) {
    client_keep = false;
    upstream_keep = false;
  }
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
