// GrpcServer implementation: listener, workers, one Connection per TCP connection (HTTP/2
// framing, flow control, TLS) and one Call per stream (gRPC message framing). See
// grpc_server.h for why this exists and what it covers.
#include "control_plane/sync/wire/grpc_server.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <signal.h>
#include <sys/socket.h>
#include <malloc.h>
#include <sys/uio.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>
#include <unordered_map>
#include <utility>  // Boost 1.74 asio headers use std::exchange without it

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/logging.h"
#include "control_plane/sync/wire/h2_frame.h"
#include "control_plane/sync/wire/hpack.h"

namespace portico::cp::wire {
namespace {

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

int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// gRPC's grpc-message encoding: percent-encode bytes outside printable ASCII and '%'.
std::string percentEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s.substr(0, 1024)) {
    if (c < 0x20 || c > 0x7e || c == '%') {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

std::string sslErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) {
      out += "; ";
    }
    out += buf;
  }
  return out.empty() ? "unknown TLS error" : out;
}

// Why an SSL_read/SSL_write failed: OpenSSL's error queue, or errno for a socket error (a DP
// that went away shows as EPIPE/ECONNRESET with an empty queue).
std::string tlsFailure(int ssl_error) {
  const int saved_errno = errno;
  if (ssl_error == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
    return saved_errno != 0 ? std::strerror(saved_errno) : "connection closed by the peer";
  }
  return sslErrors();
}

struct SslCtxDeleter {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxDeleter>;

absl::StatusOr<SslCtxPtr> makeSslCtx(const ServerOptions& o) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (ctx == nullptr) {
    return absl::InternalError("SSL_CTX_new: " + sslErrors());
  }
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET |
                                     SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_num_tickets(ctx.get(), 0);
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  // RELEASE_BUFFERS: an idle connection gives its TLS record buffers back (~34 KB each).
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                                  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // Certificate chain and key.
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(o.cert_pem.data(), static_cast<int>(o.cert_pem.size())), &BIO_free);
  X509* leaf = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
  if (leaf == nullptr || SSL_CTX_use_certificate(ctx.get(), leaf) != 1) {
    X509_free(leaf);
    return absl::InvalidArgumentError("cluster certificate: " + sslErrors());
  }
  X509_free(leaf);
  while (X509* extra = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    if (SSL_CTX_add_extra_chain_cert(ctx.get(), extra) != 1) {  // takes ownership on success
      X509_free(extra);
      return absl::InvalidArgumentError("cluster certificate chain: " + sslErrors());
    }
  }
  ERR_clear_error();  // the loop above ends on a "no start line" error
  std::unique_ptr<BIO, decltype(&BIO_free)> kbio(
      BIO_new_mem_buf(o.key_pem.data(), static_cast<int>(o.key_pem.size())), &BIO_free);
  EVP_PKEY* key = PEM_read_bio_PrivateKey(kbio.get(), nullptr, nullptr, nullptr);
  if (key == nullptr || SSL_CTX_use_PrivateKey(ctx.get(), key) != 1) {
    EVP_PKEY_free(key);
    return absl::InvalidArgumentError("cluster key: " + sslErrors());
  }
  EVP_PKEY_free(key);
  if (SSL_CTX_check_private_key(ctx.get()) != 1) {
    return absl::InvalidArgumentError("cluster key does not match the certificate: " +
                                      sslErrors());
  }
  switch (o.client_cert) {
    case ClientCertMode::kNone:
      break;
    case ClientCertMode::kRequireAny:
      // No chain to verify (shared mode: the certificate is self-signed); TLS still proves
      // the client holds the key of what it presents (CertificateVerify). With a pin, what it
      // presents must be that certificate, decided here, in the handshake.
      SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
      SSL_CTX_set_cert_verify_callback(
          ctx.get(),
          [](X509_STORE_CTX* store, void* arg) -> int {
            const std::string& pin = *static_cast<const std::string*>(arg);
            if (pin.empty()) {
              return 1;
            }
            X509* leaf = X509_STORE_CTX_get0_cert(store);
            unsigned char digest[EVP_MAX_MD_SIZE];
            unsigned int len = 0;
            if (leaf == nullptr || X509_digest(leaf, EVP_sha256(), digest, &len) != 1) {
              return 0;
            }
            static constexpr char kHex[] = "0123456789abcdef";
            std::string hex;
            for (unsigned int i = 0; i < len; ++i) {
              hex.push_back(kHex[digest[i] >> 4]);
              hex.push_back(kHex[digest[i] & 0xf]);
            }
            const bool same =
                hex.size() == pin.size() && CRYPTO_memcmp(hex.data(), pin.data(), pin.size()) == 0;
            if (!same) {
              X509_STORE_CTX_set_error(store, X509_V_ERR_CERT_REJECTED);
            }
            return same ? 1 : 0;
          },
          const_cast<std::string*>(&o.pinned_client_cert_sha256));
      break;
    case ClientCertMode::kRequireVerified: {
      X509_STORE* store = SSL_CTX_get_cert_store(ctx.get());
      std::unique_ptr<BIO, decltype(&BIO_free)> cbio(
          BIO_new_mem_buf(o.ca_pem.data(), static_cast<int>(o.ca_pem.size())), &BIO_free);
      int added = 0;
      while (X509* ca = PEM_read_bio_X509(cbio.get(), nullptr, nullptr, nullptr)) {
        X509_STORE_add_cert(store, ca);
        X509_free(ca);
        ++added;
      }
      ERR_clear_error();
      if (added == 0) {
        return absl::InvalidArgumentError("cluster CA: no certificate found");
      }
      SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
      break;
    }
  }
  // gRPC clients require ALPN "h2".
  SSL_CTX_set_alpn_select_cb(
      ctx.get(),
      [](SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
         unsigned int inlen, void*) -> int {
        static const unsigned char kH2[] = {2, 'h', '2'};
        unsigned char* selected = nullptr;
        if (SSL_select_next_proto(&selected, outlen, kH2, sizeof(kH2), in, inlen) !=
            OPENSSL_NPN_NEGOTIATED) {
          return SSL_TLSEXT_ERR_ALERT_FATAL;
        }
        *out = selected;
        return SSL_TLSEXT_ERR_OK;
      },
      nullptr);
  return ctx;
}

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
  std::string path;
  GrpcServer::CallFactory factory;
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

