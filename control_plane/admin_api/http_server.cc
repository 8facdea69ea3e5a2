#include "control_plane/admin_api/http_server.h"

#include <malloc.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "common/logging.h"
#include "control_plane/admin_api/config_endpoint.h"
#include "control_plane/admin_api/endpoints.h"

namespace portico::cp {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

constexpr char kServerHeader[] = "portico/0.1.0";
constexpr char kJsonType[] = "application/json; charset=utf-8";
constexpr auto kWriteTimeout = std::chrono::seconds(60);
constexpr auto kHandshakeTimeout = std::chrono::seconds(10);
constexpr auto kLingerTimeout = std::chrono::seconds(2);
constexpr char kTooManyConnections[] =
    "HTTP/1.1 503 Service Unavailable\r\nServer: portico/0.1.0\r\n"
    "Content-Type: application/json; charset=utf-8\r\nContent-Length: 39\r\n"
    "Connection: close\r\n\r\n{\"message\":\"Too many open connections\"}";
using SslStream = beast::ssl_stream<beast::tcp_stream>;

// What every session needs; owned by the server and outlives all sessions (the io_context,
// which holds the sessions' pending handlers, is destroyed first).
struct ServerState {
  AdminServerOptions options;
  ServerCounters counters;
  std::unique_ptr<AdminApi> api;
  std::unique_ptr<net::thread_pool> workers;        // reads
  std::unique_ptr<net::thread_pool> write_workers;  // POST/PUT/PATCH/DELETE
  std::unique_ptr<net::ssl::context> ssl;  // set when serving TLS

  // Open connections per client address (the caps in AdminServerOptions).
  absl::Mutex clients_mu;
  absl::flat_hash_map<std::string, uint32_t> clients ABSL_GUARDED_BY(clients_mu);
  std::atomic<int64_t> last_trim_ms{0};

  // Takes a slot for `client`; false when a cap is reached.
  bool admit(const std::string& client) {
    absl::MutexLock lock(&clients_mu);
    if (options.max_connections != 0 &&
        counters.connections_active.load() >= options.max_connections) {
      return false;
    }
    uint32_t& n = clients[client];
    if (options.max_connections_per_client != 0 && n >= options.max_connections_per_client) {
      if (n == 0) clients.erase(client);
      return false;
    }
    ++n;
    return true;
  }
  void release(const std::string& client) {
    absl::MutexLock lock(&clients_mu);
    auto it = clients.find(client);
    if (it != clients.end() && --it->second == 0) {
      clients.erase(it);
    }
  }
  // After a burst of connections ends, hand freed buffers back to the OS (glibc keeps them in
  // its arenas otherwise), at most once a second.
  void trimWhenIdle() {
    if (counters.connections_active.load() != 0) {
      return;
    }
    const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now().time_since_epoch())
                            .count();
    int64_t last = last_trim_ms.load();
    if (now - last >= 1000 && last_trim_ms.compare_exchange_strong(last, now)) {
      malloc_trim(0);
    }
  }
};

// A completion handler behind one type (move-only, called once).
class ErasedHandler {
 public:
  template <class Handler>
  explicit ErasedHandler(Handler&& handler)
      : impl_(std::make_unique<Impl<std::decay_t<Handler>>>(std::forward<Handler>(handler))) {}

  void operator()(beast::error_code ec, std::size_t bytes) {
    // Kept alive through the call: the handler may start the next operation, moving itself.
    std::unique_ptr<Base> impl = std::move(impl_);
    impl->invoke(ec, bytes);
  }

 private:
  struct Base {
    virtual ~Base() = default;
    virtual void invoke(beast::error_code ec, std::size_t bytes) = 0;
  };
  template <class Handler>
  struct Impl final : Base {
    template <class H>
    explicit Impl(H&& h) : handler(std::forward<H>(h)) {}
    void invoke(beast::error_code ec, std::size_t bytes) override {
      std::move(handler)(ec, bytes);
    }
    Handler handler;
  };
  std::unique_ptr<Base> impl_;
};

