// One client connection on a worker (internal to data_plane/proxy): reads requests (pipelined
// ones in order), routes each against the snapshot current when it arrived, forwards it to
// the service over a pooled upstream connection and streams the response back. Plain TCP or
// TLS on either side; WebSocket (Upgrade) connections become a byte relay after the 101.
#pragma once

#include <utility>  // Boost 1.74 asio/awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/http/http_parser.h"
#include "data_plane/plugins/plugin.h"
#include "data_plane/proxy/worker.h"
#include "data_plane/router/router.h"

namespace portico::dp {

class Session {
 public:
  Session(Worker& worker, Socket socket, bool tls);
  ~Session();

  // The connection's whole life; returns when it is closed.
  Task<void> run();

  // Called by the worker's tick: cancels the pending operations whose deadline passed.
  void checkDeadline(uint64_t now_ms);
  // Called by the worker when draining: closes the connection if it is between requests.
  void closeIfIdle();

  Session* prev = nullptr;  // worker's intrusive list
  Session* next = nullptr;

  // A deadline on one socket; the worker's 50 ms tick cancels the socket when it passes.
  // Two per session: the main flow and a concurrent request-body (or relay) pump.
  struct Deadline {
    uint64_t at_ms = 0;
    Socket* socket = nullptr;
    bool fired = false;
    void arm(Socket* s, uint32_t timeout_ms) {
      socket = s;
      at_ms = nowMs() + timeout_ms;
      fired = false;
    }
    void disarm() { at_ms = 0; }
  };

 private:
  enum class Pump : uint8_t {
    kOk, kSrcClosed, kSrcError, kSrcTimeout, kDstError, kDstTimeout, kBadFraming,
    kTooLarge  // the request body passed req_body_limit_
  };
  struct Outcome {
    bool keep_client = false;
  };
  class Context;  // the RequestContext plugins see

  // What handle() decided about a request before routing it.
  struct RequestPlan {
    uint32_t head_bytes = 0;
    bool head_method = false;
    bool client_keep = false;    // the connection may serve another request
    bool body_buffered = false;  // the whole body (or none) is already in in_
    http::BodyKind body = http::BodyKind::kNone;
    uint64_t body_len = 0;
    // A plugin asked for a body that was still on the wire (PhaseResult::kNeedRequestBody):
    // it was read into req_body_ (de-chunked); `body_in_buf` of its bytes were in in_ after
    // the head, the rest came from the socket.
    bool body_collected = false;
    uint64_t body_in_buf = 0;
  };

