// One client connection on a worker (internal to data_plane/proxy): reads requests (pipelined
// ones in order), routes each against the snapshot current when it arrived, forwards it to
// the service over a pooled upstream connection and streams the response back.
#pragma once

#include <utility>  // Boost 1.74 asio/awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>

#include <string>

#include "common/http/http_parser.h"
#include "data_plane/proxy/worker.h"
#include "data_plane/router/router.h"

namespace portico::dp {

class Session {
 public:
  Session(Worker& worker, Socket socket);
  ~Session();

  // The connection's whole life; returns when it is closed.
  Task<void> run();

  // Called by the worker's tick: cancels the pending operation whose deadline passed.
  void checkDeadline(uint64_t now_ms);
  // Called by the worker when draining: closes the connection if it is between requests.
  void closeIfIdle();

  Session* prev = nullptr;  // worker's intrusive list
  Session* next = nullptr;

 private:
  enum class Pump : uint8_t {
    kOk, kSrcClosed, kSrcError, kSrcTimeout, kDstError, kDstTimeout, kBadFraming
  };
  struct Outcome {
    bool keep_client = false;
  };

  Task<Outcome> handle(const http::RequestHead& req);
  Task<void> sendLocal(int status, std::string_view message, bool keep_alive,
                       std::string_view extra_headers = {});
  Task<Pump> pump(Socket& src, IoBuffer& in, uint32_t src_timeout_ms, Socket& dst, uint32_t dst_timeout_ms, http::BodyKind kind,
                             uint64_t length, bool chunk_out, std::string_view head,
                             bool* src_eof);
  Task<bool> connect(UpstreamConn& conn, const ServiceTarget& target, bool* timed_out);
  void buildUpstreamHead(const http::RequestHead& req, const router::Match& m,
                         const ServiceTarget& target, std::string* out);
  void buildClientHead(const http::ResponseHead& resp, bool chunk_out, bool keep_alive,
                       std::string* out);

  void arm(Socket* sock, uint32_t timeout_ms) {
    watch_socket_ = sock;
    deadline_ms_ = nowMs() + timeout_ms;
    fired_ = false;
  }
  void disarm() { deadline_ms_ = 0; }

  Worker& worker_;
  Socket client_;
  IoBuffer in_;
  http::HeadParser parser_;
  http::RequestHead req_;
  http::ResponseHead resp_;
  router::MatchScratch scratch_;
  std::string client_ip_;
  std::string out_;      // heads being written (upstream request, client response)
  std::string staging_;  // re-encoded chunk data
  uint64_t deadline_ms_ = 0;
  Socket* watch_socket_ = nullptr;
  bool fired_ = false;
  bool idle_ = false;
  bool client_http10_ = false;
  uint32_t requests_ = 0;
};

Task<void> runSession(std::unique_ptr<Session> session);

}  // namespace portico::dp