// A connection's byte stream, plain TCP or TLS over it, as one concrete AsyncStream whose
// reads and writes take an ErasedHandler and a flat buffer list. Why: Beast's HTTP operations
// are templates over the stream and every handler, and the TCP and TLS operations under them
// over each of theirs; with a session per stream type this one file took 41 CPU-s to compile
// at -O2, the slowest single source of the build. Behind this type, Beast's operations are instantiated once and the
// TCP and TLS ones once each. The cost, a small allocation per read or write, does not matter
// on the Admin API.
class AdminStream {
 public:
  using executor_type = beast::tcp_stream::executor_type;

  explicit AdminStream(tcp::socket socket) : plain_(std::in_place, std::move(socket)) {}
  AdminStream(tcp::socket socket, net::ssl::context& ctx)
      : tls_(std::make_unique<SslStream>(std::move(socket), ctx)) {}

  bool isTls() const { return tls_ != nullptr; }
  SslStream& tls() { return *tls_; }
  beast::tcp_stream& lowest() { return tls_ ? beast::get_lowest_layer(*tls_) : *plain_; }
  executor_type get_executor() { return lowest().get_executor(); }

  template <class MutableBuffers, class Handler>
  auto async_read_some(const MutableBuffers& buffers, Handler&& handler) {
    return net::async_initiate<Handler, void(beast::error_code, std::size_t)>(
        [this](auto&& h, const MutableBuffers& b) {
          readSome({net::buffer_sequence_begin(b), net::buffer_sequence_end(b)},
                   ErasedHandler(std::move(h)));
        },
        handler, buffers);
  }

  template <class ConstBuffers, class Handler>
  auto async_write_some(const ConstBuffers& buffers, Handler&& handler) {
    return net::async_initiate<Handler, void(beast::error_code, std::size_t)>(
        [this](auto&& h, const ConstBuffers& b) {
          writeSome({net::buffer_sequence_begin(b), net::buffer_sequence_end(b)},
                    ErasedHandler(std::move(h)));
        },
        handler, buffers);
  }

 private:
  void readSome(std::vector<net::mutable_buffer> buffers, ErasedHandler handler) {
    if (tls_) {
      tls_->async_read_some(buffers, std::move(handler));
    } else {
      plain_->async_read_some(buffers, std::move(handler));
    }
  }
  void writeSome(std::vector<net::const_buffer> buffers, ErasedHandler handler) {
    if (tls_) {
      tls_->async_write_some(buffers, std::move(handler));
    } else {
      plain_->async_write_some(buffers, std::move(handler));
    }
  }

  std::optional<beast::tcp_stream> plain_;
  std::unique_ptr<SslStream> tls_;
};

beast::tcp_stream& tcpOf(AdminStream& s) { return s.lowest(); }

// The admin token: Kong's Kong-Admin-Token header, or "Authorization: Bearer <token>" for
// clients that cannot set a custom header (Prometheus's `authorization` scrape option).
template <class Fields>
std::string adminToken(const Fields& head) {
  std::string token(head["Kong-Admin-Token"]);
  if (token.empty()) {
    const std::string auth(head[http::field::authorization]);
    if (auth.size() > 7 && beast::iequals(auth.substr(0, 7), "Bearer ")) {
      token = auth.substr(7);
    }
  }
  return token;
}