  // One request, through the pipeline: planRequest -> routeRequest -> runAccessPhase ->
  // runUpstreamRequestPhase -> forward, with localReply() the one exit for our own replies.
  Task<Outcome> handle(const http::RequestHead& req);
  RequestPlan planRequest(const http::RequestHead& req);
  bool routeRequest(const http::RequestHead& req, router::Match* m);
  // Kong's rewrite phase for global plugins, before routing; false when one replied.
  bool runRewritePhase(const http::RequestHead& req, const RequestPlan& plan);
  // Collects the route's (or, unmatched, the global) plugins and runs their access phase.
  // kNeedBody: a plugin needs the request body first (access_next_ is where to resume: that
  // plugin's onRequest() runs again once collectRequestBody() read it).
  // kWait: a plugin parked the request (PhaseResult::kWait); waitForWake() waits for its
  // Waker, then the walk resumes at the same plugin.
  enum class Access : uint8_t { kContinue, kReplied, kNeedBody, kWait };
  enum class Resume : uint8_t { kNo, kAfterBody, kAfterWait };
  Access runAccessPhase(const http::RequestHead& req, const router::Match* m,
                        const RequestPlan& plan, Resume resume = Resume::kNo);
  // What a plugin's onRequest() result means for the walk at position `i` (kContinue: go on).
  Access afterOnRequest(PhaseResult r, size_t i);
  // Parks the request until the Waker a plugin took (Context::suspend) is resumed or its
  // deadline passes. The worker keeps serving its other connections meanwhile.
  class WakeState;
  Task<void> waitForWake();
  // Reads the rest of the request body into req_body_ (at most
  // ProxyOptions::max_request_body_buffer bytes). False when the request is over: the client
  // failed (closed) or the body is too large (413/417 sent).
  Task<bool> collectRequestBody(const http::RequestHead& req, RequestPlan* plan);
  bool runUpstreamRequestPhase();  // false when a plugin replied
  // `status` 0: the reply a plugin asked for. Skips the request body when the connection is
  // kept.
  Task<Outcome> localReply(const RequestPlan& plan, int status, std::string_view message,
                           std::string_view extra_headers = {});
  // Balance, send upstream (retries), relay the response.
  Task<Outcome> forward(const http::RequestHead& req, const router::Match& m,
                        const ServiceTarget& target, RequestPlan plan);
  struct LocalBody {
    std::string_view body;
    std::string_view content_type;
  };
  // A response of our own: `{"message": message}` (Kong's kong.response.error), or `body`
  // exactly when given. Runs the plugins' response-header phase first.
  Task<void> sendLocal(int status, std::string_view message, bool keep_alive,
                       std::string_view extra_headers = {}, const LocalBody* body = nullptr);
  // The reply a plugin asked for (Context::sendLocalReply/sendLocalBody).
  Task<void> sendPluginReply(bool keep_alive);
  Task<Pump> pump(Stream src, IoBuffer& in, uint32_t src_timeout_ms, Stream dst,
                  uint32_t dst_timeout_ms, http::BodyKind kind, uint64_t length, bool chunk_out,
                  std::string_view head, bool* src_eof, Deadline& dl, std::string& staging);
  // Reads the whole response body into conn.in (nothing consumed) and its decoded bytes into
  // *body, for a plugin that edits it (RequestContext::bufferResponseBody). kOk: *raw bytes of
  // conn.in are the body; kTooLarge: over ProxyOptions::max_response_body_buffer (what was
  // read stays in conn.in for pump()); else the upstream failed.
  Task<Pump> bufferResponseBody(UpstreamConn& conn, uint32_t timeout_ms, http::BodyKind kind,
                                uint64_t length, std::string* body, size_t* raw, bool* eof);
  // Copies bytes src -> dst until EOF or error (upgraded connections), then half-closes dst.
  Task<void> relayOneWay(Stream src, IoBuffer& in, Stream dst, uint32_t timeout_ms, Deadline& dl);
  Task<bool> connect(UpstreamConn& conn, const ServiceTarget& target, bool* timed_out);
  // Real client address (Kong's realip: trusted peers may name another one).
  void resolveClientAddress(const http::RequestHead& req);
  // `body`: a body replacing the client's (sent with its own Content-Length), or null.
  void buildUpstreamHead(const http::RequestHead& req, const router::Match& m,
                         const ServiceTarget& target, bool upgrade, const std::string_view* body,
                         std::string* out);
  // `length` >= 0: the body goes with this Content-Length instead of the upstream's framing.
  void buildClientHead(const http::ResponseHead& resp, bool chunk_out, bool keep_alive,
                       bool upgrade, std::string* out, int64_t length = -1);
  void addDebugHeaders(const http::RequestHead& req, const router::Match& m);
  void runLogPhase();
  // Client bytes, per connection and in the worker's totals (requestSize()/responseSize()).
  void countIn(uint64_t n);
  void countOut(uint64_t n);
  // The connection's nginx-style state in the worker's reading/writing gauges.
  enum class ConnState : uint8_t { kNone, kReading, kWriting, kWaiting };
  void setState(ConnState state);

  Stream clientStream() { return Stream{&client_, tls_ ? &*tls_ : nullptr}; }