// ---------------------------------------------------------------------------------------------
// Call

void Call::write(SharedBytes message) {
  asio::post(worker_.ctx, [self = shared_from_this(), m = std::move(message)]() mutable {
    self->doWrite(std::move(m));
  });
}

void Call::finish(GrpcStatus status) {
  asio::post(worker_.ctx, [self = shared_from_this(), s = std::move(status)]() mutable {
    self->doFinish(std::move(s));
  });
}

void Call::doWrite(SharedBytes message) {
  if (done_ || finish_requested_) {
    return;
  }
  if (broken_ || local_closed_ || conn_ == nullptr) {
    handler_->onWriteDone(false);
    return;
  }
  write_outstanding_ = true;
  pending_ = std::move(message);
  pending_off_ = 0;
  std::shared_ptr<Connection> conn = conn_;
  conn->queueData(*this);
  conn->flush();
}

void Call::doFinish(GrpcStatus status) {
  if (done_ || finish_requested_) {
    return;
  }
  finish_requested_ = true;
  final_ = std::move(status);
  std::shared_ptr<Connection> conn = conn_;
  if (broken_ || local_closed_ || conn == nullptr) {
    // Nothing can be sent (or the transport already answered): the call is over.
    if (conn != nullptr) {
      conn->removeCall(*this);
    }
    done_ = true;
    handler_->onDone();
    return;
  }
  if (pending_ == nullptr) {
    conn->sendTrailers(*this);
    conn->flush();
  }
  // else: trailers follow once the message is out (Connection::noteWritten).
}

// ---------------------------------------------------------------------------------------------
// Connection: setup and I/O

std::string Connection::peerName() const {
  boost::system::error_code ec;
  tcp::endpoint ep = socket_.remote_endpoint(ec);
  if (ec) {
    return "unknown";
  }
  if (ep.address().is_v4()) {
    return absl::StrCat("ipv4:", ep.address().to_string(), ":", ep.port());
  }
  return absl::StrCat("ipv6:[", ep.address().to_string(), "]:", ep.port());
}

void Connection::start() {
  peer_ = peerName();
  boost::system::error_code ec;
  socket_.non_blocking(true, ec);
  socket_.set_option(tcp::no_delay(true), ec);
  if (core_.ssl_ctx != nullptr) {
    ssl_ = SSL_new(core_.ssl_ctx.get());
    if (ssl_ == nullptr || SSL_set_fd(ssl_, socket_.native_handle()) != 1) {
      close("cannot create a TLS session");
      return;
    }
    SSL_set_accept_state(ssl_);
    handshake();
    return;
  }
  onEstablished();
}

void Connection::handshake() {
  if (closed_) {
    return;
  }
  ERR_clear_error();
  const int r = SSL_do_handshake(ssl_);
  if (r == 1) {
    onEstablished();
    return;
  }
  const int err = SSL_get_error(ssl_, r);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
    socket_.async_wait(err == SSL_ERROR_WANT_READ ? tcp::socket::wait_read
                                                  : tcp::socket::wait_write,
                       [self = shared_from_this()](const boost::system::error_code& ec) {
                         if (ec) {
                           self->close("");
                           return;
                         }
                         self->handshake();
                       });
    return;
  }
  std::string why = sslErrors();
  const long verify = SSL_get_verify_result(ssl_);
  if (verify == X509_V_ERR_CERT_REJECTED && !core_.options.pinned_client_cert_sha256.empty()) {
    why = absl::StrCat("client certificate is not the cluster certificate (sha256 ",
                       core_.options.pinned_client_cert_sha256.substr(0, 16),
                       "...; --cluster_mtls=shared pins it)");
  } else if (verify != X509_V_OK) {
    why = absl::StrCat("client certificate rejected: ", X509_verify_cert_error_string(verify),
                       " (", why, ")");
  }
  core_.handshake_failures++;
  LOG_WARN(kLog, "refusing data plane %s: TLS handshake failed: %s", peer_, why);
  close("");
}

void Connection::onEstablished() {
  established_ = true;
  // Our SETTINGS, then the connection window raised to kRecvWindow.
  std::string s;
  appendFrameHeader(s, 18, kSettings, 0, 0);
  auto setting = [&s](uint16_t id, uint32_t v) {
    s.push_back(static_cast<char>(id >> 8));
    s.push_back(static_cast<char>(id));
    append32(s, v);
  };
  setting(kSettingMaxConcurrentStreams, core_.options.max_concurrent_streams);
  setting(kSettingInitialWindowSize, kRecvWindow);
  setting(kSettingMaxHeaderListSize, kMaxHeaderListBytes);
  s += frame32(kWindowUpdate, 0, kRecvWindow - 65535);
  queueControl(std::move(s));
  flush();
  onReadable();  // the client may have sent its preface with the handshake
}

void Connection::waitReadable() {
  if (reading_ || closed_) {
    return;
  }
  reading_ = true;
  socket_.async_wait(tcp::socket::wait_read,
                     [self = shared_from_this()](const boost::system::error_code& ec) {
                       self->reading_ = false;
                       if (ec) {
                         self->close("");
                         return;
                       }
                       self->onReadable();
                     });
}

void Connection::waitWritable() {
  if (write_waiting_ || closed_) {
    return;
  }
  write_waiting_ = true;
  socket_.async_wait(tcp::socket::wait_write,
                     [self = shared_from_this()](const boost::system::error_code& ec) {
                       self->write_waiting_ = false;
                       if (ec) {
                         self->close("");
                         return;
                       }
                       self->flush();
                       if (self->ssl_ != nullptr && self->tls_retry_len_ == 0) {
                         // A TLS read may have been waiting for this (SSL_ERROR_WANT_WRITE).
                         self->onReadable();
                       }
                     });
}

