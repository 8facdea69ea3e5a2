// The plugin phase interface (STYLE rules 1-3). A PluginConfig is built once per snapshot from
// a validated plugin entity and is immutable; it creates one cheap Plugin per request. The
// proxy session runs the phases: onRequest() after routing (Kong's access), onUpstreamRequest()
// before the upstream head is written, onResponseHeaders() before the client head is written
// (upstream or local reply), and onLog() for every request, whatever happened to it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/http/http_parser.h"
#include "portico/config/v1/config.pb.h"

namespace portico::dp {

class ConsumerIndex;
struct Consumer;

// kStop: the plugin already replied. kNeedRequestBody (onRequest only, when
// RequestContext::requestBodyPending()): the proxy reads the whole request body, then calls the
// same plugin's onRequest() again with bufferedBody() set (a body over the proxy's buffering
// limit gets 413 instead). kWait (onRequest only): the plugin started asynchronous work (a Redis
// round trip) and holds the Waker that RequestContext::suspend() gave it; the request is parked
// without blocking its worker and the same plugin's onRequest() runs again once the Waker is
// resumed or the suspend deadline passed (the plugin then finds its work unfinished).
enum class PhaseResult : uint8_t { kContinue, kStop, kNeedRequestBody, kWait };

// Wakes a request parked by PhaseResult::kWait. resume() is thread-safe and may be called from
// any thread (the thread that finished the work), at most once counts; calling it after the
// request went on (deadline) or ended (connection closed, shutdown) does nothing. Results are
// handed over in memory the plugin shares with the worker: whatever was written before
// resume() is visible to the resumed onRequest().
class Waker {
 public:
  virtual ~Waker() = default;
  virtual void resume() = 0;
};
using WakerPtr = std::shared_ptr<Waker>;

// Where a plugin may send a request instead of its service's host and port (canary): a host
// (an upstream entity's name, or a host name or IP) and a port, "" and 0 meaning the
// service's own. Compared as given.
struct UpstreamDestination {
  std::string host;
  uint16_t port = 0;
  bool operator==(const UpstreamDestination&) const = default;
};

// Milliseconds, Kong's `latencies` (-1 until known).
struct Latencies {
  uint64_t started_at_ms = 0;   // wall clock, when the request head was complete
  int64_t kong_ms = -1;         // time spent in the proxy itself (access phase)
  int64_t upstream_ms = -1;     // upstream connect to response head (-1: no upstream)
  int64_t request_ms = -1;      // whole request, set before onLog
};

// The request as plugins see it. Implemented by the proxy session; lives for one request, on
// the worker that owns the connection. Views returned stay valid until the phase returns.
class RequestContext {
 public:
  static constexpr std::string_view kUnexpected = "An unexpected error occurred";
  virtual ~RequestContext() = default;

  // ---- The client's request, as received.
  virtual std::string_view method() const = 0;
  virtual std::string_view path() const = 0;   // raw path, without the query
  virtual std::string_view query() const = 0;  // raw query string without '?', "" when none
  virtual std::string_view scheme() const = 0; // "http" or "https"
  virtual std::string_view host() const = 0;   // the Host header as sent
  virtual std::string_view clientIp() const = 0;  // after trusted_ips/real-IP
  virtual const http::RequestHead& requestHead() const = 0;  // every header, in wire order
  // First value of a request header (case-insensitive).
  bool requestHeader(std::string_view name, std::string_view* value) const {
    return requestHead().find(name, value);
  }
  // The whole request body when it is already buffered (small bodies sent with the head);
  // false when it is still on the wire or there is none.
  virtual bool bufferedBody(std::string_view* body) const = 0;
  // True when the request has a body that bufferedBody() does not have yet (still on the
  // wire). A plugin that needs it returns PhaseResult::kNeedRequestBody from onRequest().
  virtual bool requestBodyPending() const { return false; }

  // Parks the request once the current onRequest() returns kWait; the Waker resumes it. If
  // nobody does within `timeout_ms`, onRequest() runs again anyway. Null when this context
  // cannot park a request (the plugin must then not return kWait).
  virtual WakerPtr suspend(uint32_t timeout_ms) { return nullptr; }

  // Caps a request body whose size is not known up front (chunked): once more than
  // `max_bytes` of it arrived, nothing more goes upstream and the client gets 413 (417 after
  // Expect: 100-continue) if no response started, else the connection is closed.
  virtual void limitRequestBody(uint64_t max_bytes) = 0;

  // ---- Routing (null when no route matched: only global plugins run then).
  virtual const config::v1::Route* route() const = 0;
  virtual const config::v1::Service* service() const = 0;

  // ---- Consumers (Kong's kong.client.authenticate / get_consumer / get_credential).
  virtual const ConsumerIndex& consumers() const = 0;
  virtual const Consumer* consumer() const = 0;       // null until a plugin authenticates
  virtual std::string_view credentialId() const = 0;  // "" for none (anonymous)
  virtual void authenticate(const Consumer* consumer, std::string_view credential_id) = 0;

