// The gRPC server's internals, shared by its parts: the per-worker state, the state every
// connection reads (ServerCore), one Call per stream (gRPC message framing, call.cc) and one
// Connection per TCP connection (TLS and socket I/O in connection_io.cc, HTTP/2 frames, flow
// control and streams in h2_connection.cc). grpc_server.cc runs the listener and workers.
// Internal to wire/: include grpc_server.h instead.
#pragma once

#include <openssl/ssl.h>
#include <malloc.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>  // Boost 1.74 asio headers use std::exchange without it
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "control_plane/sync/wire/grpc_server.h"
#include "control_plane/sync/wire/h2_frame.h"
#include "control_plane/sync/wire/hpack.h"
#include "control_plane/sync/wire/tls_context.h"

namespace portico::cp::wire::internal {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

constexpr char kLog[] = "cluster";
using h2::kPreface;
using h2::kData;
using h2::kHeaders;
using h2::kPriority;
using h2::kRstStream;
using h2::kSettings;
using h2::kPushPromise;
using h2::kPing;
using h2::kGoaway;
using h2::kWindowUpdate;
using h2::kContinuation;
using h2::kFlagEndStream;
using h2::kFlagAck;
using h2::kFlagEndHeaders;
using h2::kFlagPadded;
using h2::kFlagPriority;
using h2::kNoError;
using h2::kProtocolError;
using h2::kFlowControlError;
using h2::kFrameSizeError;
using h2::kRefusedStream;
using h2::kCompressionError;
using h2::kEnhanceYourCalm;
using h2::kSettingEnablePush;
using h2::kSettingMaxConcurrentStreams;
using h2::kSettingInitialWindowSize;
using h2::kSettingMaxFrameSize;
using h2::kSettingMaxHeaderListSize;
using h2::read24;
using h2::read32;
using h2::put32;
using h2::append32;
using h2::putFrameHeader;
using h2::appendFrameHeader;
using h2::frame32;

// What we accept: the default SETTINGS_MAX_FRAME_SIZE (DP messages are small).
constexpr uint32_t kOurMaxFrame = 16384;
// Receive window we grant per stream and per connection. DP messages are ACKs and
// heartbeats (≤ a few KB); a WINDOW_UPDATE is sent once half of it is used.
constexpr uint32_t kRecvWindow = 1u << 20;
constexpr uint32_t kMaxHeaderListBytes = 16384;
constexpr size_t kMaxHeaderBlockBytes = 65536;
// One read buffer per worker thread, shared by its connections (an idle connection holds
// no read buffer at all).
constexpr size_t kReadBufferBytes = 64 * 1024;
constexpr int kMaxIov = 128;
constexpr size_t kTlsWriteChunk = 16384;
// Control frames (PING/SETTINGS ACKs, refusals, headers) queued but not yet written. Real
// clients keep this at a few KB; a client that sends frames needing answers and never reads
// them would grow it without bound (RFC 9113 §10.5), so past this the connection is closed.
constexpr size_t kMaxUnsentControlBytes = 256 * 1024;
// Up-front reservation for a message being assembled: its length prefix is only the client's
// word, so memory beyond this follows the bytes that actually arrive.
constexpr uint32_t kMaxMessageReserve = 64 * 1024;
constexpr int64_t kMaxWindow = 0x7fffffff;

inline int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}


// gRPC's grpc-message encoding: percent-encode bytes outside printable ASCII and '%'.
std::string percentEncode(std::string_view s);

class Connection;
class ServerCore;

// One piece of a connection's output: up to 16 bytes inline (a DATA frame header plus the
// gRPC message prefix) or a slice of shared bytes.
struct OutPiece {
  SharedBytes owner;  // null: the bytes are in `small`
  uint32_t offset = 0;
  uint32_t length = 0;
  uint32_t done_stream = 0;  // the last piece of a message on this stream: report the write
  bool control = false;      // counted in Connection::control_unsent_
  std::array<char, 16> small{};

  const char* data() const { return owner ? owner->data() + offset : small.data() + offset; }
};

// Per worker: its io_context, thread, read buffer and connections.
struct Worker {
  asio::io_context ctx{1};
  std::unique_ptr<asio::executor_work_guard<asio::io_context::executor_type>> guard;
  std::thread thread;
  std::vector<char> read_buffer = std::vector<char>(kReadBufferBytes);
  std::vector<char> tls_scratch = std::vector<char>(kTlsWriteChunk);
  std::unordered_map<Connection*, std::shared_ptr<Connection>> connections;
  std::unique_ptr<asio::steady_timer> sweep;
};