void Connection::onReadable() {
  if (closed_) {
    return;
  }
  // The socket is edge-triggered: read until it would block.
  char* buf = worker_.read_buffer.data();
  for (int rounds = 0; rounds < 64; ++rounds) {
    size_t n = 0;
    if (ssl_ != nullptr) {
      ERR_clear_error();
      const int r = SSL_read(ssl_, buf, static_cast<int>(kReadBufferBytes));
      if (r <= 0) {
        const int err = SSL_get_error(ssl_, r);
        if (err == SSL_ERROR_WANT_READ) {
          break;
        }
        if (err == SSL_ERROR_WANT_WRITE) {
          waitWritable();
          return;
        }
        close(err == SSL_ERROR_ZERO_RETURN ? "" : "TLS read failed: " + tlsFailure(err));
        return;
      }
      n = static_cast<size_t>(r);
    } else {
      const ssize_t r = ::recv(socket_.native_handle(), buf, kReadBufferBytes, 0);
      if (r < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          break;
        }
        if (errno == EINTR) {
          continue;
        }
        close("");
        return;
      }
      if (r == 0) {
        close("");
        return;
      }
      n = static_cast<size_t>(r);
    }
    last_activity_ms_ = nowMs();
    if (!consume(buf, n)) {
      return;
    }
    if (closed_) {
      return;
    }
  }
  flush();
  if (flush_after_read_) {
    flush_after_read_ = false;
    flush();
  }
  waitReadable();
}

void Connection::queueControl(std::string bytes) {
  OutPiece piece;
  piece.length = static_cast<uint32_t>(bytes.size());
  piece.control = true;
  control_unsent_ += bytes.size();
  piece.owner = std::make_shared<const std::string>(std::move(bytes));
  out_.push_back(std::move(piece));
}

void Connection::noteWritten(size_t n, std::vector<uint32_t>& done) {
  while (n > 0 && out_head_ < out_.size()) {
    OutPiece& p = out_[out_head_];
    const size_t take = std::min<size_t>(n, p.length);
    p.offset += static_cast<uint32_t>(take);
    p.length -= static_cast<uint32_t>(take);
    n -= take;
    if (p.control) {
      control_unsent_ -= take;
    }
    if (p.length == 0) {
      if (p.done_stream != 0) {
        done.push_back(p.done_stream);
      }
      p.owner.reset();
      ++out_head_;
    }
  }
  if (out_head_ == out_.size()) {
    // Idle connections keep no output buffer.
    std::vector<OutPiece>().swap(out_);
    out_head_ = 0;
  }
}

void Connection::flush() {
  if (closed_ || !established_ || write_waiting_) {
    return;
  }
  std::vector<uint32_t> done;
  while (out_head_ < out_.size()) {
    ssize_t written = 0;
    if (ssl_ != nullptr) {
      // Coalesce into records of up to 16 KB; a retried write repeats the same length.
      char* scratch = worker_.tls_scratch.data();
      size_t len = 0;
      const size_t want = tls_retry_len_ != 0 ? tls_retry_len_ : kTlsWriteChunk;
      for (size_t i = out_head_; i < out_.size() && len < want; ++i) {
        const size_t take = std::min<size_t>(want - len, out_[i].length);
        std::memcpy(scratch + len, out_[i].data(), take);
        len += take;
      }
      ERR_clear_error();
      const int r = SSL_write(ssl_, scratch, static_cast<int>(len));
      if (r <= 0) {
        const int err = SSL_get_error(ssl_, r);
        tls_retry_len_ = len;
        if (err == SSL_ERROR_WANT_WRITE) {
          waitWritable();
          break;
        }
        if (err == SSL_ERROR_WANT_READ) {
          flush_after_read_ = true;
          waitReadable();
          break;
        }
        close("TLS write failed: " + tlsFailure(err));
        return;
      }
      tls_retry_len_ = 0;
      written = r;
    } else {
      iovec iov[kMaxIov];
      int count = 0;
      for (size_t i = out_head_; i < out_.size() && count < kMaxIov; ++i) {
        iov[count].iov_base = const_cast<char*>(out_[i].data());
        iov[count].iov_len = out_[i].length;
        ++count;
      }
      msghdr msg{};
      msg.msg_iov = iov;
      msg.msg_iovlen = static_cast<size_t>(count);
      written = ::sendmsg(socket_.native_handle(), &msg, MSG_NOSIGNAL);
      if (written < 0) {
        if (errno == EINTR) {
          continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          waitWritable();
          break;
        }
        close("");
        return;
      }
    }
    noteWritten(static_cast<size_t>(written), done);
  }
  // Report finished messages; each handler's next write arrives by post, never re-entering.
  for (uint32_t id : done) {
    Call* call = findCall(id);
    if (call == nullptr || !call->write_outstanding_) {
      continue;
    }
    call->write_outstanding_ = false;
    call->pending_.reset();
    call->handler_->onWriteDone(true);
    if (call->finish_requested_ && !call->local_closed_) {
      sendTrailers(*call);
    }
  }
  if (!done.empty() && out_head_ < out_.size() && !write_waiting_) {
    flush();  // trailers queued above
  }
  maybeCloseGraceful();
}

// ---------------------------------------------------------------------------------------------
// Connection: HTTP/2 frames

bool Connection::consume(const char* data, size_t n) {
  std::string_view input(data, n);
  if (!in_.empty()) {
    in_.append(data, n);
    input = in_;
  }
  size_t pos = 0;
  if (!preface_seen_) {
    const size_t have = std::min(input.size(), kPreface.size());
    if (input.substr(0, have) != kPreface.substr(0, have)) {
      core_.protocol_errors++;
      LOG_WARN(kLog, "closing cluster connection from %s: not an HTTP/2 (gRPC) client", peer_);
      close("");
      return false;
    }
    if (have < kPreface.size()) {
      if (in_.empty()) {
        in_.assign(input);
      }
      return true;
    }
    preface_seen_ = true;
    pos = kPreface.size();
  }
  while (input.size() - pos >= 9) {
    const auto* h = reinterpret_cast<const uint8_t*>(input.data() + pos);
    const uint32_t len = read24(h);
    if (len > kOurMaxFrame) {
      connectionError(kFrameSizeError, "frame larger than SETTINGS_MAX_FRAME_SIZE");
      return false;
    }
    if (input.size() - pos < 9 + size_t{len}) {
      break;
    }
    const uint8_t type = h[3];
    const uint8_t flags = h[4];
    const uint32_t stream = read32(h + 5) & 0x7fffffff;
    if (!onFrame(type, flags, stream, h + 9, len) || closed_) {
      return false;
    }
    if (control_unsent_ > kMaxUnsentControlBytes) {
      connectionError(kEnhanceYourCalm, "the client does not read the answers to its frames");
      return false;
    }
    pos += 9 + len;
  }
  // Keep an incomplete frame; an idle connection holds no input buffer.
  if (pos == input.size()) {
    std::string().swap(in_);
  } else if (!in_.empty()) {
    in_.erase(0, pos);
  } else {
    in_.assign(input.substr(pos));
  }
  return true;
}