  Worker& worker_;
  Socket client_;
  std::optional<SslStream> tls_;  // TLS listener: wraps client_
  IoBuffer in_;
  http::HeadParser parser_;
  http::RequestHead req_;
  http::ResponseHead resp_;
  router::MatchScratch scratch_;
  std::string peer_ip_;    // the TCP peer (Kong's realip_remote_addr)
  std::string client_ip_;  // after realip (Kong's remote_addr); == peer_ip_ unless trusted
  std::string sni_;
  std::string out_;          // client response heads
  std::string up_head_;      // the upstream request head
  std::string staging_;      // re-encoded chunk data, response direction
  std::string req_staging_;  // re-encoded chunk data, request direction
  std::string req_body_;     // a request body read for a plugin (RequestPlan::body_collected)
  std::string resp_buffered_;  // a response body held for plugins (bufferResponseBody)
  std::string resp_head_;      // the upstream head resp_ views while its body is held
  size_t access_next_ = 0;   // runAccessPhase(): the chain position to resume at
  std::vector<uint16_t> access_positions_;  // runAccessPhase(): priority ranks (reordered)
  std::string resp_extra_;   // "Name: value\r\n" lines added to the client response
  std::string up_extra_;     // "Name: value\r\n" lines added to the upstream request
  Deadline dl_;              // main flow
  Deadline aux_dl_;          // concurrent body pump / relay direction
  uint16_t server_port_ = 0;
  std::string server_addr_;  // the local address the client connected to
  uint64_t serial_ = 0;      // this connection's number in its worker
  bool peer_trusted_ = false;
  bool idle_ = false;
  bool client_http10_ = false;
  uint32_t requests_ = 0;
  // Plugins of the current request (empty when the snapshot has none).
  std::vector<PluginPtr> plugins_;
  // After an access walk in dynamic order: plugins_ back into priority order.
  void restorePriorityOrder(const std::vector<uint16_t>& positions);
  // Objects the rewrite phase created, by instance; the access walk takes them over.
  std::vector<std::pair<const PluginInstance*, PluginPtr>> rewritten_;
  std::unique_ptr<Context> context_;  // created on the first request that has plugins
  std::shared_ptr<WakeState> wake_;    // the parked request's Waker (kWait), else null
  uint32_t wake_timeout_ms_ = 0;
  std::unique_ptr<Timer> wake_timer_;  // created on the first park
  SnapshotConstSharedPtr snap_;  // the current request's snapshot (kept until its log phase)
  int status_ = 0;               // the current request's response status, for onLog
  RequestContext::Source source_ = RequestContext::Source::kNone;  // of status_, for onLog
  uint64_t client_in_ = 0;       // bytes read from the client on this connection
  uint64_t client_out_ = 0;      // bytes written to it
  uint64_t req_in_start_ = 0;    // client_in_ offset where the current request's head began
  uint64_t req_out_start_ = 0;   // client_out_ when the current request began
  uint32_t req_head_bytes_ = 0;
  ConnState state_ = ConnState::kNone;
  uint64_t req_body_limit_ = 0;  // set by a plugin (request-size-limiting); 0 = none
  // Plugins of the current request that want the response body (onResponseBody), in order.
  std::vector<Plugin*> body_plugins_;
  // Hands a piece of the response body to body_plugins_.
  void runBodyPhase(std::string_view data, bool end_of_body);
  balancer::Endpoint ep_;        // the current attempt's address (data_plane/balancer)
  // Vitals of the current request (worker_.vitals() set): what it matched and its timings.
  struct VitalsMarks {
    const config::v1::Route* route = nullptr;
    const config::v1::Service* service = nullptr;
    uint64_t start_ms = 0;
    uint64_t upstream_start_ms = 0;
    int64_t upstream_ms = -1;
  };
  VitalsMarks vit_;
  void recordVitals();
};

Task<void> runSession(std::unique_ptr<Session> session);

}  // namespace portico::dp