// State every connection reads; lives as long as the server.
class ServerCore {
 public:
  ServerOptions options;
  GrpcServer::Methods methods;
  SslCtxPtr ssl_ctx;
  std::atomic<uint64_t> connections_active{0}, connections_total{0}, calls_active{0},
      handshake_failures{0}, protocol_errors{0}, connections_refused{0};

  // Pending (no call yet) connections, in all and per client address (ServerOptions caps).
  // Taken at accept on worker 0, released on the connection's own worker.
  bool admitPending(const std::string& client) {
    absl::MutexLock lock(&pending_mu);
    uint32_t& mine = pending_by_client[client];
    if (pending_total >= options.max_pending_connections ||
        mine >= options.max_pending_connections_per_client) {
      if (mine == 0) {
        pending_by_client.erase(client);
      }
      return false;
    }
    ++mine;
    ++pending_total;
    pending_peak = std::max(pending_peak, pending_total);
    return true;
  }
  void releasePending(const std::string& client) {
    absl::MutexLock lock(&pending_mu);
    auto it = pending_by_client.find(client);
    if (it != pending_by_client.end() && --it->second == 0) {
      pending_by_client.erase(it);
    }
    --pending_total;
  }
  uint64_t pendingTotal() const {
    absl::MutexLock lock(&pending_mu);
    return pending_total;
  }
  // After a burst of pending connections is over, the memory they held goes back to the OS
  // (glibc keeps freed TLS buffers otherwise). Called by the workers' sweeps.
  void trimAfterBurst() {
    {
      absl::MutexLock lock(&pending_mu);
      if (pending_peak < 256 || pending_total > 16) {
        return;
      }
      pending_peak = pending_total;
    }
    malloc_trim(0);
  }
  mutable absl::Mutex pending_mu;
  absl::flat_hash_map<std::string, uint32_t> pending_by_client ABSL_GUARDED_BY(pending_mu);
  uint32_t pending_total ABSL_GUARDED_BY(pending_mu) = 0;
  uint32_t pending_peak ABSL_GUARDED_BY(pending_mu) = 0;
  // onDone callbacks posted (a call ended by its trailers) that have not returned yet; shutdown
  // waits for them, since a post from an io thread may land behind the stop it posts.
  std::atomic<uint64_t> dones_pending{0};
  std::atomic<bool> stopping{false};
};

// One stream (gRPC call).
class Call final : public ServerCall, public std::enable_shared_from_this<Call> {
 public:
  Call(Worker& worker, uint32_t id, int64_t send_window)
      : worker_(worker), id_(id), send_window_(send_window) {}

  // Interface: ServerCall (any thread)
  void write(SharedBytes message) override;
  void finish(GrpcStatus status) override;

  Worker& worker_;
  const uint32_t id_;
  std::shared_ptr<Connection> conn_;  // cleared when the call is removed from it
  CallHandler* handler_ = nullptr;
  int64_t send_window_;
  uint32_t recv_unacked_ = 0;  // bytes received since our last stream WINDOW_UPDATE

  // Outgoing message being framed: 5-byte prefix + pending_ bytes, pending_off_ of them out.
  SharedBytes pending_;
  size_t pending_off_ = 0;
  bool write_outstanding_ = false;  // between write() and onWriteDone
  bool headers_sent_ = false;
  bool finish_requested_ = false;
  GrpcStatus final_;
  bool local_closed_ = false;   // trailers (or RST) sent; nothing more goes out
  bool remote_closed_ = false;  // END_STREAM or RST from the client, or connection gone
  bool reads_done_sent_ = false;
  bool broken_ = false;         // reset or connection gone: writes fail
  bool done_ = false;           // onDone delivered

  // Incoming message assembly.
  std::array<uint8_t, 5> prefix_{};
  uint32_t prefix_have_ = 0;
  uint32_t msg_len_ = 0;
  std::string msg_;

  void doWrite(SharedBytes message);
  void doFinish(GrpcStatus status);
};