bool Connection::connectionError(uint32_t code, std::string_view why) {
  core_.protocol_errors++;
  LOG_WARN(kLog, "closing cluster connection from %s: HTTP/2 error %d: %s", peer_, code, why);
  sendGoaway(code, why);
  close("");
  return false;
}

Call* Connection::findCall(uint32_t id) {
  for (auto& c : calls_) {
    if (c->id_ == id) {
      return c.get();
    }
  }
  return nullptr;
}

bool Connection::onFrame(uint8_t type, uint8_t flags, uint32_t stream, const uint8_t* p,
                         uint32_t len) {
  if (header_stream_ != 0 && type != kContinuation) {
    return connectionError(kProtocolError, "header block interrupted");
  }
  switch (type) {
    case kData:
      return onData(stream, flags, p, len);
    case kHeaders: {
      if (stream == 0 || (stream % 2) == 0) {
        return connectionError(kProtocolError, "HEADERS on an invalid stream id");
      }
      uint32_t pad = 0;
      size_t off = 0;
      if (flags & kFlagPadded) {
        if (len < 1) {
          return connectionError(kProtocolError, "bad padding");
        }
        pad = p[0];
        off = 1;
      }
      if (flags & kFlagPriority) {
        off += 5;
      }
      if (off + pad > len) {
        return connectionError(kProtocolError, "bad padding");
      }
      header_block_.assign(reinterpret_cast<const char*>(p) + off, len - off - pad);
      header_stream_ = stream;
      header_end_stream_ = (flags & kFlagEndStream) != 0;
      if (flags & kFlagEndHeaders) {
        return onHeaderBlock(stream, header_end_stream_);
      }
      return true;
    }
    case kContinuation: {
      if (header_stream_ == 0 || stream != header_stream_) {
        return connectionError(kProtocolError, "unexpected CONTINUATION");
      }
      if (header_block_.size() + len > kMaxHeaderBlockBytes) {
        return connectionError(kEnhanceYourCalm, "header block too large");
      }
      header_block_.append(reinterpret_cast<const char*>(p), len);
      if (flags & kFlagEndHeaders) {
        return onHeaderBlock(stream, header_end_stream_);
      }
      return true;
    }
    case kPriority:
      if (len != 5) {
        return connectionError(kFrameSizeError, "PRIORITY length");
      }
      return true;
    case kRstStream: {
      if (len != 4 || stream == 0) {
        return connectionError(kProtocolError, "bad RST_STREAM");
      }
      if (Call* call = findCall(stream)) {
        breakCall(*call);
      }
      return true;
    }
    case kSettings:
      return onSettings(flags, p, len);
    case kPushPromise:
      return connectionError(kProtocolError, "PUSH_PROMISE from a client");
    case kPing: {
      if (len != 8 || stream != 0) {
        return connectionError(kFrameSizeError, "bad PING");
      }
      if (flags & kFlagAck) {
        ping_outstanding_ = false;
        return true;
      }
      std::string s;
      appendFrameHeader(s, 8, kPing, kFlagAck, 0);
      s.append(reinterpret_cast<const char*>(p), 8);
      queueControl(std::move(s));
      return true;
    }
    case kGoaway:
      if (len < 8 || stream != 0) {
        return connectionError(kProtocolError, "bad GOAWAY");
      }
      peer_goaway_ = true;
      return true;
    case kWindowUpdate: {
      if (len != 4) {
        return connectionError(kFrameSizeError, "WINDOW_UPDATE length");
      }
      const uint32_t inc = read32(p) & 0x7fffffff;
      if (stream == 0) {
        if (inc == 0) {
          return connectionError(kProtocolError, "WINDOW_UPDATE of 0");
        }
        conn_send_window_ += inc;
        if (conn_send_window_ > kMaxWindow) {
          return connectionError(kFlowControlError, "connection window overflow");
        }
        pumpAll();
        return true;
      }
      if (Call* call = findCall(stream)) {
        if (inc == 0 || call->send_window_ + inc > kMaxWindow) {
          failCall(*call, 13, "flow control error");
          return true;
        }
        call->send_window_ += inc;
        queueData(*call);
      }
      return true;
    }
    default:
      return true;  // unknown frame types are ignored (RFC 9113 §4.1)
  }
}

bool Connection::onSettings(uint8_t flags, const uint8_t* p, uint32_t len) {
  if (flags & kFlagAck) {
    return true;
  }
  if (len % 6 != 0) {
    return connectionError(kFrameSizeError, "SETTINGS length");
  }
  for (uint32_t i = 0; i < len; i += 6) {
    const uint16_t id = static_cast<uint16_t>((p[i] << 8) | p[i + 1]);
    const uint32_t v = read32(p + i + 2);
    if (id == kSettingInitialWindowSize) {  // applies to every open stream (§6.9.2)
      if (v > kMaxWindow) {
        return connectionError(kFlowControlError, "INITIAL_WINDOW_SIZE too large");
      }
      const int64_t delta = int64_t{v} - peer_initial_window_;
      peer_initial_window_ = v;
      for (auto& c : calls_) {
        c->send_window_ += delta;
      }
    } else if (id == kSettingMaxFrameSize) {
      if (v < 16384 || v > 16777215) {
        return connectionError(kProtocolError, "MAX_FRAME_SIZE out of range");
      }
      peer_max_frame_ = v;
    } else if (id == kSettingEnablePush && v > 1) {
      return connectionError(kProtocolError, "ENABLE_PUSH out of range");
    }
  }
  std::string s;
  appendFrameHeader(s, 0, kSettings, kFlagAck, 0);
  queueControl(std::move(s));
  pumpAll();
  return true;
}

void Connection::respondHeadersOnly(uint32_t stream, std::string block, bool client_done) {
  std::string s;
  appendFrameHeader(s, static_cast<uint32_t>(block.size()), kHeaders,
                    kFlagEndHeaders | kFlagEndStream, stream);
  s += block;
  if (!client_done) {
    // The response is complete; the client need not send the rest (RFC 9113 §8.1).
    s += frame32(kRstStream, stream, kNoError);
  }
  queueControl(std::move(s));
}