// One connection, HTTP or HTTPS.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(AdminStream stream, ServerState& state, std::string client)
      : stream_(std::move(stream)), state_(state), client_(std::move(client)) {
    state_.counters.connections_accepted++;
    state_.counters.connections_active++;
  }
  ~Session() {
    state_.release(client_);
    state_.counters.connections_active--;
    state_.trimWhenIdle();
  }

  void start() {
    if (stream_.isTls()) {
      tcpOf(stream_).expires_after(kHandshakeTimeout);
      stream_.tls().async_handshake(net::ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                if (ec) {
                                  LOG_DEBUG("admin", "TLS handshake failed: %s", ec.message());
                                  self->close();
                                  return;
                                }
                                self->readHead();
                              });
    } else {
      readHead();
    }
  }

 private:
  // The head first, under one deadline for all of it (a client trickling bytes does not
  // extend it); the body only once the token, if required, was accepted, so an
  // unauthenticated client never makes us buffer a body.
  void readHead() {
    parser_.emplace();
    origin_.clear();
    parser_->header_limit(state_.options.max_header_bytes);
    // The larger of the two limits while the head is read (beast checks a Content-Length
    // against it as soon as the head is complete); onHead applies the request's own.
    parser_->body_limit(state_.options.handler
                            ? state_.options.max_body_bytes
                            : std::max({state_.options.max_body_bytes,
                                        state_.options.max_config_body_bytes,
                                        admin::kMaxCatalogBodyBytes}));
    tcpOf(stream_).expires_after(state_.options.header_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = this->shared_from_this()](beast::error_code ec, size_t) {
                              self->onHead(ec);
                            });
  }

  bool closedOrFailed(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == net::error::operation_aborted || ec == net::error::connection_reset ||
        ec == net::ssl::error::stream_truncated || ec == net::error::eof) {
      close();
      return true;
    }
    if (ec == http::error::header_limit) {
      write({431, R"({"message":"Request header fields too large"})"}, false);
      return true;
    }
    if (ec == http::error::body_limit) {
      write({413, R"({"message":"Request size limit exceeded"})"}, false);
      return true;
    }
    if (ec) {
      write({400, R"({"message":"Bad request"})"}, false);
      return true;
    }
    return false;
  }

  void onHead(beast::error_code ec) {
    if (closedOrFailed(ec)) {
      return;
    }
    const auto& head = parser_->get();
    origin_ = std::string(head[http::field::origin]);
    // A declarative file may be far larger than any entity body (10,000 routes are ~5 MB):
    // POST .../config gets the loader's own bound, a catalog version (an OpenAPI document of
    // up to 10 MiB) the catalog's, every other request the usual one. Either body is read only
    // once the token check below passed.
    const std::string_view head_method(head.method_string().data(),
                                       head.method_string().size());
    const std::string_view head_target(head.target().data(), head.target().size());
    uint64_t limit = state_.options.max_body_bytes;
    if (state_.options.handler) {
      // Another listener's own handler: its one body limit, no admin token.
    } else if (isConfigUpload(head_method, head_target)) {
      limit = std::max(limit, state_.options.max_config_body_bytes);
    } else if (admin::isCatalogSpecUpload(head_method, head_target)) {
      limit = std::max(limit, admin::kMaxCatalogBodyBytes);
    }
    if (const auto length = parser_->content_length(); length && *length > limit) {
      closedOrFailed(http::error::body_limit);
      return;
    }
    parser_->body_limit(limit);  // chunked bodies: counted as they arrive
    if (state_.api == nullptr || !state_.api->requiresAuth() || parser_->is_done()) {
      readBody();
      return;
    }
    // A body is coming: check the token first, on a DB worker (it may query the database).
    std::string method(head.method_string());
    std::string token = adminToken(head);
    if (token.empty()) {
      // No database query for this; a preflight needs no token.
      if (std::optional<ApiResponse> denied = state_.api->checkToken(method, token)) {
        write(*std::move(denied), false);
      } else {
        readBody();
      }
      return;
    }
    net::post(*state_.workers, [self = this->shared_from_this(), method = std::move(method),
                                token = std::move(token)]() {
      std::optional<ApiResponse> denied;
      try {
        denied = self->state_.api->checkToken(method, token);
      } catch (const std::exception& e) {
        denied = ApiResponse{500, R"({"message":"An unexpected error occurred"})"};
      }
      net::post(self->stream_.get_executor(), [self, denied = std::move(denied)]() {
        if (denied) {
          self->write(*denied, false);  // the unread body goes with the connection
        } else {
          self->readBody();
        }
      });
    });
  }

  void readBody() {
    if (parser_->is_done()) {
      onRead({});
      return;
    }
    tcpOf(stream_).expires_after(state_.options.body_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = this->shared_from_this()](beast::error_code ec, size_t) {
                       self->onRead(ec);
                     });
  }

  void onRead(beast::error_code ec) {
    if (closedOrFailed(ec)) {
      return;
    }
    http::request<http::string_body> req = parser_->release();
    state_.counters.total_requests++;
    std::string token = adminToken(req);
    ApiRequest api_req{std::string(req.method_string()), std::string(req.target()),
                       std::string(req[http::field::content_type]), std::move(req.body()),
                       std::move(token),
                       std::string(req[http::field::access_control_request_headers])};
    if (state_.options.handler) {
      for (const auto& field : req) {
        std::string name(field.name_string());
        std::transform(name.begin(), name.end(), name.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        api_req.headers.emplace_back(std::move(name), std::string(field.value()));
      }
      api_req.client_address = client_;
      api_req.tls = stream_.isTls();
    }
    const bool keep_alive = req.keep_alive();
    version_ = req.version();
    // Blocking DB work leaves the I/O thread; the response comes back to it to be written.
    // Writes get their own, larger pool: they wait for their group's batch to commit, and
    // must neither starve reads of threads nor be limited to a few per batch.
    const bool is_write = req.method() != http::verb::get && req.method() != http::verb::head &&
                          req.method() != http::verb::options;
    const auto read_at = std::chrono::steady_clock::now();
    const bool streams = version_ >= 11;
    net::post(is_write ? *state_.write_workers : *state_.workers,
              [self = this->shared_from_this(), api_req = std::move(api_req), keep_alive,
               read_at, streams]() {
      ApiResponse resp;
      try {
        resp = self->state_.options.handler ? self->state_.options.handler(api_req)
                                            : self->state_.api->handle(api_req);
      } catch (const std::exception& e) {
        // Nothing should throw past the store; if something does, the client still gets an
        // answer and the worker thread survives.
        LOG_ERROR("admin", "%s %s: unexpected exception: %s", api_req.method, api_req.target,
                  e.what());
        resp = {500, R"({"message":"An unexpected error occurred"})"};
      }
      if (resp.stream && !streams) {
        // HTTP/1.0 has no chunked encoding: the whole body, then a Content-Length.
        if (absl::Status st = drain(resp.stream, &resp.body); !st.ok()) {
          LOG_ERROR("admin", "%s %s: %s", api_req.method, api_req.target, st.ToString());
          resp = {500, R"({"message":"An unexpected error occurred"})"};
        }
        resp.stream = nullptr;
      }
      self->state_.counters.latency.observe(
          api_req.method, resp.status,
          std::chrono::duration<double>(std::chrono::steady_clock::now() - read_at).count());
      net::post(self->stream_.get_executor(),
                [self, resp = std::move(resp), keep_alive]() mutable {
                  self->write(std::move(resp), keep_alive);
                });
    });
  }

  static absl::Status drain(const BodyStream& stream, std::string* body) {
    std::string chunk;
    for (bool last = false; !last;) {
      chunk.clear();
      if (absl::Status st = stream(&chunk, &last); !st.ok()) return st;
      body->append(chunk);
    }
    return absl::OkStatus();
  }

  // Takes the body over: answers can be large, and copying one cost as much as writing it.
  void write(ApiResponse resp, bool keep_alive) {
    if (resp.stream) {
      writeStreamed(std::move(resp), keep_alive);
      return;
    }
    auto res = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(resp.status), version_ == 0 ? 11 : version_);
    res->set(http::field::server, kServerHeader);
    setHeaders(*res, resp);
    if (resp.status != 204) {
      res->set(http::field::content_type,
               resp.content_type.empty() ? kJsonType : resp.content_type.c_str());
      res->body() = std::move(resp.body);
    }
    res->keep_alive(keep_alive);
    res->prepare_payload();
    tcpOf(stream_).expires_after(kWriteTimeout);
    http::async_write(stream_, *res,
                      [self = this->shared_from_this(), res, keep_alive](beast::error_code ec,
                                                                         size_t) {
                        self->answered(ec, keep_alive);
                      });
  }

  // Every answer, errors included, carries Kong's CORS pair (cors.h), then the answer's own.
  template <class Message>
  void setHeaders(Message& m, const ApiResponse& resp) const {
    if (!state_.options.handler) {
      m.set(http::field::access_control_allow_origin, state_.options.cors.allowOrigin(origin_));
      m.set(http::field::access_control_allow_credentials, "true");
    }
    for (const auto& [name, value] : resp.headers) {
      m.set(name, value);
    }
  }

  // The answer's last byte is written (or the write failed): the next request, or the close.
  void answered(beast::error_code ec, bool keep_alive) {
    if (ec) {
      close();
      return;
    }
    if (!keep_alive) {
      lingeringClose();
      return;
    }
    readHead();
  }

  // A BodyStream answer, chunked: the next piece is produced on a worker while the previous
  // one is written, so producing and sending overlap and at most two pieces are held.
  // Everything below runs on the connection's I/O thread except the producer.
  struct Streamed {
    BodyStream next;
    bool keep_alive = true;
    bool producing = false, last_seen = false, writing = false;
    std::optional<std::string> queued;  // produced, waiting for the write in flight
    std::string in_flight;              // being written
    std::string spare;                  // a written piece's buffer, reused by the producer
  };

  void writeStreamed(ApiResponse resp, bool keep_alive) {
    auto head = std::make_shared<http::response<http::empty_body>>(
        static_cast<http::status>(resp.status), 11);
    head->set(http::field::server, kServerHeader);
    setHeaders(*head, resp);
    head->set(http::field::content_type,
              resp.content_type.empty() ? kJsonType : resp.content_type.c_str());
    head->keep_alive(keep_alive);
    head->chunked(true);
    auto serializer = std::make_shared<http::response_serializer<http::empty_body>>(*head);
    auto st = std::make_shared<Streamed>();
    st->next = std::move(resp.stream);
    st->keep_alive = keep_alive;
    streamed_ = st;
    st->writing = true;  // the head
    produceNext();
    tcpOf(stream_).expires_after(kWriteTimeout);
    http::async_write_header(
        stream_, *serializer,
        [self = this->shared_from_this(), head, serializer](beast::error_code ec, size_t) {
          self->onPieceWritten(ec);
        });
  }

  void produceNext() {
    Streamed& st = *streamed_;
    if (st.producing || st.last_seen || st.queued.has_value()) return;
    st.producing = true;
    net::post(*state_.workers, [self = this->shared_from_this(), st = streamed_,
                                chunk = std::move(st.spare)]() mutable {
      chunk.clear();
      bool last = false;
      absl::Status status = st->next(&chunk, &last);
      net::post(self->stream_.get_executor(),
                [self, st, chunk = std::move(chunk), last, status = std::move(status)]() mutable {
                  self->onPieceProduced(std::move(chunk), last, status);
                });
    });
  }

  void onPieceProduced(std::string chunk, bool last, const absl::Status& status) {
    Streamed& st = *streamed_;
    st.producing = false;
    if (!status.ok()) {
      // The head is out: ending without the final chunk is how the client learns it.
      LOG_ERROR("admin", "streamed answer failed: %s", status.ToString());
      close();
      return;
    }
    st.last_seen = last;
    if (st.writing) {
      st.queued = std::move(chunk);
    } else {
      writePiece(std::move(chunk));
    }
    produceNext();
  }

  void writePiece(std::string chunk) {
    Streamed& st = *streamed_;
    st.writing = true;
    st.in_flight = std::move(chunk);
    tcpOf(stream_).expires_after(kWriteTimeout);
    if (st.in_flight.empty()) {  // an empty chunk would end the body: nothing to write
      net::post(stream_.get_executor(), [self = this->shared_from_this()]() {
        self->onPieceWritten({});
      });
      return;
    }
    net::async_write(stream_, http::make_chunk(net::buffer(st.in_flight)),
                     [self = this->shared_from_this()](beast::error_code ec, size_t) {
                       self->onPieceWritten(ec);
                     });
  }

  void onPieceWritten(beast::error_code ec) {
    Streamed& st = *streamed_;
    st.writing = false;
    if (ec) {
      close();
      return;
    }
    st.spare = std::move(st.in_flight);
    if (st.queued.has_value()) {
      std::string next = std::move(*st.queued);
      st.queued.reset();
      writePiece(std::move(next));
      produceNext();
      return;
    }
    if (!st.last_seen || st.producing) return;  // the next piece is on its way
    const bool keep_alive = st.keep_alive;
    streamed_.reset();
    net::async_write(stream_, http::make_chunk_last(),
                     [self = this->shared_from_this(), keep_alive](beast::error_code ec, size_t) {
                       self->answered(ec, keep_alive);
                     });
  }

  // nginx's lingering close: after answering a request whose body we did not read, stop
  // sending and discard what the client still sends for a moment, so the close does not
  // reset the connection (and the answer with it) while the client's bytes are in flight.
  void lingeringClose() {
    beast::error_code ignored;
    tcpOf(stream_).socket().shutdown(tcp::socket::shutdown_send, ignored);
    tcpOf(stream_).expires_after(kLingerTimeout);
    drain();
  }
  void drain() {
    tcpOf(stream_).async_read_some(
        net::buffer(linger_buf_),
        [self = this->shared_from_this()](beast::error_code ec, size_t) {
          if (ec) {
            self->close();
            return;
          }
          self->drain();
        });
  }

  // TLS close_notify is skipped on purpose: Admin clients close on their own and a blocking
  // async_shutdown would hold the session until the idle timeout.
  void close() {
    beast::error_code ignored;
    tcpOf(stream_).socket().shutdown(tcp::socket::shutdown_send, ignored);
    tcpOf(stream_).socket().close(ignored);
  }

  AdminStream stream_;
  ServerState& state_;
  const std::string client_;  // remote address, for the per-client cap
  char linger_buf_[4096];
  std::string origin_;  // the current request's Origin header
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  unsigned version_ = 11;
  std::shared_ptr<Streamed> streamed_;  // the streamed answer being written, if any
};

