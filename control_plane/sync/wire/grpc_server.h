// GrpcServer: a small gRPC server transport (HTTP/2 over TCP, plain text or TLS with ALPN
// "h2") for one bidirectional-streaming method with thousands of long-lived, mostly idle
// calls: the control plane's ConfigSync streams.
//
// Why not gRPC C-core's server: gRPC 1.51 holds ~31 KB per idle connection (an 11.7 KB call
// arena, an 8 KiB read buffer kept between reads, 4 KB of transport, ...) and hands every
// completion between two poller threads; the goal is ≤ 16 KB per idle stream and a
// CP cost per extra DP that barely registers (measured in tests/bench/RESULTS.md, "Config
// sync"). Here an idle connection holds a socket, an HPACK table and a few hundred bytes of
// state; reads go through one buffer per worker thread; a message shared by many calls (one
// encoded config chunk) is written from the same bytes to every socket. DPs keep using
// grpc++ as clients, so the wire stays standard gRPC.
//
// What is implemented (RFC 9113 and gRPC's PROTOCOL-HTTP2): the connection preface,
// SETTINGS, flow control in both directions, PING (answered, and sent as keepalive),
// GOAWAY, RST_STREAM, HEADERS + CONTINUATION (HPACK, wire/hpack.h), DATA with gRPC's
// length-prefixed messages (uncompressed only), trailers-only responses, and TLS 1.2/1.3
// with client certificates. Server push and priorities are not (a gRPC server needs neither).
//
// Threading: `workers` io threads, each owning its connections; every callback of a call
// runs on its connection's thread, one at a time. ServerCall::write/finish may be called
// from any thread; they never call back synchronously (so a caller may hold its own locks).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace portico::cp::wire {

// Bytes of one serialized message. Shared: every call sending the same config chunk holds
// the same string (the aliasing shared_ptr keeps the encoded snapshot alive).
using SharedBytes = std::shared_ptr<const std::string>;

// The end of a call: grpc-status (google.rpc.Code), grpc-message and extra trailers.
struct GrpcStatus {
  int code = 0;
  std::string message;
  std::vector<std::pair<std::string, std::string>> trailers;
};

// What the call's owner learns when the call opens.
struct CallInfo {
  std::string peer;           // gRPC's form: "ipv4:10.0.0.1:5000", "ipv6:[::1]:5000"
  std::string peer_cert_pem;  // TLS: the client's certificate (PEM); empty in plain text
  std::string path;           // the method called, e.g. "/portico.sync.v1.ConfigSync/Sync"
  // Request headers that are not pseudo-headers, lower-case names, in arrival order.
  std::vector<std::pair<std::string, std::string>> metadata;

  // The first value of header `name` (lower case), or nullptr.
  const std::string* header(std::string_view name) const;
};

class ServerCall {
 public:
  virtual ~ServerCall() = default;
  // Queues one message. At most one write may be outstanding: the next one after
  // CallHandler::onWriteDone. Thread-safe; ignored after finish().
  virtual void write(SharedBytes message) = 0;
  // Ends the call with `status` once the outstanding write (if any) is out; then onDone.
  // Thread-safe; only the first call counts.
  virtual void finish(GrpcStatus status) = 0;
};

// Implemented by the call's owner. Each callback runs on the call's io thread, never
// concurrently with another callback of the same call.
class CallHandler {
 public:
  virtual ~CallHandler() = default;
  // One whole request message.
  virtual void onMessage(std::string_view message) = 0;
  // No more messages: the client half-closed, reset the stream, or the connection is gone.
  // The handler should finish() (a reset or lost call then ends at once). Called once.
  virtual void onReadsDone() = 0;
  // The outstanding write went to the socket (ok), or never will (!ok: the call is broken).
  virtual void onWriteDone(bool ok) = 0;
  // The call is over (after finish()); the ServerCall must not be used any more. Last
  // callback, exactly once; the handler may delete itself here.
  virtual void onDone() = 0;
};

enum class ClientCertMode {
  kNone,           // plain text, or TLS without client certificates
  kRequireAny,     // a certificate is required; see ServerOptions::pinned_client_cert_sha256
  kRequireVerified // a certificate verified against ca_pem is required
};