void Connection::refuseStream(uint32_t stream, uint32_t code) {
  queueControl(frame32(kRstStream, stream, code));
}

bool Connection::onHeaderBlock(uint32_t stream, bool end_stream) {
  header_stream_ = 0;
  std::string block;
  block.swap(header_block_);
  std::string method, path, content_type;
  CallInfo info;
  // Decoded for every block, even one we refuse: the HPACK table must stay in step.
  absl::Status st = hpack_.decode(
      block,
      [&](std::string_view name, std::string_view value) {
        if (name == ":method") {
          method = value;
        } else if (name == ":path") {
          path = value;
        } else if (!name.empty() && name[0] == ':') {
          // :scheme, :authority
        } else {
          if (name == "content-type") {
            content_type = value;
          }
          info.metadata.emplace_back(name, value);
        }
      },
      kMaxHeaderListBytes);
  if (!st.ok()) {
    return connectionError(kCompressionError, std::string(st.message()));
  }
  if (Call* call = findCall(stream)) {
    // Trailers from the client (gRPC clients send none); only END_STREAM matters.
    if (end_stream) {
      call->remote_closed_ = true;
      endReads(*call);
    }
    return true;
  }
  if (stream <= last_stream_id_) {
    return true;  // a stream we closed already
  }
  last_stream_id_ = stream;
  // Every new stream counts, refused or not: the cost is in opening them.
  const int64_t now = nowMs();
  if (now - stream_window_start_ms_ >= 1000) {
    stream_window_start_ms_ = now;
    streams_in_window_ = 0;
  }
  if (++streams_in_window_ > core_.options.max_streams_per_second) {
    return connectionError(kEnhanceYourCalm, "too many streams opened per second");
  }
  if (goaway_sent_ || core_.stopping.load()) {
    refuseStream(stream, kRefusedStream);
    return true;
  }
  if (calls_.size() >= core_.options.max_concurrent_streams) {
    refuseStream(stream, kRefusedStream);
    return true;
  }
  if (method != "POST") {
    refuseStream(stream, kProtocolError);
    return true;
  }
  if (content_type.rfind("application/grpc", 0) != 0) {
    std::string b;
    hpackAppendLiteralIndexedName(b, 8, "415");  // :status
    respondHeadersOnly(stream, std::move(b), end_stream);
    return true;
  }
  if (path != core_.path) {
    std::string b;
    hpackAppendIndexed(b, 8);  // :status 200
    hpackAppendLiteralIndexedName(b, 31, "application/grpc");
    hpackAppendLiteral(b, "grpc-status", "12");
    hpackAppendLiteral(b, "grpc-message", percentEncode("unknown method " + path));
    respondHeadersOnly(stream, std::move(b), end_stream);
    return true;
  }
  auto call = std::make_shared<Call>(worker_, stream, int64_t{peer_initial_window_});
  call->conn_ = shared_from_this();
  calls_.push_back(call);
  had_call_ = true;
  leavePending();
  core_.calls_active++;
  info.peer = peer_;
  if (ssl_ != nullptr) {
    if (X509* cert = SSL_get1_peer_certificate(ssl_)) {
      std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
      if (PEM_write_bio_X509(bio.get(), cert) == 1) {
        char* data = nullptr;
        const long n = BIO_get_mem_data(bio.get(), &data);
        info.peer_cert_pem.assign(data, static_cast<size_t>(n));
      }
      X509_free(cert);
    }
  }
  call->handler_ = core_.factory(call.get(), std::move(info));
  if (end_stream) {
    call->remote_closed_ = true;
    endReads(*call);
  }
  return true;
}

bool Connection::onData(uint32_t stream, uint8_t flags, const uint8_t* p, uint32_t len) {
  if (stream == 0) {
    return connectionError(kProtocolError, "DATA on stream 0");
  }
  if (stream > last_stream_id_) {
    return connectionError(kProtocolError, "DATA on an idle stream");
  }
  // Flow control counts the whole frame, padding included, even for closed streams.
  if (conn_recv_unacked_ + len > kRecvWindow) {
    return connectionError(kFlowControlError, "connection receive window exceeded");
  }
  conn_recv_unacked_ += len;
  if (conn_recv_unacked_ >= kRecvWindow / 2) {
    queueControl(frame32(kWindowUpdate, 0, conn_recv_unacked_));
    conn_recv_unacked_ = 0;
  }
  Call* call = findCall(stream);
  if (call == nullptr || call->remote_closed_) {
    return true;  // closed stream: dropped
  }
  uint32_t pad = 0;
  size_t off = 0;
  if (flags & kFlagPadded) {
    if (len < 1 || uint32_t{p[0]} + 1 > len) {
      return connectionError(kProtocolError, "bad padding");
    }
    pad = p[0];
    off = 1;
  }
  if (call->recv_unacked_ + len > kRecvWindow) {
    failCall(*call, 8, "stream receive window exceeded");
    return true;
  }
  call->recv_unacked_ += len;
  if (call->recv_unacked_ >= kRecvWindow / 2 && !(flags & kFlagEndStream)) {
    queueControl(frame32(kWindowUpdate, stream, call->recv_unacked_));
    call->recv_unacked_ = 0;
  }
  std::shared_ptr<Call> keep = call->shared_from_this();
  if (!deliverData(*call, p + off, static_cast<uint32_t>(len - off - pad))) {
    return true;  // the call failed; the connection lives on
  }
  if (flags & kFlagEndStream) {
    call->remote_closed_ = true;
    if (call->prefix_have_ != 0) {
      failCall(*call, 13, "stream ended inside a message");
      return true;
    }
    endReads(*call);
  }
  return true;
}