class AdminHttpServerImpl final : public AdminHttpServer {
 public:
  AdminHttpServerImpl(PgConfigStore& store, const AdminServerOptions& options) {
    state_.options = options;
    AdminApiOptions api_options;
    api_options.require_auth = options.require_auth;
    api_options.metrics = options.metrics;
    api_options.cache_purge = options.cache_purge;
    api_options.vitals = options.vitals;
    api_options.provisioning = options.provisioning;
    api_options.fleet = options.fleet;
    if (!options.handler) {
      state_.api = std::make_unique<AdminApi>(store, state_.counters, api_options);
    }
    const int readers = options.db_workers < 1 ? 1 : options.db_workers;
    state_.workers = std::make_unique<net::thread_pool>(static_cast<size_t>(readers));
    state_.write_workers = std::make_unique<net::thread_pool>(
        static_cast<size_t>(options.write_workers > 0 ? options.write_workers : 4 * readers));
  }
  ~AdminHttpServerImpl() override { shutdown(); }

  absl::Status loadTls(const std::string& cert, const std::string& key) {
    if (cert.empty() && key.empty()) {
      return absl::OkStatus();
    }
    if (cert.empty() || key.empty()) {
      return absl::InvalidArgumentError("--admin_ssl_cert and --admin_ssl_key go together");
    }
    auto ctx = std::make_unique<net::ssl::context>(net::ssl::context::tls_server);
    ctx->set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                     net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 |
                     net::ssl::context::no_tlsv1_1);
    beast::error_code ec;
    ctx->use_certificate_chain_file(cert, ec);
    if (ec) {
      return absl::InvalidArgumentError("cannot use --admin_ssl_cert " + cert + ": " +
                                        ec.message());
    }
    ctx->use_private_key_file(key, net::ssl::context::pem, ec);
    if (ec) {
      return absl::InvalidArgumentError("cannot use --admin_ssl_key " + key + ": " + ec.message());
    }
    state_.ssl = std::move(ctx);
    return absl::OkStatus();
  }

  absl::Status listen(const std::string& address) {
    const size_t colon = address.rfind(':');
    if (colon == std::string::npos) {
      return absl::InvalidArgumentError(state_.options.listen_flag + " must be host:port, got '" +
                                        address + "'");
    }
    std::string host = address.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
      host = host.substr(1, host.size() - 2);
    }
    int port = 0;
    try {
      port = std::stoi(address.substr(colon + 1));
    } catch (const std::exception&) {
      return absl::InvalidArgumentError(state_.options.listen_flag + " has a bad port: '" +
                                        address + "'");
    }
    beast::error_code ec;
    const net::ip::address ip = net::ip::make_address(host.empty() ? "0.0.0.0" : host, ec);
    if (ec || port < 0 || port > 65535) {
      return absl::InvalidArgumentError(state_.options.listen_flag + " must be ip:port, got '" +
                                        address + "'");
    }
    const tcp::endpoint endpoint(ip, static_cast<unsigned short>(port));
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) {
      acceptor_.set_option(net::socket_base::reuse_address(true), ec);
      acceptor_.bind(endpoint, ec);
    }
    if (!ec) {
      acceptor_.listen(net::socket_base::max_listen_connections, ec);
    }
    if (ec) {
      return absl::UnavailableError("cannot listen on " + address + ": " + ec.message());
    }
    port_ = acceptor_.local_endpoint().port();
    accept();
    io_thread_ = std::thread([this] { ioc_.run(); });
    return absl::OkStatus();
  }

  int port() const override { return port_; }

  void shutdown() override {
    if (stopped_.exchange(true)) {
      return;
    }
    // Stop I/O first so no new request reaches the workers, then let the running handlers
    // finish; their responses are posted to the stopped io_context and dropped with it.
    ioc_.stop();
    if (io_thread_.joinable()) {
      io_thread_.join();
    }
    beast::error_code ignored;
    acceptor_.close(ignored);
    state_.workers->join();
    state_.write_workers->join();
  }

 private:
  void accept() {
    acceptor_.async_accept(net::make_strand(ioc_), [this](beast::error_code ec, tcp::socket s) {
      if (ec) {
        if (ec != net::error::operation_aborted) {
          LOG_WARN("admin", "accept failed: %s", ec.message());
          accept();
        }
        return;
      }
      beast::error_code ignored;
      std::string client = s.remote_endpoint(ignored).address().to_string(ignored);
      if (!state_.admit(client)) {
        refuse(std::move(s));
      } else if (state_.ssl != nullptr) {
        std::make_shared<Session>(AdminStream(std::move(s), *state_.ssl), state_,
                                  std::move(client))
            ->start();
      } else {
        std::make_shared<Session>(AdminStream(std::move(s)), state_, std::move(client))->start();
      }
      accept();
    });
  }

  // Over a connection cap: 503 and close, without reading the request (TLS: close only).
  void refuse(tcp::socket s) {
    auto sock = std::make_shared<tcp::socket>(std::move(s));
    if (state_.ssl != nullptr) {
      beast::error_code ignored;
      sock->close(ignored);
      return;
    }
    net::async_write(*sock, net::buffer(kTooManyConnections, sizeof(kTooManyConnections) - 1),
                     [sock](beast::error_code, size_t) {
                       beast::error_code ignored;
                       sock->shutdown(tcp::socket::shutdown_send, ignored);
                       sock->close(ignored);
                     });
  }

  // Declaration order is destruction order in reverse: the io_context (and the sessions its
  // handlers own) goes before the state they point to.
  ServerState state_;
  net::io_context ioc_{1};
  tcp::acceptor acceptor_{ioc_};
  std::thread io_thread_;
  int port_ = 0;
  std::atomic<bool> stopped_{false};
};

}  // namespace

absl::StatusOr<std::unique_ptr<AdminHttpServer>> AdminHttpServer::start(
    PgConfigStore& store, const AdminServerOptions& options) {
  auto server = std::make_unique<AdminHttpServerImpl>(store, options);
  absl::Status st = server->loadTls(options.ssl_cert_path, options.ssl_key_path);
  if (st.ok()) {
    st = server->listen(options.listen_address);
  }
  if (!st.ok()) {
    return st;
  }
  LOG_INFO("admin", "%s listening on %s (port %d, %s%s)",
           options.handler ? options.listen_flag : std::string("Admin API"),
           options.listen_address, server->port(), options.ssl_cert_path.empty() ? "http" : "https",
           options.require_auth ? ", tokens required" : "");
  return server;
}

}  // namespace portico::cp