struct ServerOptions {
  std::string listen_address = "0.0.0.0:8005";  // host:port; port 0 picks a free one
  // TLS when cert_pem is set (ALPN h2 is selected); plain text (h2c) otherwise.
  std::string cert_pem, key_pem, ca_pem;
  ClientCertMode client_cert = ClientCertMode::kNone;
  // kRequireAny: when set (lower-case hex SHA-256 of the DER certificate), the client's
  // certificate must be exactly this one, checked inside the TLS handshake: a client with
  // any other certificate fails the handshake before one HTTP/2 byte of it is parsed.
  std::string pinned_client_cert_sha256;
  // kRequireVerified: a client may also come without a certificate (one it sends is still
  // verified); the call's owner decides what else admits it (CallInfo.peer_cert_pem empty).
  bool client_cert_optional = false;
  uint32_t workers = 1;  // io threads
  uint32_t max_receive_message_bytes = 4u << 20;
  uint32_t max_concurrent_streams = 16;  // per connection
  // Streams a connection may open per second, however short-lived (HTTP/2 "rapid reset",
  // CVE-2023-44487: open and cancel in a loop, never above the concurrency limit). Past it
  // the connection gets GOAWAY ENHANCE_YOUR_CALM. A DP opens one stream per connection.
  uint32_t max_streams_per_second = 100;
  // Server keepalive: a PING after this long without any frame from the client; the
  // connection is closed if it is not answered in keepalive_timeout_ms.
  uint32_t keepalive_time_ms = 30000;
  uint32_t keepalive_timeout_ms = 10000;
  // A connection that has not opened its first call within this long is closed (slow or
  // silent clients, failed handshakes).
  uint32_t handshake_timeout_ms = 10000;
  // Connections that have not opened a call yet (TLS handshake, preface, first HEADERS) are
  // unauthenticated, and a TLS one holds ~47 KB: 9,000 half-sent ClientHellos took the CP
  // to 440 MB. Past these caps a new connection is closed at accept (a DP backs off and
  // retries); once a call is open the connection no longer counts.
  uint32_t max_pending_connections = 1024;
  uint32_t max_pending_connections_per_client = 128;  // per client IP address
};

struct ServerStats {
  uint64_t connections_active = 0;
  uint64_t connections_total = 0;
  uint64_t calls_active = 0;
  uint64_t handshake_failures = 0;  // TLS handshakes refused (logged with the reason)
  uint64_t protocol_errors = 0;     // connections closed with an HTTP/2 error
  uint64_t connections_pending = 0;  // accepted, no call opened yet
  uint64_t connections_refused = 0;  // closed at accept by the pending caps
};

class GrpcServer {
 public:
  // Makes the handler of a new call to `path`; never returns nullptr. Runs on the call's io
  // thread. `call` stays valid until the handler's onDone.
  using CallFactory = std::function<CallHandler*(ServerCall* call, CallInfo info)>;
  // The methods served, by path ("/portico.sync.v1.ConfigSync/Sync"); one connection may
  // carry calls to any of them.
  using Methods = std::map<std::string, CallFactory, std::less<>>;

  // Binds, then serves `methods`; other paths are answered UNIMPLEMENTED. kUnavailable if the
  // address cannot be bound, kInvalidArgument if the TLS material is unusable or no method
  // is given.
  static absl::StatusOr<std::unique_ptr<GrpcServer>> start(ServerOptions options,
                                                           Methods methods);
  // One method.
  static absl::StatusOr<std::unique_ptr<GrpcServer>> start(ServerOptions options,
                                                           std::string path,
                                                           CallFactory factory);
  virtual ~GrpcServer() = default;

  virtual int port() const = 0;
  // Stops accepting and sends GOAWAY; calls still open after `grace_ms` have their
  // connections closed (handlers see onReadsDone / onWriteDone(false), and onDone once they
  // finish). Returns when every call is done (or 5 s later) and the threads are joined.
  // Idempotent; the destructor calls it.
  virtual void shutdown(uint32_t grace_ms = 2000) = 0;
  virtual ServerStats stats() const = 0;
};

}  // namespace portico::cp::wire