class Connection final : public std::enable_shared_from_this<Connection> {
 public:
  // `client`: the address it counts against in the pending caps (admitted by the caller).
  Connection(ServerCore& core, Worker& worker, tcp::socket socket, std::string client)
      : core_(core), worker_(worker), socket_(std::move(socket)), created_ms_(nowMs()) {
    pending_client_ = std::move(client);
    last_activity_ms_ = created_ms_;
  }
  ~Connection() {
    if (ssl_ != nullptr) {
      SSL_free(ssl_);
    }
  }

  void start();
  void sendGoaway(uint32_t code, std::string_view debug);
  void close(std::string_view why);
  // Worker sweep: keepalive, handshake timeout, graceful close.
  void sweep(int64_t now);
  bool finished() const { return closed_ && calls_.empty(); }

  // For Call (io thread).
  void queueData(Call& call);
  void sendTrailers(Call& call);
  void removeCall(Call& call);
  void flush();
  ServerCore& core() { return core_; }

 private:
  void handshake();
  void onEstablished();
  void waitReadable();
  void onReadable();
  void waitWritable();
  // Parses what arrived; false if the connection was closed.
  bool consume(const char* data, size_t n);
  bool onFrame(uint8_t type, uint8_t flags, uint32_t stream, const uint8_t* p, uint32_t len);
  bool onHeaderBlock(uint32_t stream, bool end_stream);
  bool onData(uint32_t stream, uint8_t flags, const uint8_t* p, uint32_t len);
  bool onSettings(uint8_t flags, const uint8_t* p, uint32_t len);
  bool connectionError(uint32_t code, std::string_view why);
  void refuseStream(uint32_t stream, uint32_t code);
  void respondHeadersOnly(uint32_t stream, std::string block, bool client_done);
  bool deliverData(Call& call, const uint8_t* p, uint32_t len);
  void failCall(Call& call, int code, std::string message);
  // The client will send no more messages: onReadsDone, unless the handler already finished.
  void endReads(Call& call);
  // The stream can carry nothing more (reset, transport failure, connection gone): an
  // outstanding write fails, reads end, and a call already finishing ends now.
  void breakCall(Call& call);
  // Removes a finished call and tells its handler (onDone).
  void endCall(Call& call);
  Call* findCall(uint32_t id);
  void queueControl(std::string bytes);
  void pumpAll();
  void maybeCloseGraceful();
  void noteWritten(size_t n, std::vector<uint32_t>& done);
  std::string peerName() const;

  ServerCore& core_;
  Worker& worker_;
  tcp::socket socket_;
  SSL* ssl_ = nullptr;
  std::string peer_;
  bool established_ = false;  // TLS done (or plain), SETTINGS sent
  bool preface_seen_ = false;
  bool closed_ = false;
  bool reading_ = false;
  bool write_waiting_ = false;
  bool flush_after_read_ = false;  // TLS wanted to read while writing
  bool goaway_sent_ = false;
  bool peer_goaway_ = false;
  bool had_call_ = false;
  // Counted as pending until the first call opens or the connection closes.
  std::string pending_client_;
  bool pending_ = true;
  void leavePending() {
    if (pending_) {
      pending_ = false;
      core_.releasePending(pending_client_);
    }
  }
  bool ping_outstanding_ = false;
  int64_t created_ms_;
  int64_t last_activity_ms_;
  int64_t ping_sent_ms_ = 0;
  size_t tls_retry_len_ = 0;  // an SSL_write to repeat with the same length

  std::string in_;  // an incomplete frame carried to the next read
  std::vector<OutPiece> out_;
  size_t out_head_ = 0;  // first piece not completely written
  size_t control_unsent_ = 0;  // bytes of control pieces in out_ not yet written

  HpackDecoder hpack_;
  std::string header_block_;  // HEADERS + CONTINUATION being collected
  uint32_t header_stream_ = 0;
  bool header_end_stream_ = false;

  uint32_t peer_initial_window_ = 65535;
  uint32_t peer_max_frame_ = 16384;
  int64_t conn_send_window_ = 65535;
  uint32_t conn_recv_unacked_ = 0;
  uint32_t last_stream_id_ = 0;
  int64_t stream_window_start_ms_ = 0;  // the rapid-reset cap's one-second window
  uint32_t streams_in_window_ = 0;
  std::vector<std::shared_ptr<Call>> calls_;
};

}  // namespace portico::cp::wire::internal