bool Connection::deliverData(Call& call, const uint8_t* p, uint32_t len) {
  while (len > 0) {
    if (call.prefix_have_ < 5) {
      const uint32_t take = std::min<uint32_t>(5 - call.prefix_have_, len);
      std::memcpy(call.prefix_.data() + call.prefix_have_, p, take);
      call.prefix_have_ += take;
      p += take;
      len -= take;
      if (call.prefix_have_ < 5) {
        return true;
      }
      if (call.prefix_[0] != 0) {
        failCall(call, 12, "compressed messages are not supported; send identity");
        return false;
      }
      call.msg_len_ = read32(call.prefix_.data() + 1);
      if (call.msg_len_ > core_.options.max_receive_message_bytes) {
        failCall(call, 8,
                 absl::StrCat("message of ", call.msg_len_, " bytes is larger than the limit (",
                              core_.options.max_receive_message_bytes, ")"));
        return false;
      }
      if (call.msg_len_ > 0) {
        continue;
      }
    }
    const uint32_t need = call.msg_len_ - static_cast<uint32_t>(call.msg_.size());
    std::string_view message;
    if (call.msg_.empty() && len >= need) {
      message = std::string_view(reinterpret_cast<const char*>(p), need);  // no copy
    } else {
      const uint32_t take = std::min(need, len);
      if (call.msg_.empty()) {
        call.msg_.reserve(std::min(call.msg_len_, kMaxMessageReserve));
      }
      call.msg_.append(reinterpret_cast<const char*>(p), take);
      if (take < need) {
        return true;
      }
      message = call.msg_;
    }
    p += need;  // need <= len on both paths above
    len -= need;
    call.prefix_have_ = 0;
    if (!call.finish_requested_ && !call.done_ && !call.broken_) {
      call.handler_->onMessage(message);
    }
    std::string().swap(call.msg_);
  }
  return true;
}

// A stream-level failure found by the transport: the client gets the status now, the handler
// sees its reads end and its next finish() ends the call.
void Connection::failCall(Call& call, int code, std::string message) {
  std::shared_ptr<Call> keep = call.shared_from_this();
  LOG_WARN(kLog, "ending call from %s: %s", peer_, message);
  if (!call.local_closed_) {
    std::string b;
    if (!call.headers_sent_) {
      hpackAppendIndexed(b, 8);
      hpackAppendLiteralIndexedName(b, 31, "application/grpc");
    }
    hpackAppendLiteral(b, "grpc-status", std::to_string(code));
    hpackAppendLiteral(b, "grpc-message", percentEncode(message));
    respondHeadersOnly(call.id_, std::move(b), call.remote_closed_);
  }
  breakCall(call);
}

void Connection::endReads(Call& call) {
  if (!call.reads_done_sent_ && !call.finish_requested_ && !call.done_) {
    call.reads_done_sent_ = true;
    call.handler_->onReadsDone();
  }
}

void Connection::breakCall(Call& call) {
  std::shared_ptr<Call> keep = call.shared_from_this();
  call.broken_ = true;
  call.remote_closed_ = true;
  call.local_closed_ = true;
  if (call.write_outstanding_) {
    call.write_outstanding_ = false;
    call.pending_.reset();
    call.handler_->onWriteDone(false);
  }
  endReads(call);
  if (call.finish_requested_ && !call.done_) {
    endCall(call);
  }
}

void Connection::endCall(Call& call) {
  removeCall(call);
  call.done_ = true;
  call.handler_->onDone();
}

void Connection::queueData(Call& call) {
  if (closed_ || call.local_closed_) {
    return;
  }
  if (!call.headers_sent_) {
    std::string b;
    hpackAppendIndexed(b, 8);  // :status 200
    hpackAppendLiteralIndexedName(b, 31, "application/grpc");
    std::string s;
    appendFrameHeader(s, static_cast<uint32_t>(b.size()), kHeaders, kFlagEndHeaders, call.id_);
    s += b;
    queueControl(std::move(s));
    call.headers_sent_ = true;
  }
  if (call.pending_ == nullptr) {
    return;
  }
  const size_t total = 5 + call.pending_->size();
  while (call.pending_off_ < total) {
    const int64_t window = std::min(conn_send_window_, call.send_window_);
    if (window <= 0) {
      return;  // resumed by WINDOW_UPDATE / SETTINGS
    }
    const size_t n = std::min<size_t>({total - call.pending_off_, peer_max_frame_,
                                       static_cast<size_t>(window)});
    const bool last = call.pending_off_ + n == total;
    OutPiece head;
    char* h = head.small.data();
    putFrameHeader(h, static_cast<uint32_t>(n), kData, 0, call.id_);
    head.length = 9;
    size_t off = call.pending_off_;
    size_t left = n;
    if (off < 5) {  // the gRPC prefix: uncompressed, 4-byte big-endian length
      char prefix[5];
      prefix[0] = 0;
      put32(prefix + 1, static_cast<uint32_t>(call.pending_->size()));
      const size_t take = std::min<size_t>(5 - off, left);
      std::memcpy(h + 9, prefix + off, take);
      head.length += static_cast<uint32_t>(take);
      off += take;
      left -= take;
    }
    out_.push_back(std::move(head));
    if (left > 0) {
      OutPiece body;
      body.owner = call.pending_;
      body.offset = static_cast<uint32_t>(off - 5);
      body.length = static_cast<uint32_t>(left);
      out_.push_back(std::move(body));
    }
    if (last) {
      out_.back().done_stream = call.id_;
    }
    call.pending_off_ += n;
    conn_send_window_ -= static_cast<int64_t>(n);
    call.send_window_ -= static_cast<int64_t>(n);
  }
}

void Connection::pumpAll() {
  for (auto& c : calls_) {
    if (c->pending_ != nullptr && c->pending_off_ < 5 + c->pending_->size()) {
      queueData(*c);
    }
  }
}

void Connection::sendTrailers(Call& call) {
  std::string b;
  if (!call.headers_sent_) {
    hpackAppendIndexed(b, 8);
    hpackAppendLiteralIndexedName(b, 31, "application/grpc");
  }
  hpackAppendLiteral(b, "grpc-status", std::to_string(call.final_.code));
  if (!call.final_.message.empty()) {
    hpackAppendLiteral(b, "grpc-message", percentEncode(call.final_.message));
  }
  for (const auto& [k, v] : call.final_.trailers) {
    hpackAppendLiteral(b, k, v);
  }
  respondHeadersOnly(call.id_, std::move(b), call.remote_closed_);
  call.headers_sent_ = true;
  call.local_closed_ = true;
  // The call is over for the handler; the bytes are queued and go out in order. Counted as
  // pending before it stops counting as active: shutdown must never see it as neither.
  core_.dones_pending++;
  removeCall(call);
  call.done_ = true;
  std::shared_ptr<Call> keep = call.shared_from_this();
  asio::post(worker_.ctx, [keep, core = &core_] {
    keep->handler_->onDone();
    core->dones_pending--;
  });
}