  // ---- The upstream request. A set replaces every value the client sent.
  virtual void setUpstreamHeader(std::string_view name, std::string_view value) = 0;
  virtual void addUpstreamHeader(std::string_view name, std::string_view value) = 0;
  virtual void removeUpstreamHeader(std::string_view name) = 0;
  // Replaces the query string sent upstream ("" = none).
  virtual void setUpstreamQuery(std::string query) = 0;
  // The request headers and query as they go upstream so far: the client's, after the edits
  // of the plugins that ran before (Kong's kong.request.get_headers()/get_query() after
  // kong.service.request edits). Host is the client's.
  virtual void upstreamHeaders(std::vector<std::pair<std::string, std::string>>* out) const {
    const http::RequestHead& h = requestHead();
    for (uint32_t i = 0; i < h.num_headers; ++i) {
      out->emplace_back(std::string(h.headers[i].name), std::string(h.headers[i].value));
    }
  }
  virtual std::string_view upstreamQuery() const { return query(); }
  // A capture of the matched route's regex path (Kong's router uri_captures): by group name,
  // or by number when `numeric` (0 = the whole match). False when there is none.
  virtual bool uriCapture(std::string_view key, bool numeric, std::string_view* value) const {
    return false;
  }
  // Replace the method, the path (the whole upstream path, already escaped, without query) and
  // the body sent upstream; the proxy then sends the body with its own Content-Length. A
  // context that cannot do it refuses the request (500) rather than forward it unchanged.
  virtual void setUpstreamMethod(std::string_view) { sendLocalReply(500, kUnexpected); }
  virtual void setUpstreamPath(std::string) { sendLocalReply(500, kUnexpected); }
  virtual void setUpstreamBody(std::string) { sendLocalReply(500, kUnexpected); }

  // In onRequest: sends the request to `dest`, which the plugin's config announced in
  // PluginConfig::upstreamDestinations(), instead of the service's host and port. The
  // service's protocol, timeouts, retries and path rules stay (Kong's canary setting
  // balancer_data.host/port). With `only_if_available`, nothing changes when no address of
  // the destination is healthy (Balancer::available()). Returns whether the request moved.
  // A context that cannot do it refuses the request (500) rather than send it elsewhere.
  virtual bool setUpstreamDestination(const UpstreamDestination& dest, bool only_if_available) {
    sendLocalReply(500, kUnexpected);
    return false;
  }

  // ---- The client response. In onResponseHeaders, responseHeader() reads the upstream's.
  virtual bool responseHeader(std::string_view name, std::string_view* value) const = 0;
  // Every value of an upstream response header, in order (Kong's kong.service.response
  // .get_header returning a table for a repeated header).
  virtual void responseHeaderValues(std::string_view name,
                                    std::vector<std::string_view>* out) const {
    std::string_view v;
    if (responseHeader(name, &v)) out->push_back(v);
  }
  // Every upstream response header as received, in order (none for a reply of our own). For
  // a plugin that keeps them beyond the phase (proxy-cache, the loggers): copies.
  virtual void responseHeaderList(std::vector<std::pair<std::string, std::string>>* out) const {}
  // In onResponseHeaders of an upstream response: the status the client gets instead of the
  // upstream's; the upstream's headers and body still follow (Kong's kong.response.exit(status)
  // without a body in header_filter). Ignored for replies of our own.
  virtual void setResponseStatus(int status) {}
  // In onResponseHeaders: hold the whole response body (decoded, at most ProxyOptions::
  // max_response_body_buffer bytes) before any of it goes out, and hand it to every plugin's
  // onBufferedResponseBody() to edit; it is then sent with its own Content-Length (Kong's
  // kong.response.get_raw_body/set_raw_body in body_filter). Local replies too. A context that
  // cannot buffer ignores it (the body streams unchanged and onBufferedResponseBody() never
  // runs).
  virtual void bufferResponseBody() {}
  virtual void setResponseHeader(std::string_view name, std::string_view value) = 0;
  virtual void addResponseHeader(std::string_view name, std::string_view value) = 0;
  virtual void removeResponseHeader(std::string_view name) = 0;

  // ---- Answering the client. The one way a plugin replies itself: Kong's
  // kong.response.error (`{"message": ...}`), or kong.response.exit with an exact body.
  // Response headers set before the call go with the reply. The first reply wins.
  virtual void sendLocalReply(int status, std::string_view message) = 0;
  virtual void sendLocalBody(int status, std::string_view body,
                             std::string_view content_type) = 0;
  virtual int localStatus() const = 0;     // 0 until a plugin replied
  virtual int responseStatus() const = 0;  // 0 until a response exists
  // Where the response came from (Kong's kong.response.get_source()): kService when the
  // upstream answered, kExit when a plugin or the proxy replied on purpose (router 404, a
  // plugin's exit), kError when proxying failed (502, 504, a broken request).
  enum class Source : uint8_t { kNone, kService, kExit, kError };
  virtual Source responseSource() const { return Source::kNone; }
  // Bytes of this request read from the client (request line, headers and body as received:
  // nginx's $request_length, Kong's request.size) and written to it (head and body: nginx's
  // $bytes_sent, Kong's response.size). Final in onLog.
  virtual uint64_t requestSize() const { return 0; }
  virtual uint64_t responseSize() const { return 0; }