void Connection::removeCall(Call& call) {
  for (auto it = calls_.begin(); it != calls_.end(); ++it) {
    if (it->get() == &call) {
      std::shared_ptr<Call> keep = *it;
      calls_.erase(it);
      core_.calls_active--;
      keep->conn_.reset();  // may destroy this connection's last owner but one: see callers
      break;
    }
  }
  if (calls_.empty()) {
    std::vector<std::shared_ptr<Call>>().swap(calls_);
  }
}

void Connection::sendGoaway(uint32_t code, std::string_view debug) {
  if (goaway_sent_ || closed_) {
    return;
  }
  goaway_sent_ = true;
  const std::string_view d = debug.substr(0, 256);
  std::string s;
  appendFrameHeader(s, static_cast<uint32_t>(8 + d.size()), kGoaway, 0, 0);
  append32(s, last_stream_id_);
  append32(s, code);
  s.append(d);
  queueControl(std::move(s));
  flush();
}

void Connection::maybeCloseGraceful() {
  if (!closed_ && (goaway_sent_ || peer_goaway_) && calls_.empty() && out_head_ == out_.size()) {
    close("");
  }
}

void Connection::close(std::string_view why) {
  if (closed_) {
    return;
  }
  if (!why.empty()) {
    LOG_INFO(kLog, "closing cluster connection from %s: %s", peer_, why);
  }
  closed_ = true;
  leavePending();
  std::shared_ptr<Connection> self = shared_from_this();
  boost::system::error_code ec;
  socket_.shutdown(tcp::socket::shutdown_both, ec);
  socket_.close(ec);
  std::vector<OutPiece>().swap(out_);
  out_head_ = 0;
  control_unsent_ = 0;
  std::string().swap(in_);
  // Every open call learns its connection is gone; those already finishing end now.
  std::vector<std::shared_ptr<Call>> calls = calls_;
  for (auto& call : calls) {
    breakCall(*call);
  }
}

void Connection::sweep(int64_t now) {
  if (closed_) {
    return;
  }
  const ServerOptions& o = core_.options;
  if (!had_call_ && now - created_ms_ > o.handshake_timeout_ms) {
    close(established_ ? "no call opened in time" : "TLS handshake did not complete in time");
    return;
  }
  if (!established_) {
    return;
  }
  if (ping_outstanding_) {
    if (now - ping_sent_ms_ > o.keepalive_timeout_ms) {
      close("keepalive PING not answered");
    }
    return;
  }
  if (now - last_activity_ms_ > o.keepalive_time_ms) {
    std::string s;
    appendFrameHeader(s, 8, kPing, 0, 0);
    s.append(8, '\0');
    queueControl(std::move(s));
    ping_outstanding_ = true;
    ping_sent_ms_ = now;
    flush();
  }
}

// ---------------------------------------------------------------------------------------------
// Server

class GrpcServerImpl final : public GrpcServer {
 public:
  explicit GrpcServerImpl(std::unique_ptr<ServerCore> core) : core_(std::move(core)) {}
  ~GrpcServerImpl() override { shutdown(0); }

  absl::Status init();
  int port() const override { return port_; }
  void shutdown(uint32_t grace_ms) override;
  ServerStats stats() const override {
    ServerStats s;
    s.connections_active = core_->connections_active.load();
    s.connections_total = core_->connections_total.load();
    s.calls_active = core_->calls_active.load();
    s.handshake_failures = core_->handshake_failures.load();
    s.protocol_errors = core_->protocol_errors.load();
    s.connections_pending = core_->pendingTotal();
    s.connections_refused = core_->connections_refused.load();
    return s;
  }

 private:
  void accept();
  void scheduleSweep(Worker& w);
  void forEachConnection(const std::function<void(Connection&)>& fn);
  void reap(Worker& w);

  std::unique_ptr<ServerCore> core_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<tcp::acceptor> acceptor_;
  std::unique_ptr<asio::steady_timer> accept_retry_;  // on workers_[0], like the acceptor
  size_t next_worker_ = 0;
  int port_ = 0;
  bool shut_down_ = false;
};

absl::Status GrpcServerImpl::init() {
  const ServerOptions& o = core_->options;
  const size_t colon = o.listen_address.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError("cluster listen address must be host:port: " +
                                      o.listen_address);
  }
  std::string host = o.listen_address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty() || host == "*") {
    host = "0.0.0.0";
  }
  const int want_port = std::atoi(o.listen_address.c_str() + colon + 1);
  const uint32_t n = std::max<uint32_t>(1, o.workers);
  for (uint32_t i = 0; i < n; ++i) {
    auto w = std::make_unique<Worker>();
    w->guard = std::make_unique<asio::executor_work_guard<asio::io_context::executor_type>>(
        w->ctx.get_executor());
    workers_.push_back(std::move(w));
  }
  boost::system::error_code ec;
  tcp::resolver resolver(workers_[0]->ctx);
  auto results = resolver.resolve(host, std::to_string(want_port), ec);
  if (ec || results.empty()) {
    return absl::UnavailableError(absl::StrCat("cannot resolve cluster listen address ", host,
                                               ": ", ec.message()));
  }
  const tcp::endpoint ep = results.begin()->endpoint();
  acceptor_ = std::make_unique<tcp::acceptor>(workers_[0]->ctx);
  accept_retry_ = std::make_unique<asio::steady_timer>(workers_[0]->ctx);
  acceptor_->open(ep.protocol(), ec);
  if (!ec) {
    acceptor_->set_option(tcp::acceptor::reuse_address(true), ec);
    acceptor_->bind(ep, ec);
  }
  if (!ec) {
    acceptor_->listen(asio::socket_base::max_listen_connections, ec);
  }
  if (ec) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", o.listen_address,
                                               " for cluster sync: ", ec.message()));
  }
  port_ = acceptor_->local_endpoint(ec).port();
  for (auto& w : workers_) {
    w->sweep = std::make_unique<asio::steady_timer>(w->ctx);
    scheduleSweep(*w);
    Worker* wp = w.get();
    w->thread = std::thread([wp] { wp->ctx.run(); });
  }
  asio::post(workers_[0]->ctx, [this] { accept(); });
  return absl::OkStatus();
}

void GrpcServerImpl::accept() {
  Worker& target = *workers_[next_worker_++ % workers_.size()];
  acceptor_->async_accept(target.ctx, [this, &target](const boost::system::error_code& ec,
                                                      tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor_->is_open()) {
      return;
    }
    if (!ec) {
      boost::system::error_code addr_ec;
      const tcp::endpoint remote = socket.remote_endpoint(addr_ec);
      std::string client = addr_ec ? std::string() : remote.address().to_string();
      if (!core_->admitPending(client)) {
        // Closed before any read or TLS state: costs the attacker a connect, us a socket.
        core_->connections_refused++;
        socket.close(addr_ec);
        accept();
        return;
      }
      asio::post(target.ctx, [this, &target, s = std::move(socket),
                              client = std::move(client)]() mutable {
        auto conn = std::make_shared<Connection>(*core_, target, std::move(s), std::move(client));
        target.connections.emplace(conn.get(), conn);
        core_->connections_active++;
        core_->connections_total++;
        if (core_->stopping.load()) {
          conn->close("");
        } else {
          conn->start();
        }
        reap(target);
      });
    } else if (ec == asio::error::no_descriptors || ec == asio::error::no_buffer_space) {
      // A timer, not a sleep: this thread also serves worker 0's connections.
      LOG_WARN(kLog, "cluster listener: %s; pausing accepts for 100 ms", ec.message());
      accept_retry_->expires_after(std::chrono::milliseconds(100));
      accept_retry_->async_wait([this](const boost::system::error_code& wait_ec) {
        if (!wait_ec) {
          accept();
        }
      });
      return;
    }
    accept();
  });
}

void GrpcServerImpl::reap(Worker& w) {
  for (auto it = w.connections.begin(); it != w.connections.end();) {
    if (it->first->finished()) {
      core_->connections_active--;
      it = w.connections.erase(it);
    } else {
      ++it;
    }
  }
}

void GrpcServerImpl::scheduleSweep(Worker& w) {
  // Often enough that no timeout fires more than half of itself late (and at most 1 s).
  const ServerOptions& o = core_->options;
  const uint32_t shortest =
      std::min({o.handshake_timeout_ms, o.keepalive_time_ms, o.keepalive_timeout_ms});
  w.sweep->expires_after(std::chrono::milliseconds(std::clamp<uint32_t>(shortest / 2, 10, 1000)));
  w.sweep->async_wait([this, &w](const boost::system::error_code& ec) {
    if (ec) {
      return;
    }
    const int64_t now = nowMs();
    for (auto& [ptr, conn] : w.connections) {
      ptr->sweep(now);
    }
    reap(w);
    core_->trimAfterBurst();
    scheduleSweep(w);
  });
}

void GrpcServerImpl::forEachConnection(const std::function<void(Connection&)>& fn) {
  for (auto& w : workers_) {
    Worker* wp = w.get();
    asio::post(wp->ctx, [this, wp, fn] {
      std::vector<std::shared_ptr<Connection>> conns;
      for (auto& [ptr, conn] : wp->connections) {
        conns.push_back(conn);
      }
      for (auto& c : conns) {
        fn(*c);
      }
      reap(*wp);
    });
  }
}

void GrpcServerImpl::shutdown(uint32_t grace_ms) {
  if (shut_down_) {
    return;
  }
  shut_down_ = true;
  core_->stopping = true;
  if (workers_.empty()) {
    return;
  }
  asio::post(workers_[0]->ctx, [this] {
    boost::system::error_code ec;
    if (acceptor_ != nullptr) {
      acceptor_->close(ec);
    }
    accept_retry_->cancel();
  });
  forEachConnection([](Connection& c) { c.sendGoaway(kNoError, "server shutdown"); });
  auto wait_calls = [this](int64_t ms) {
    const int64_t until = nowMs() + ms;
    while ((core_->calls_active.load() > 0 || core_->dones_pending.load() > 0) &&
           nowMs() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  };
  wait_calls(grace_ms);
  forEachConnection([](Connection& c) { c.close("server shutdown"); });
  wait_calls(5000);
  if (core_->calls_active.load() > 0) {
    LOG_ERROR(kLog, "cluster listener: %d calls still open at shutdown",
              core_->calls_active.load());
  }
  // Every onDone has returned (dones_pending); stop.
  for (auto& w : workers_) {
    Worker* wp = w.get();
    asio::post(wp->ctx, [wp] {
      wp->sweep->cancel();
      wp->guard.reset();
      wp->ctx.stop();
    });
  }
  for (auto& w : workers_) {
    if (w->thread.joinable()) {
      w->thread.join();
    }
  }
  for (auto& w : workers_) {
    w->connections.clear();
  }
}

}  // namespace

const std::string* CallInfo::header(std::string_view name) const {
  for (const auto& [k, v] : metadata) {
    if (k == name) {
      return &v;
    }
  }
  return nullptr;
}

absl::StatusOr<std::unique_ptr<GrpcServer>> GrpcServer::start(ServerOptions options,
                                                               std::string path,
                                                               CallFactory factory) {
  auto core = std::make_unique<ServerCore>();
  // Options first: the TLS context's verify callback keeps a pointer into them.
  core->options = std::move(options);
  if (!core->options.cert_pem.empty()) {
    // TLS writes go through OpenSSL's socket BIO, i.e. plain write(2), which raises SIGPIPE
    // when a DP has just gone (e.g. an alert after a refused certificate). Like nginx and
    // Envoy, the process ignores it and sees EPIPE instead.
    struct sigaction current {};
    if (sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
      signal(SIGPIPE, SIG_IGN);
    }
    auto ctx = makeSslCtx(core->options);
    if (!ctx.ok()) {
      return ctx.status();
    }
    core->ssl_ctx = std::move(*ctx);
  }
  core->path = std::move(path);
  core->factory = std::move(factory);
  auto server = std::make_unique<GrpcServerImpl>(std::move(core));
  if (absl::Status st = server->init(); !st.ok()) {
    return st;
  }
  return std::unique_ptr<GrpcServer>(std::move(server));
}

}  // namespace portico::cp::wire