  // ---- Shared between the plugins of one request (Kong's kong.ctx.shared).
  virtual absl::flat_hash_map<std::string, std::string>& shared() = 0;
  virtual const Latencies& latencies() const = 0;

  // The connection the request came on (correlation-id's tracker): the listener's address
  // and port, the connection's serial number in its worker, and its requests so far.
  virtual std::string_view serverAddress() const { return ""; }
  virtual uint16_t serverPort() const { return 0; }
  virtual uint64_t connectionSerial() const { return 0; }
  virtual uint32_t connectionRequests() const { return 0; }

  // ---- For the log phase (Kong's kong.log.serialize(): the *-log plugins). Valid in onLog.
  struct LogDetails {
    // The request head as the client sent it (request line, headers, blank line); kept only
    // when a plugin of the request says PluginConfig::logsRequest(), else "".
    std::string_view request_head;
    // The response head as written to the client (status line, headers, blank line); "" when
    // none was written (the client went away first).
    std::string_view response_head;
    std::string_view upstream_target;  // the request target sent upstream; "" if not proxied
    int upstream_status = 0;           // the upstream's status (before a plugin replaced it)
    std::string_view upstream_ip;      // the last try's address ("" if not proxied)
    uint16_t upstream_port = 0;
    std::string_view tls_version;      // the client connection's TLS ("TLSv1.3"), "" for none
    std::string_view tls_cipher;
  };
  virtual void logDetails(LogDetails* out) const {}
};

class Plugin {
 public:
  virtual ~Plugin() = default;
  // Kong's rewrite phase: before routing, for global instances whose config says
  // runsInRewrite(). The same object then goes through the later phases.
  virtual PhaseResult onRewrite(RequestContext&) { return PhaseResult::kContinue; }
  // Kong's access phase: after routing, before the upstream is chosen. Skipped once an earlier
  // plugin replied; the later phases still run.
  virtual PhaseResult onRequest(RequestContext&) { return PhaseResult::kContinue; }
  // After every onRequest() returned kContinue, before the upstream request head is sent.
  virtual PhaseResult onUpstreamRequest(RequestContext&) { return PhaseResult::kContinue; }
  // Before the client response head is sent (upstream or local reply).
  virtual void onResponseHeaders(RequestContext&) {}
  // Kong's body_filter, for configs that say wantsResponseBody(): each piece of the response
  // body as it streams to the client (decoded from chunked framing), then once with
  // `end_of_body` (and possibly no data). Read-only: the bytes go out as they came.
  virtual void onResponseBody(RequestContext&, std::string_view data, bool end_of_body) {}
  // After a plugin called RequestContext::bufferResponseBody(): the whole body, before it goes
  // to the client (an edit replaces it); null when it was larger than the buffer and streams
  // through unchanged. Every plugin of the request, in priority order; runs before
  // onResponseBody() sees the (edited) body.
  virtual void onBufferedResponseBody(RequestContext&, std::string* body) {}
  // Always runs, also after kStop, errors and client aborts. Metrics and logs go here.
  virtual void onLog(const RequestContext&) {}
};
using PluginPtr = std::unique_ptr<Plugin>;

// Built once per snapshot from a validated plugin entity; shared by every request.
class PluginConfig {
 public:
  virtual ~PluginConfig() = default;
  virtual std::string_view name() const = 0;
  virtual int32_t priority() const = 0;  // Kong's order: higher runs first; ties by name
  virtual PluginPtr createPlugin() const = 0;
  // True for a plugin with a rewrite phase (run for global instances only, as Kong does).
  virtual bool runsInRewrite() const { return false; }
  // True for a plugin that looks at the response body (onResponseBody); others cost nothing
  // per body piece.
  virtual bool wantsResponseBody() const { return false; }
  // True for a plugin whose onLog() reads RequestContext::LogDetails::request_head: the proxy
  // then keeps a copy of the request head until the log phase (others cost nothing).
  virtual bool logsRequest() const { return false; }
  // Every destination RequestContext::setUpstreamDestination() may be given by this plugin.
  // The snapshot builds each one's balancer (DNS watched off the hot path), TLS and pool key
  // up front, for every service the instance can apply to, so the switch costs one lookup.
  virtual void upstreamDestinations(std::vector<UpstreamDestination>* out) const {}
};
using PluginConfigConstSharedPtr = std::shared_ptr<const PluginConfig>;

}  // namespace portico::dp
