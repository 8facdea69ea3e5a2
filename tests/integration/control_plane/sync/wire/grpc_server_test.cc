// Integration tests of the control plane's own gRPC server transport (wire/grpc_server.h).
// Real grpc++ clients check interoperability: streams, flow control, status and trailers, TLS,
// cancellation and shutdown. Hand-built HTTP/2 frames on raw sockets check protocol errors,
// timeouts and garbage input. Everything listens on 127.0.0.1 port 0.
#include "control_plane/sync/wire/grpc_server.h"
#include "control_plane/sync/wire/h2_frame.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>
#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/rpc_method.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/sync_stream.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/sync/cluster_tls.h"
#include "control_plane/sync/wire/hpack.h"

namespace portico::cp::wire {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr char kPath[] = "/portico.sync.v1.ConfigSync/Sync";
constexpr char kUnknownPath[] = "/portico.sync.v1.ConfigSync/Nope";
// Bounds every client call, so a transport bug fails a test instead of hanging it.
constexpr auto kCallTimeout = 20s;

// Deterministic bytes: the content of message `seed`, n bytes long.
std::string pattern(size_t n, uint32_t seed = 0) {
  std::string s(n, '\0');
  uint32_t x = seed * 2654435761u + 12345u;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1103515245u + 12345u;
    s[i] = static_cast<char>(x >> 24);
  }
  return s;
}

int64_t msSince(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

// The process's virtual memory size (/proc/self/statm), in bytes.
int64_t vmSizeBytes() {
  std::ifstream in("/proc/self/statm");
  int64_t pages = 0;
  in >> pages;
  return pages * ::sysconf(_SC_PAGESIZE);
}

// Polls `condition` until it holds or `timeout` passes; for state that has no notification
// (server counters, sockets). Returns the last result.
bool pollUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout = 10s) {
  const auto deadline = Clock::now() + timeout;
  while (!condition()) {
    if (Clock::now() > deadline) {
      return false;
    }
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Server side: a recorder of every handler callback, and the handler.

// What every handler of one server did; thread-safe (callbacks run on io threads, the test
// reads from its own thread).
class Recorder {
 public:
  struct Counts {
    int opened = 0;
    int messages = 0;
    int reads_done = 0;
    int write_failures = 0;
    int done = 0;
  };

  int open(ServerCall* call, const CallInfo& info) {
    absl::MutexLock lock(&mu_);
    const int id = counts_.opened++;
    infos_.push_back(info);
    const std::string* group = info.header("x-group");
    live_[id] = Live{call, group != nullptr ? *group : ""};
    return id;
  }
  void message() {
    absl::MutexLock lock(&mu_);
    counts_.messages++;
  }
  void readsDone() {
    absl::MutexLock lock(&mu_);
    counts_.reads_done++;
  }
  void writeFailed() {
    absl::MutexLock lock(&mu_);
    counts_.write_failures++;
  }
  void done(int id) {
    absl::MutexLock lock(&mu_);
    counts_.done++;
    done_count_[id]++;
    live_.erase(id);  // under the lock: finishGroup() never touches a call after its onDone
  }

  Counts counts() const {
    absl::MutexLock lock(&mu_);
    return counts_;
  }
  std::vector<CallInfo> infos() const {
    absl::MutexLock lock(&mu_);
    return infos_;
  }
  // Every handler opened got onDone, and exactly once.
  bool allDoneOnce() const {
    absl::MutexLock lock(&mu_);
    if (counts_.done != counts_.opened || static_cast<int>(done_count_.size()) != counts_.opened) {
      return false;
    }
    for (const auto& [id, n] : done_count_) {
      if (n != 1) {
        return false;
      }
    }
    return true;
  }
  // Waits until `pred` holds for the counts (true) or `timeout` passes (false).
  bool waitFor(const std::function<bool(const Counts&)>& pred,
               absl::Duration timeout = absl::Seconds(10)) const {
    struct Args {
      const Recorder* self;
      const std::function<bool(const Counts&)>* pred;
    } args{this, &pred};
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(
        absl::Condition(+[](Args* a) { return (*a->pred)(a->self->counts_); }, &args), timeout);
  }
  // Finishes, from the test's thread, every open call whose client sent "x-group: <group>".
  int finishGroup(const std::string& group, const GrpcStatus& status) {
    absl::MutexLock lock(&mu_);
    int n = 0;
    for (auto& [id, live] : live_) {
      if (live.group == group) {
        live.call->finish(status);
        ++n;
      }
    }
    return n;
  }

 private:
  struct Live {
    ServerCall* call;
    std::string group;
  };
  mutable absl::Mutex mu_;
  Counts counts_ ABSL_GUARDED_BY(mu_);
  std::vector<CallInfo> infos_ ABSL_GUARDED_BY(mu_);
  std::map<int, int> done_count_ ABSL_GUARDED_BY(mu_);
  std::map<int, Live> live_ ABSL_GUARDED_BY(mu_);
};

struct HandlerOptions {
  GrpcStatus on_reads_done;           // how a call ends once the client half-closed
  std::optional<GrpcStatus> at_open;  // set: finish before any write (trailers-only)
};

// Echoes every message, in order, one write at a time. Text commands from the client:
//   "big:<n>"             answers with pattern(n) instead of an echo
//   "flood:<n>"           writes pattern(n) messages until a write fails
//   "finish:<code>:<msg>" ends the call (after the queued echoes) with that status and the
//                         trailer "retry-after-ms: 250"
// After onReadsDone it finishes (with HandlerOptions::on_reads_done) once its queue is out or
// its write failed. All of its state lives on the call's io thread; it deletes itself in onDone.
class TestHandler final : public CallHandler {
 public:
  TestHandler(ServerCall* call, const CallInfo& info, Recorder& recorder,
              const HandlerOptions& options)
      : call_(call), recorder_(recorder), options_(options) {
    id_ = recorder_.open(call, info);
    if (options_.at_open.has_value()) {
      finishOnce(*options_.at_open);
    }
  }

  // Interface: CallHandler
  void onMessage(std::string_view m) override {
    recorder_.message();
    if (m.rfind("finish:", 0) == 0) {
      const std::string_view rest = m.substr(7);
      const size_t colon = rest.find(':');
      GrpcStatus status;
      status.code = std::atoi(std::string(rest.substr(0, colon)).c_str());
      status.message = std::string(rest.substr(colon + 1));
      status.trailers.emplace_back("retry-after-ms", "250");
      finishAfterDrain(std::move(status));
    } else if (m.rfind("big:", 0) == 0) {
      enqueue(std::make_shared<const std::string>(pattern(std::stoul(std::string(m.substr(4))))));
    } else if (m.rfind("flood:", 0) == 0) {
      flood_ = std::make_shared<const std::string>(pattern(std::stoul(std::string(m.substr(6)))));
      enqueue(flood_);
    } else {
      enqueue(std::make_shared<const std::string>(m));
    }
  }
  void onReadsDone() override {
    recorder_.readsDone();
    finishAfterDrain(options_.on_reads_done);
  }
  void onWriteDone(bool ok) override {
    writing_ = false;
    if (!ok) {
      recorder_.writeFailed();
      queue_.clear();
      flood_.reset();
      if (finish_after_drain_.has_value()) {
        finishOnce(*finish_after_drain_);
      }
      return;
    }
    if (flood_ != nullptr && !finish_after_drain_.has_value()) {
      queue_.push_back(flood_);
    }
    writeNext();
  }
  void onDone() override {
    recorder_.done(id_);
    delete this;
  }

 private:
  void enqueue(SharedBytes bytes) {
    if (finished_ || finish_after_drain_.has_value()) {
      return;
    }
    queue_.push_back(std::move(bytes));
    writeNext();
  }
  void writeNext() {
    if (writing_ || finished_) {
      return;
    }
    if (queue_.empty()) {
      if (finish_after_drain_.has_value()) {
        finishOnce(*finish_after_drain_);
      }
      return;
    }
    writing_ = true;
    call_->write(queue_.front());
    queue_.pop_front();
  }
  void finishAfterDrain(GrpcStatus status) {
    if (!finish_after_drain_.has_value()) {
      finish_after_drain_ = std::move(status);
    }
    flood_.reset();
    writeNext();
  }
  void finishOnce(const GrpcStatus& status) {
    if (!finished_) {
      finished_ = true;
      call_->finish(status);
    }
  }

  ServerCall* const call_;
  Recorder& recorder_;
  const HandlerOptions options_;
  int id_ = 0;
  std::deque<SharedBytes> queue_;
  SharedBytes flood_;
  bool writing_ = false;
  bool finished_ = false;
  std::optional<GrpcStatus> finish_after_drain_;
};

// A started server with its recorder. Members are destroyed server first, so the recorder
// outlives every handler.
struct TestServer {
  explicit TestServer(ServerOptions options = {}, HandlerOptions handler = {})
      : handler_options(std::move(handler)) {
    options.listen_address = "127.0.0.1:0";
    auto started = GrpcServer::start(std::move(options), kPath,
                                     [this](ServerCall* call, CallInfo info) -> CallHandler* {
                                       return new TestHandler(call, info, recorder,
                                                              handler_options);
                                     });
    REQUIRE(started.ok());
    server = std::move(*started);
  }
  int port() const { return server->port(); }

  Recorder recorder;
  HandlerOptions handler_options;
  std::unique_ptr<GrpcServer> server;
};

// ---------------------------------------------------------------------------------------------
// Client side: grpc++ with raw bytes.

using ByteStream = grpc::ClientReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>;

grpc::ByteBuffer toBuffer(std::string_view s) {
  grpc::Slice slice(s.data(), s.size());
  return grpc::ByteBuffer(&slice, 1);
}

std::string fromBuffer(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string out;
  if (buffer.Valid() && buffer.Dump(&slices).ok()) {
    for (const auto& s : slices) {
      out.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
  }
  return out;
}

std::shared_ptr<grpc::Channel> plainChannel(int port, grpc::ChannelArguments args = {}) {
  return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port),
                                   grpc::InsecureChannelCredentials(), args);
}

// A bidi call of raw bytes on `method`. grpc++ keeps `method` as a static slice, hence the
// string literal; generated stubs would hide the framing we want to control.
std::unique_ptr<ByteStream> openStream(grpc::Channel& channel, grpc::ClientContext& ctx,
                                       const char* method = kPath) {
  ctx.set_deadline(std::chrono::system_clock::now() + kCallTimeout);
  const grpc::internal::RpcMethod rpc(method, grpc::internal::RpcMethod::BIDI_STREAMING);
  return std::unique_ptr<ByteStream>(
      grpc::internal::ClientReaderWriterFactory<grpc::ByteBuffer, grpc::ByteBuffer>::Create(
          &channel, rpc, &ctx));
}

struct CallResult {
  std::vector<std::string> received;
  grpc::Status status;
  std::multimap<std::string, std::string> trailers;
};

// Sends `messages` from a second thread (then half-closes) while reading everything back.
// No Catch assertions here: it runs on test threads.
CallResult runCall(grpc::Channel& channel, const std::vector<std::string>& messages,
                    const char* method = kPath,
                    const std::vector<std::pair<std::string, std::string>>& metadata = {}) {
  grpc::ClientContext ctx;
  for (const auto& [k, v] : metadata) {
    ctx.AddMetadata(k, v);
  }
  auto stream = openStream(channel, ctx, method);
  std::thread writer([&] {
    for (const auto& m : messages) {
      if (!stream->Write(toBuffer(m))) {
        break;
      }
    }
    stream->WritesDone();
  });
  CallResult result;
  grpc::ByteBuffer buffer;
  while (stream->Read(&buffer)) {
    result.received.push_back(fromBuffer(buffer));
  }
  writer.join();
  result.status = stream->Finish();
  for (const auto& [k, v] : ctx.GetServerTrailingMetadata()) {
    result.trailers.emplace(std::string(k.data(), k.size()), std::string(v.data(), v.size()));
  }
  return result;
}

// Message i of an echo run: every 7th is empty, the others up to ~9 KB.
std::vector<std::string> echoMessages(int count, uint32_t salt) {
  std::vector<std::string> out;
  for (int i = 0; i < count; ++i) {
    out.push_back(i % 7 == 0 ? std::string() : pattern((i * 131u) % 9000, salt * 100000u + i));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP/2 on a plain socket.

using h2::kContinuation;
using h2::kData;
using h2::kGoaway;
using h2::kHeaders;
using h2::kPing;
using h2::kRstStream;
using h2::kPreface;
using h2::kSettings;
using h2::kWindowUpdate;
constexpr uint8_t kEndStream = h2::kFlagEndStream;
constexpr uint8_t kAck = h2::kFlagAck;
constexpr uint8_t kEndHeaders = h2::kFlagEndHeaders;

struct Frame {
  uint8_t type = 0;
  uint8_t flags = 0;
  uint32_t stream = 0;
  std::string payload;
};

uint32_t be32(std::string_view p, size_t at) {
  return (uint32_t{static_cast<uint8_t>(p[at])} << 24) |
         (uint32_t{static_cast<uint8_t>(p[at + 1])} << 16) |
         (uint32_t{static_cast<uint8_t>(p[at + 2])} << 8) | static_cast<uint8_t>(p[at + 3]);
}

std::string u32(uint32_t v) {
  return std::string{static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                     static_cast<char>(v >> 8), static_cast<char>(v)};
}

std::string frameBytes(uint8_t type, uint8_t flags, uint32_t stream, std::string_view payload,
                       uint32_t length_override = 0) {
  const uint32_t len = length_override != 0 ? length_override
                                            : static_cast<uint32_t>(payload.size());
  std::string s;
  h2::appendFrameHeader(s, len, type, flags, stream);
  s.append(payload);
  return s;
}

// A request header block as a gRPC client sends it (literals only, no Huffman).
std::string requestHeaders(std::string_view path) {
  std::string b;
  hpackAppendLiteral(b, ":method", "POST");
  hpackAppendLiteral(b, ":scheme", "http");
  hpackAppendLiteral(b, ":path", path);
  hpackAppendLiteral(b, ":authority", "127.0.0.1");
  hpackAppendLiteral(b, "content-type", "application/grpc");
  hpackAppendLiteral(b, "te", "trailers");
  return b;
}

std::string grpcMessage(std::string_view body, bool compressed = false) {
  std::string s(1, compressed ? '\1' : '\0');
  const auto n = static_cast<uint32_t>(body.size());
  for (int shift = 24; shift >= 0; shift -= 8) {
    s.push_back(static_cast<char>(n >> shift));
  }
  s.append(body);
  return s;
}

// Response headers decoded with a fresh decoder: the server never indexes.
std::map<std::string, std::string> decodeHeaders(std::string_view block) {
  std::map<std::string, std::string> out;
  HpackDecoder decoder;
  const absl::Status st = decoder.decode(
      block, [&](std::string_view n, std::string_view v) { out.emplace(n, v); });
  if (!st.ok()) {
    out["decode-error"] = std::string(st.message());
  }
  return out;
}

class RawConn {
 public:
  // `rcvbuf` > 0: a small receive buffer, for a client that reads slowly or not at all.
  explicit RawConn(int port, int rcvbuf = 0) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (rcvbuf > 0) {
      ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  ~RawConn() { ::close(fd_); }
  RawConn(const RawConn&) = delete;
  RawConn& operator=(const RawConn&) = delete;

  bool connected() const { return connected_; }
  bool closed() const { return closed_; }
  bool sendFailed() const { return send_failed_; }

  void send(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n <= 0) {
        send_failed_ = true;  // the server closed; what it said may still be readable
        return;
      }
      bytes.remove_prefix(static_cast<size_t>(n));
    }
  }
  void sendFrame(uint8_t type, uint8_t flags, uint32_t stream, std::string_view payload) {
    send(frameBytes(type, flags, stream, payload));
  }
  void sendPreface() {
    send(kPreface);
    sendFrame(kSettings, 0, 0, "");
  }
  void openCall(uint32_t stream, std::string_view path = kPath) {
    sendFrame(kHeaders, kEndHeaders, stream, requestHeaders(path));
  }
  void shutdownWrite() { ::shutdown(fd_, SHUT_WR); }

  // The next frame within `timeout`; nullopt if the server closed the connection (closed()
  // turns true) or the time ran out.
  std::optional<Frame> readFrame(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (true) {
      if (buf_.size() >= 9) {
        const auto* h = reinterpret_cast<const uint8_t*>(buf_.data());
        const uint32_t len = (uint32_t{h[0]} << 16) | (uint32_t{h[1]} << 8) | h[2];
        if (buf_.size() >= 9 + size_t{len}) {
          Frame f;
          f.type = h[3];
          f.flags = h[4];
          f.stream = be32(buf_, 5) & 0x7fffffff;
          f.payload = buf_.substr(9, len);
          buf_.erase(0, 9 + len);
          return f;
        }
      }
      if (closed_) {
        return std::nullopt;
      }
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) {
        return std::nullopt;
      }
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
        continue;
      }
      char tmp[65536];
      const ssize_t n = ::recv(fd_, tmp, sizeof(tmp), 0);
      if (n > 0) {
        buf_.append(tmp, static_cast<size_t>(n));
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        closed_ = true;  // EOF or reset
      }
    }
  }

  // The first frame satisfying `pred` (others are kept in `seen`), or nullopt.
  std::optional<Frame> waitFrame(const std::function<bool(const Frame&)>& pred,
                                 std::chrono::milliseconds timeout = 5s) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      auto f = readFrame(std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - Clock::now()));
      if (!f.has_value()) {
        if (closed_) {
          return std::nullopt;
        }
        continue;
      }
      if (pred(*f)) {
        return f;
      }
      seen.push_back(std::move(*f));
    }
    return std::nullopt;
  }

  // Reads until the server closes the connection (true) or `timeout` passes (false).
  bool readUntilClosed(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (!closed_) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) {
        return false;
      }
      if (auto f = readFrame(left)) {
        seen.push_back(std::move(*f));
      }
    }
    return true;
  }

  std::vector<Frame> seen;

 private:
  int fd_ = -1;
  bool connected_ = false;
  bool closed_ = false;
  bool send_failed_ = false;
  std::string buf_;
};

// Error code of the GOAWAY among `frames`, or -1.
int64_t goawayCode(const std::vector<Frame>& frames) {
  for (const auto& f : frames) {
    if (f.type == kGoaway && f.payload.size() >= 8) {
      return be32(f.payload, 4);
    }
  }
  return -1;
}

// ---------------------------------------------------------------------------------------------
// TLS material, made once with the openssl CLI.

struct TlsMaterial {
  std::string ca, server_cert, server_key;
  std::string client_cert, client_key;  // signed by the CA
  std::string rogue_cert, rogue_key;    // self-signed
};

bool run(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()) == 0; }

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const TlsMaterial& tlsMaterial() {
  static const TlsMaterial* const kMaterial = [] {
    char tmpl[] = "/tmp/portico-wire-tls-XXXXXX";
    const std::string d = ::mkdtemp(tmpl);
    auto p = [&d](const std::string& name, const std::string& ext) {
      return d + "/" + name + "." + ext;
    };
    auto leaf = [&](const std::string& name, const std::string& ext) {
      REQUIRE(run("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout " +
                  p(name, "key") + " -out " + p(name, "csr") + " -subj /CN=" + name));
      std::ofstream(p(name, "ext")) << ext << "\n";
      REQUIRE(run("openssl x509 -req -in " + p(name, "csr") + " -CA " + p("ca", "crt") +
                  " -CAkey " + p("ca", "key") + " -CAcreateserial -days 1 -out " +
                  p(name, "crt") + " -extfile " + p(name, "ext")));
    };
    REQUIRE(run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
                "-days 2 -keyout " + p("ca", "key") + " -out " + p("ca", "crt") +
                " -subj /CN=wire-test-ca"));
    leaf("cp", "subjectAltName=DNS:cp.test\nextendedKeyUsage=serverAuth");
    leaf("dp", "subjectAltName=DNS:dp.test\nextendedKeyUsage=clientAuth");
    REQUIRE(run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
                "-days 2 -keyout " + p("rogue", "key") + " -out " + p("rogue", "crt") +
                " -subj /CN=rogue -addext subjectAltName=DNS:rogue"));
    auto* m = new TlsMaterial{readFile(p("ca", "crt")),    readFile(p("cp", "crt")),
                              readFile(p("cp", "key")),    readFile(p("dp", "crt")),
                              readFile(p("dp", "key")),    readFile(p("rogue", "crt")),
                              readFile(p("rogue", "key"))};
    std::filesystem::remove_all(d);
    return m;
  }();
  return *kMaterial;
}

std::shared_ptr<grpc::Channel> tlsChannel(int port, const std::string& cert,
                                          const std::string& key,
                                          grpc::ChannelArguments args = {}) {
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = tlsMaterial().ca;
  ssl.pem_cert_chain = cert;
  ssl.pem_private_key = key;
  args.SetSslTargetNameOverride("cp.test");
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port), grpc::SslCredentials(ssl),
                                   args);
}

ServerOptions tlsOptions(ClientCertMode mode) {
  ServerOptions o;
  o.cert_pem = tlsMaterial().server_cert;
  o.key_pem = tlsMaterial().server_key;
  o.ca_pem = tlsMaterial().ca;
  o.client_cert = mode;
  return o;
}

// =============================================================================================
// 1. Round trips and concurrency

TEST_CASE("wire grpc_server: many messages on one call, empty ones included") {
  TestServer ts;
  auto channel = plainChannel(ts.port());
  const auto messages = echoMessages(2000, 1);
  const CallResult r = runCall(*channel, messages);
  CHECK(r.status.error_code() == grpc::StatusCode::OK);
  REQUIRE(r.received.size() == messages.size());
  for (size_t i = 0; i < messages.size(); ++i) {
    if (r.received[i] != messages[i]) {
      FAIL("message " << i << " differs (" << r.received[i].size() << " bytes, want "
                      << messages[i].size() << ")");
    }
  }
  REQUIRE(ts.recorder.waitFor([](const Recorder::Counts& c) { return c.done == 1; }));
  const auto counts = ts.recorder.counts();
  CHECK(counts.messages == 2000);
  CHECK(counts.reads_done == 1);  // WritesDone reached the handler
  CHECK(counts.write_failures == 0);
  const auto infos = ts.recorder.infos();
  REQUIRE(infos.size() == 1);
  CHECK(infos[0].peer.rfind("ipv4:127.0.0.1:", 0) == 0);
  CHECK(infos[0].peer_cert_pem.empty());
  CHECK(ts.server->stats().connections_total == 1);
  ts.server->shutdown();
  CHECK(ts.recorder.allDoneOnce());
}

TEST_CASE("wire grpc_server: ping-pong keeps order and handles empty messages alone") {
  TestServer ts;
  auto channel = plainChannel(ts.port());
  grpc::ClientContext ctx;
  auto stream = openStream(*channel, ctx);
  grpc::ByteBuffer in;
  for (int i = 0; i < 200; ++i) {
    const std::string m = i % 3 == 0 ? std::string() : pattern(i * 17, i);
    REQUIRE(stream->Write(toBuffer(m)));
    REQUIRE(stream->Read(&in));
    REQUIRE(fromBuffer(in) == m);
  }
  REQUIRE(stream->WritesDone());
  CHECK_FALSE(stream->Read(&in));
  CHECK(stream->Finish().error_code() == grpc::StatusCode::OK);
}

TEST_CASE("wire grpc_server: concurrent calls on one channel and on separate channels") {
  ServerOptions o;
  o.workers = GENERATE(1u, 3u);
  TestServer ts(o);
  constexpr int kShared = 8;    // calls on one channel (one connection)
  constexpr int kChannels = 4;  // channels, each with its own connection and 2 calls
  auto shared = plainChannel(ts.port());
  std::vector<std::shared_ptr<grpc::Channel>> own;
  for (int i = 0; i < kChannels; ++i) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    own.push_back(plainChannel(ts.port(), args));
  }
  const int total = kShared + 2 * kChannels;
  std::vector<std::vector<std::string>> sent(total);
  std::vector<CallResult> results(total);
  std::vector<std::thread> threads;
  for (int i = 0; i < total; ++i) {
    sent[i] = echoMessages(300, i + 10);
    grpc::Channel* ch = i < kShared ? shared.get() : own[(i - kShared) / 2].get();
    threads.emplace_back([&, i, ch] { results[i] = runCall(*ch, sent[i]); });
  }
  for (auto& t : threads) {
    t.join();
  }
  for (int i = 0; i < total; ++i) {
    INFO("call " << i);
    CHECK(results[i].status.error_code() == grpc::StatusCode::OK);
    CHECK(results[i].received == sent[i]);
  }
  // One connection for the shared channel, one per separate channel.
  CHECK(ts.server->stats().connections_total == 1 + kChannels);
  REQUIRE(ts.recorder.waitFor([&](const Recorder::Counts& c) { return c.done == total; }));
  ts.server->shutdown();
  CHECK(ts.recorder.allDoneOnce());
}

TEST_CASE("wire grpc_server: more calls than max_concurrent_streams all complete") {
  ServerOptions o;
  o.max_concurrent_streams = 3;
  TestServer ts(o);
  auto channel = plainChannel(ts.port());
  constexpr int kCalls = 10;
  std::vector<std::vector<std::string>> sent(kCalls);
  std::vector<CallResult> results(kCalls);
  std::vector<std::thread> threads;
  for (int i = 0; i < kCalls; ++i) {
    sent[i] = echoMessages(50, i);
    threads.emplace_back([&, i] { results[i] = runCall(*channel, sent[i]); });
  }
  for (auto& t : threads) {
    t.join();
  }
  for (int i = 0; i < kCalls; ++i) {
    INFO("call " << i << ": " << results[i].status.error_message());
    CHECK(results[i].status.error_code() == grpc::StatusCode::OK);
    CHECK(results[i].received == sent[i]);
  }
}

// =============================================================================================
// 2. Large server messages: flow control and frame splitting

TEST_CASE("wire grpc_server: server messages larger than the client window and a frame") {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetMaxReceiveMessageSize(8 << 20);
  SECTION("small client window, no BDP probing") {
    args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 1024);
    args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  }
  SECTION("large client window and 1 MiB frames") {
    args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 16 << 20);
    args.SetInt(GRPC_ARG_HTTP2_MAX_FRAME_SIZE, 1 << 20);
  }
  TestServer ts;
  auto channel = plainChannel(ts.port(), args);
  const std::vector<size_t> sizes = {3u << 20, 1, 16384, 16385, (3u << 20) + 7, 70000};
  std::vector<std::string> requests;
  for (size_t n : sizes) {
    requests.push_back(absl::StrCat("big:", n));
  }
  const CallResult r = runCall(*channel, requests);
  CHECK(r.status.error_code() == grpc::StatusCode::OK);
  REQUIRE(r.received.size() == sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) {
    INFO("message " << i);
    CHECK(r.received[i].size() == sizes[i]);
    CHECK(r.received[i] == pattern(sizes[i]));
  }
}

TEST_CASE("wire grpc_server: big messages on several calls of one connection at once") {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 1024);
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  TestServer ts;
  auto channel = plainChannel(ts.port(), args);
  constexpr int kCalls = 4;
  std::vector<CallResult> results(kCalls);
  std::vector<std::thread> threads;
  for (int i = 0; i < kCalls; ++i) {
    threads.emplace_back([&, i] {
      results[i] = runCall(*channel, {"big:1048576", "x", "big:300000"});
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  for (int i = 0; i < kCalls; ++i) {
    INFO("call " << i);
    CHECK(results[i].status.error_code() == grpc::StatusCode::OK);
    REQUIRE(results[i].received.size() == 3);
    CHECK(results[i].received[0] == pattern(1048576));
    CHECK(results[i].received[1] == "x");
    CHECK(results[i].received[2] == pattern(300000));
  }
}

TEST_CASE("wire grpc_server: client messages larger than the server's window") {
  TestServer ts;  // 1 MiB receive windows, 4 MiB message limit
  auto channel = plainChannel(ts.port());
  const std::vector<std::string> messages = {pattern(3u << 20, 1), "", pattern((1u << 20) + 3, 2),
                                             pattern(4u << 20, 3)};
  const CallResult r = runCall(*channel, messages);
  CHECK(r.status.error_code() == grpc::StatusCode::OK);
  REQUIRE(r.received.size() == messages.size());
  for (size_t i = 0; i < messages.size(); ++i) {
    INFO("message " << i);
    CHECK(r.received[i] == messages[i]);
  }
}

// =============================================================================================
// 3. Status and trailers

TEST_CASE("wire grpc_server: finish with a code, an encoded message and a trailer") {
  TestServer ts;
  auto channel = plainChannel(ts.port());
  // Non-ASCII, '%', a control character and ':' must survive percent-encoding.
  const std::string text = "caf\xC3\xA9 100% d\x01one: \xE2\x9C\x93";
  const CallResult r = runCall(*channel, {"a", "", "b", "finish:9:" + text, "never echoed"});
  CHECK(r.received == std::vector<std::string>{"a", "", "b"});
  CHECK(r.status.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  CHECK(r.status.error_message() == text);
  auto it = r.trailers.find("retry-after-ms");
  REQUIRE(it != r.trailers.end());
  CHECK(it->second == "250");
  REQUIRE(ts.recorder.waitFor([](const Recorder::Counts& c) { return c.done == 1; }));
}

TEST_CASE("wire grpc_server: trailers-only response when finishing before any write") {
  HandlerOptions h;
  h.at_open = GrpcStatus{7, "not allowed here", {{"retry-after-ms", "1500"}}};
  TestServer ts({}, h);
  auto channel = plainChannel(ts.port());
  const CallResult r = runCall(*channel, {"hello"});
  CHECK(r.received.empty());
  CHECK(r.status.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(r.status.error_message() == "not allowed here");
  auto it = r.trailers.find("retry-after-ms");
  REQUIRE(it != r.trailers.end());
  CHECK(it->second == "1500");
  REQUIRE(ts.recorder.waitFor([](const Recorder::Counts& c) { return c.done == 1; }));
  ts.server->shutdown();
  CHECK(ts.recorder.allDoneOnce());
}

TEST_CASE("wire grpc_server: an unknown method is UNIMPLEMENTED and opens no call") {
  TestServer ts;
  auto channel = plainChannel(ts.port());
  const CallResult r = runCall(*channel, {"x"}, kUnknownPath);
  CHECK(r.status.error_code() == grpc::StatusCode::UNIMPLEMENTED);
  CHECK(r.status.error_message().find("Nope") != std::string::npos);
  // The connection still serves the real method.
  const CallResult ok = runCall(*channel, {"y"});
  CHECK(ok.status.error_code() == grpc::StatusCode::OK);
  CHECK(ok.received == std::vector<std::string>{"y"});
  CHECK(ts.recorder.counts().opened == 1);
}

TEST_CASE("wire grpc_server: several methods on one server and on one connection") {
  Recorder recorder;
  HandlerOptions handler_options;
  constexpr char kSecond[] = "/portico.test.v1.Echo/Second";
  GrpcServer::Methods methods;
  std::atomic<int> second_calls{0};
  for (const char* path : {kPath, kSecond}) {
    methods.emplace(path, [&, path](ServerCall* call, CallInfo info) -> CallHandler* {
      CHECK(info.path == path);  // each factory sees its own method
      if (std::string_view(path) == kSecond) second_calls++;
      return new TestHandler(call, info, recorder, handler_options);
    });
  }
  ServerOptions options;
  options.listen_address = "127.0.0.1:0";
  auto started = GrpcServer::start(std::move(options), std::move(methods));
  REQUIRE(started.ok());
  std::unique_ptr<GrpcServer> server = std::move(*started);
  auto channel = plainChannel(server->port());
  const CallResult first = runCall(*channel, {"a"});
  const CallResult second = runCall(*channel, {"b", "c"}, kSecond);
  CHECK(first.status.error_code() == grpc::StatusCode::OK);
  CHECK(first.received == std::vector<std::string>{"a"});
  CHECK(second.status.error_code() == grpc::StatusCode::OK);
  CHECK(second.received == std::vector<std::string>{"b", "c"});
  CHECK(second_calls.load() == 1);
  CHECK(runCall(*channel, {"x"}, kUnknownPath).status.error_code() ==
        grpc::StatusCode::UNIMPLEMENTED);
  CHECK(server->stats().connections_total == 1);
  server->shutdown();
  CHECK(GrpcServer::start(ServerOptions{}, GrpcServer::Methods{}).status().code() ==
        absl::StatusCode::kInvalidArgument);
}

TEST_CASE("wire grpc_server: a client message above the limit is RESOURCE_EXHAUSTED") {
  ServerOptions o;
  o.max_receive_message_bytes = 64 * 1024;
  TestServer ts(o);
  auto channel = plainChannel(ts.port());
  const CallResult r = runCall(*channel, {"small", pattern(100 * 1024), "after"});
  CHECK(r.status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  // The echo of "small" is lost if the oversized prefix arrives before it is written: the
  // failed call aborts its pending write.
  CHECK(r.received.size() <= 1);
  REQUIRE(ts.recorder.waitFor([](const Recorder::Counts& c) { return c.done == 1; }));
  // Exactly at the limit is fine, and the same connection keeps working.
  const CallResult ok = runCall(*channel, {pattern(64 * 1024, 3)});
  CHECK(ok.status.error_code() == grpc::StatusCode::OK);
  REQUIRE(ok.received.size() == 1);
  CHECK(ok.received[0] == pattern(64 * 1024, 3));
  CHECK(ts.server->stats().connections_total == 1);
  ts.server->shutdown();
  CHECK(ts.recorder.allDoneOnce());
}

// =============================================================================================
// 4. The client goes away

TEST_CASE("wire grpc_server: client cancel mid-stream ends the call on the server") {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 1024);
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  TestServer ts;
  auto channel = plainChannel(ts.port(), args);
  grpc::ClientContext ctx;
  auto stream = openStream(*channel, ctx);
  REQUIRE(stream->Write(toBuffer("flood:65536")));
  grpc::ByteBuffer in;
  for (int i = 0; i < 3; ++i) {
    REQUIRE(stream->Read(&in));
    REQUIRE(fromBuffer(in) == pattern(65536));
  }
  ctx.TryCancel();
  while (stream->Read(&in)) {
  }
  CHECK(stream->Finish().error_code() == grpc::StatusCode::CANCELLED);
  REQUIRE(ts.recorder.waitFor([](const Recorder::Counts& c) { return c.done == 1; }));
  const auto c = ts.recorder.counts();
  CHECK(c.reads_done == 1);
  CHECK(c.write_failures == 1);  // the flood's write in flight at the reset
  CHECK(ts.server->stats().calls_active == 0);
  // The connection survives a reset stream.
  const CallResult ok = runCall(*channel, {"again"});
  CHECK(ok.status.error_code() == grpc::StatusCode::OK);
  ts.server->shutdown();
  CHECK(ts.recorder.allDoneOnce());
}

TEST_CASE("wire grpc_server: client channel destroyed mid-stream ends the call") {
  TestServer ts;
  {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    auto channel = plainChannel(ts.port(), args);
    auto ctx = std::make_unique<grpc::ClientContext>();
    auto stream = openStream(*channel, *ctx);
    REQUIRE(stream->Write(toBuffer("flood:100000")));
    grpc::ByteBuffer in;
    REQUIRE(stream->Read(&in));
    // No Finish: dropping the context cancels the call, dropping the channel its connection.
    stream.reset();
    ctx.reset();
    channel.reset();
  }
  REQUIRE(ts.recorder.waitFor([](const Recorder::Counts& c) { return c.done == 1; }));
  const auto c = ts.recorder.counts();
  CHECK(c.reads_done == 1);
  CHECK(c.write_failures == 1);
  ts.server->shutdown();
  CHECK(ts.recorder.allDoneOnce());
}

TEST_CASE("wire grpc_server: a connection dropped mid-stream ends all its calls") {
  TestServer ts;
  {
    RawConn raw(ts.port());
    REQUIRE(raw.connected());
    raw.sendPreface();
    // A large connection window: only its own stream window stalls the flood, never call 3.
    raw.sendFrame(kWindowUpdate, 0, 0, u32(1u << 30));
    raw.openCall(1);
    raw.openCall(3);
    raw.sendFrame(kData, 0, 1, grpcMessage("flood:1000"));
    raw.sendFrame(kData, 0, 3, grpcMessage("echo me"));
    // Wait until both calls have written (the flood then stalls on our 64 KB window).
    REQUIRE(raw.waitFrame([](const Frame& f) { return f.type == kData && f.stream == 3; }));
    REQUIRE(ts.recorder.waitFor([](const Recorder::Counts& c) { return c.messages == 2; }));
  }  // closed here, without RST_STREAM or GOAWAY
  REQUIRE(ts.recorder.waitFor([](const Recorder::Counts& c) { return c.done == 2; }));
  const auto c = ts.recorder.counts();
  CHECK(c.reads_done == 2);
  CHECK(c.write_failures == 1);  // only the flooding call had a write outstanding
  CHECK(ts.server->stats().calls_active == 0);
  ts.server->shutdown();
  CHECK(ts.recorder.allDoneOnce());
}

TEST_CASE("wire grpc_server: half-close with END_STREAM on HEADERS or on DATA") {
  TestServer ts;
  RawConn raw(ts.port());
  raw.sendPreface();
  // Stream 1: HEADERS with END_STREAM (no request message at all).
  raw.sendFrame(kHeaders, kEndHeaders | kEndStream, 1, requestHeaders(kPath));
  // Stream 3: one message, END_STREAM on the DATA frame.
  raw.openCall(3);
  raw.sendFrame(kData, kEndStream, 3, grpcMessage("last"));
  std::map<uint32_t, std::map<std::string, std::string>> trailers;
  std::string echoed;
  for (int i = 0; i < 20 && trailers.size() < 2; ++i) {
    auto f = raw.readFrame(5s);
    REQUIRE(f.has_value());
    if (f->type == kHeaders && (f->flags & kEndStream)) {
      trailers[f->stream] = decodeHeaders(f->payload);
    } else if (f->type == kData && f->stream == 3) {
      echoed += f->payload;
    }
  }
  REQUIRE(trailers.size() == 2);
  CHECK(trailers[1]["grpc-status"] == "0");
  CHECK(trailers[1][":status"] == "200");  // trailers-only: no message was written
  CHECK(trailers[3]["grpc-status"] == "0");
  CHECK(echoed == grpcMessage("last"));
  REQUIRE(ts.recorder.waitFor([](const Recorder::Counts& c) { return c.done == 2; }));
  CHECK(ts.recorder.counts().reads_done == 2);
}

// =============================================================================================
// 5. TLS

TEST_CASE("wire grpc_server: TLS kRequireVerified accepts CA-signed client certificates only") {
  TestServer ts(tlsOptions(ClientCertMode::kRequireVerified));
  SECTION("signed by the CA") {
    auto channel = tlsChannel(ts.port(), tlsMaterial().client_cert, tlsMaterial().client_key);
    const auto messages = echoMessages(100, 5);
    const CallResult r = runCall(*channel, messages, kPath, {{"portico-join-token", "tok-1"}});
    CHECK(r.status.error_code() == grpc::StatusCode::OK);
    CHECK(r.received == messages);
    const auto infos = ts.recorder.infos();
    REQUIRE(infos.size() == 1);
    CHECK(infos[0].peer_cert_pem == tlsMaterial().client_cert);
    REQUIRE(infos[0].header("portico-join-token") != nullptr);
    CHECK(*infos[0].header("portico-join-token") == "tok-1");
    CHECK(ts.server->stats().handshake_failures == 0);
  }
  SECTION("self-signed") {
    auto channel = tlsChannel(ts.port(), tlsMaterial().rogue_cert, tlsMaterial().rogue_key);
    const CallResult r = runCall(*channel, {"x"});
    CHECK(r.status.error_code() == grpc::StatusCode::UNAVAILABLE);
    CHECK(pollUntil([&] { return ts.server->stats().handshake_failures >= 1; }));
    CHECK(ts.recorder.counts().opened == 0);
  }
  SECTION("no client certificate") {
    auto channel = tlsChannel(ts.port(), "", "");
    const CallResult r = runCall(*channel, {"x"});
    CHECK(r.status.error_code() == grpc::StatusCode::UNAVAILABLE);
    CHECK(pollUntil([&] { return ts.server->stats().handshake_failures >= 1; }));
    CHECK(ts.recorder.counts().opened == 0);
  }
}

TEST_CASE("wire grpc_server: TLS kRequireAny accepts any certificate and reports it") {
  TestServer ts(tlsOptions(ClientCertMode::kRequireAny));
  auto channel = tlsChannel(ts.port(), tlsMaterial().rogue_cert, tlsMaterial().rogue_key);
  const CallResult r = runCall(*channel, {"big:200000", "hi"}, kPath,
                                {{"portico-join-token", "secret"}, {"x-extra", std::string(10000, 'e')}});
  CHECK(r.status.error_code() == grpc::StatusCode::OK);
  REQUIRE(r.received.size() == 2);
  CHECK(r.received[0] == pattern(200000));
  const auto infos = ts.recorder.infos();
  REQUIRE(infos.size() == 1);
  CHECK(infos[0].peer_cert_pem == tlsMaterial().rogue_cert);
  REQUIRE(infos[0].header("portico-join-token") != nullptr);
  CHECK(*infos[0].header("portico-join-token") == "secret");
  REQUIRE(infos[0].header("x-extra") != nullptr);
  CHECK(*infos[0].header("x-extra") == std::string(10000, 'e'));
  CHECK(infos[0].header("content-type") != nullptr);
  CHECK(infos[0].header(":path") == nullptr);  // pseudo-headers are not metadata
  // A client without a certificate is refused.
  auto anonymous = tlsChannel(ts.port(), "", "");
  CHECK(runCall(*anonymous, {"x"}).status.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK(pollUntil([&] { return ts.server->stats().handshake_failures >= 1; }));
}

TEST_CASE("wire grpc_server: TLS kRequireAny with a pin refuses other certificates in the "
          "handshake") {
  ServerOptions o = tlsOptions(ClientCertMode::kRequireAny);
  o.pinned_client_cert_sha256 = *sync::certificateSha256(tlsMaterial().client_cert);
  TestServer ts(o);
  // The pinned certificate gets through.
  auto good = tlsChannel(ts.port(), tlsMaterial().client_cert, tlsMaterial().client_key);
  CHECK(runCall(*good, {"hi"}).status.error_code() == grpc::StatusCode::OK);
  // Another one never reaches HTTP/2: the handshake fails and no call is seen.
  auto rogue = tlsChannel(ts.port(), tlsMaterial().rogue_cert, tlsMaterial().rogue_key);
  CHECK(runCall(*rogue, {"x"}).status.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK(pollUntil([&] { return ts.server->stats().handshake_failures >= 1; }));
  CHECK(ts.recorder.infos().size() == 1);
}

TEST_CASE("wire grpc_server: TLS carries large messages both ways and drops cleanly") {
  TestServer ts(tlsOptions(ClientCertMode::kRequireVerified));
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 1024);
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  auto channel =
      tlsChannel(ts.port(), tlsMaterial().client_cert, tlsMaterial().client_key, args);
  const CallResult r = runCall(*channel, {"big:3145728", pattern(2u << 20, 9), "", "big:16385"});
  CHECK(r.status.error_code() == grpc::StatusCode::OK);
  REQUIRE(r.received.size() == 4);
  CHECK(r.received[0] == pattern(3145728));
  CHECK(r.received[1] == pattern(2u << 20, 9));
  CHECK(r.received[2].empty());
  CHECK(r.received[3] == pattern(16385));
  {
    // A flooding call whose client vanishes: no SIGPIPE, the handler sees the write fail.
    grpc::ChannelArguments own;
    own.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    auto dropped = tlsChannel(ts.port(), tlsMaterial().client_cert, tlsMaterial().client_key, own);
    auto ctx = std::make_unique<grpc::ClientContext>();
    auto stream = openStream(*dropped, *ctx);
    REQUIRE(stream->Write(toBuffer("flood:200000")));
    grpc::ByteBuffer in;
    REQUIRE(stream->Read(&in));
    stream.reset();
    ctx.reset();
    dropped.reset();
  }
  REQUIRE(ts.recorder.waitFor([](const Recorder::Counts& c) { return c.done == 2; }));
  CHECK(ts.recorder.counts().write_failures == 1);
  ts.server->shutdown();
  CHECK(ts.recorder.allDoneOnce());
}

TEST_CASE("wire grpc_server: TLS connection that never handshakes is closed in time") {
  ServerOptions o = tlsOptions(ClientCertMode::kNone);
  o.handshake_timeout_ms = 300;
  TestServer ts(o);
  const auto start = Clock::now();
  RawConn raw(ts.port());
  REQUIRE(raw.connected());
  REQUIRE(raw.readUntilClosed(5s));
  CHECK(msSince(start) >= 290);
}

// =============================================================================================
// 6. Raw HTTP/2: protocol errors, garbage and timeouts

TEST_CASE("wire grpc_server: a bad preface closes the connection") {
  TestServer ts;
  RawConn raw(ts.port());
  raw.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  REQUIRE(raw.readUntilClosed(5s));
  CHECK(ts.server->stats().protocol_errors == 1);
}

TEST_CASE("wire grpc_server: connection errors are answered with GOAWAY and the right code") {
  TestServer ts;
  RawConn raw(ts.port());
  raw.sendPreface();
  int64_t want = -1;
  SECTION("frame longer than 16384: FRAME_SIZE_ERROR") {
    raw.send(frameBytes(kData, 0, 1, "", 16385));  // the header alone is enough
    want = 6;
  }
  SECTION("undecodable HPACK: COMPRESSION_ERROR") {
    raw.sendFrame(kHeaders, kEndHeaders, 1, "\x80");  // indexed field 0
    want = 9;
  }
  SECTION("DATA on an idle stream: PROTOCOL_ERROR") {
    raw.sendFrame(kData, 0, 1, grpcMessage("x"));
    want = 1;
  }
  SECTION("CONTINUATION without HEADERS: PROTOCOL_ERROR") {
    raw.sendFrame(kContinuation, kEndHeaders, 1, "");
    want = 1;
  }
  SECTION("HEADERS on an even stream id: PROTOCOL_ERROR") {
    raw.sendFrame(kHeaders, kEndHeaders, 2, requestHeaders(kPath));
    want = 1;
  }
  REQUIRE(raw.readUntilClosed(5s));
  CHECK(goawayCode(raw.seen) == want);
  CHECK(ts.server->stats().protocol_errors == 1);
}

TEST_CASE("wire grpc_server: a compressed message ends the call with grpc-status 12") {
  TestServer ts;
  RawConn raw(ts.port());
  raw.sendPreface();
  raw.openCall(1);
  raw.sendFrame(kData, 0, 1, grpcMessage("x", /*compressed=*/true));
  auto trailers = raw.waitFrame([](const Frame& f) {
    return f.type == kHeaders && f.stream == 1 && (f.flags & kEndStream);
  });
  REQUIRE(trailers.has_value());
  auto h = decodeHeaders(trailers->payload);
  CHECK(h["grpc-status"] == "12");
  CHECK(h[":status"] == "200");
  CHECK(h["content-type"] == "application/grpc");
  REQUIRE(ts.recorder.waitFor([](const Recorder::Counts& c) { return c.done == 1; }));
  CHECK(ts.recorder.counts().messages == 0);
  // The connection lives on: a PING is answered and a new call works.
  raw.sendFrame(kPing, 0, 0, "12345678");
  auto ack = raw.waitFrame([](const Frame& f) { return f.type == kPing && (f.flags & kAck); });
  REQUIRE(ack.has_value());
  CHECK(ack->payload == "12345678");
  raw.openCall(3);
  raw.sendFrame(kData, kEndStream, 3, grpcMessage("ok"));
  auto end3 = raw.waitFrame([](const Frame& f) {
    return f.type == kHeaders && f.stream == 3 && (f.flags & kEndStream);
  });
  REQUIRE(end3.has_value());
  CHECK(decodeHeaders(end3->payload)["grpc-status"] == "0");
}

TEST_CASE("wire grpc_server: other content types get HTTP 415, unknown paths grpc-status 12") {
  TestServer ts;
  RawConn raw(ts.port());
  raw.sendPreface();
  std::string json;
  hpackAppendLiteral(json, ":method", "POST");
  hpackAppendLiteral(json, ":scheme", "http");
  hpackAppendLiteral(json, ":path", kPath);
  hpackAppendLiteral(json, "content-type", "application/json");
  raw.sendFrame(kHeaders, kEndHeaders | kEndStream, 1, json);
  raw.sendFrame(kHeaders, kEndHeaders | kEndStream, 3, requestHeaders(kUnknownPath));
  auto r1 = raw.waitFrame([](const Frame& f) { return f.type == kHeaders && f.stream == 1; });
  auto r3 = raw.waitFrame([](const Frame& f) { return f.type == kHeaders && f.stream == 3; });
  REQUIRE(r1.has_value());
  REQUIRE(r3.has_value());
  CHECK(decodeHeaders(r1->payload)[":status"] == "415");
  CHECK(decodeHeaders(r3->payload)["grpc-status"] == "12");
  CHECK(ts.recorder.counts().opened == 0);
}

TEST_CASE("wire grpc_server: a header block split over CONTINUATION frames opens a call") {
  TestServer ts;
  RawConn raw(ts.port());
  raw.sendPreface();
  std::string block = requestHeaders(kPath);
  hpackAppendLiteral(block, "x-big", std::string(9000, 'v'));
  raw.sendFrame(kHeaders, kEndStream, 1, block.substr(0, 100));
  raw.sendFrame(kContinuation, 0, 1, block.substr(100, 5000));
  raw.sendFrame(kContinuation, kEndHeaders, 1, block.substr(5100));
  auto end = raw.waitFrame([](const Frame& f) {
    return f.type == kHeaders && f.stream == 1 && (f.flags & kEndStream);
  });
  REQUIRE(end.has_value());
  CHECK(decodeHeaders(end->payload)["grpc-status"] == "0");
  const auto infos = ts.recorder.infos();
  REQUIRE(infos.size() == 1);
  REQUIRE(infos[0].header("x-big") != nullptr);
  CHECK(infos[0].header("x-big")->size() == 9000);
}

// A client that keeps sending frames the server must answer (PING, SETTINGS) or refuse
// (streams to an unknown method) while never reading would make the server queue answers
// without bound (RFC 9113 §10.5); it must be cut off instead.
TEST_CASE("wire grpc_server: a client flooding frames that need answers is cut off") {
  TestServer ts;
  RawConn raw(ts.port(), /*rcvbuf=*/4096);
  raw.sendPreface();
  raw.openCall(1);  // so that the handshake timeout does not end the flood first
  std::function<std::string(uint32_t)> batch;  // 1000 frames; the argument numbers batches
  SECTION("PING") {
    batch = [](uint32_t) {
      std::string b;
      for (int i = 0; i < 1000; ++i) {
        b += frameBytes(kPing, 0, 0, "flooding");
      }
      return b;
    };
  }
  SECTION("SETTINGS") {
    batch = [](uint32_t) {
      std::string b;
      for (int i = 0; i < 1000; ++i) {
        b += frameBytes(kSettings, 0, 0, "");
      }
      return b;
    };
  }
  SECTION("calls to an unknown method") {
    batch = [](uint32_t n) {
      std::string b;
      for (uint32_t i = 0; i < 1000; ++i) {
        b += frameBytes(kHeaders, kEndHeaders | kEndStream, 3 + 2 * (n * 1000 + i),
                        requestHeaders(kUnknownPath));
      }
      return b;
    };
  }
  size_t sent = 0;
  for (uint32_t n = 0; sent < (48u << 20) && !raw.sendFailed(); ++n) {
    const std::string b = batch(n);
    raw.send(b);
    sent += b.size();
  }
  REQUIRE(raw.readUntilClosed(10s));
  CHECK(ts.server->stats().protocol_errors == 1);
}

TEST_CASE("wire grpc_server: rapid reset (open and cancel streams in a loop) is cut off") {
  ServerOptions o;
  o.max_streams_per_second = 100;
  TestServer ts(o);
  RawConn raw(ts.port());
  raw.sendPreface();
  // Never more than one stream open at once, so the concurrency limit never trips.
  std::string b;
  for (uint32_t i = 0; i < 500; ++i) {
    const uint32_t stream = 1 + 2 * i;
    b += frameBytes(kHeaders, kEndHeaders, stream, requestHeaders(kPath));
    b += frameBytes(kRstStream, 0, stream, std::string("\0\0\0\x08", 4));  // CANCEL
  }
  raw.send(b);
  REQUIRE(raw.readUntilClosed(5s));
  CHECK(goawayCode(raw.seen) == 0xb);  // ENHANCE_YOUR_CALM
  CHECK(ts.server->stats().protocol_errors == 1);
  // A well-behaved client on another connection is unaffected.
  auto channel = plainChannel(ts.port());
  CHECK(runCall(*channel, {"hi"}).status.error_code() == grpc::StatusCode::OK);
}

TEST_CASE("wire grpc_server: a claimed message length reserves no memory up front") {
  ServerOptions o;
  o.max_receive_message_bytes = 256u << 20;
  TestServer ts(o);
  const int64_t before = vmSizeBytes();
  RawConn raw(ts.port());
  raw.sendPreface();
  for (uint32_t id = 1; id <= 7; id += 2) {
    raw.openCall(id);
    std::string data = grpcMessage("x");
    const uint32_t claimed = 255u << 20;
    for (int k = 0; k < 4; ++k) {
      data[1 + k] = static_cast<char>(claimed >> (24 - 8 * k));
    }
    raw.sendFrame(kData, 0, id, data);
  }
  // Frames are handled in order: once the PING is answered the DATA frames were consumed.
  raw.sendFrame(kPing, 0, 0, "measured");
  REQUIRE(raw.waitFrame([](const Frame& f) { return f.type == kPing && (f.flags & kAck); }));
  const int64_t grown = vmSizeBytes() - before;
  CHECK(grown < (128 << 20));  // 4 calls claiming 255 MiB each, 1 byte sent
}

TEST_CASE("wire grpc_server: random frames never crash or hang the server") {
  ServerOptions o;
  o.max_receive_message_bytes = 4096;
  TestServer ts(o);
  std::mt19937 rng(20240611);
  auto byte = [&rng] { return static_cast<char>(rng() & 0xff); };
  constexpr int kConnections = 3000;
  int hung = 0;
  for (int i = 0; i < kConnections; ++i) {
    RawConn raw(ts.port());
    REQUIRE(raw.connected());
    std::string out;
    const uint32_t shape = rng() % 8;
    if (shape == 0) {
      for (uint32_t n = rng() % 64; n > 0; --n) {  // garbage instead of a preface
        out.push_back(byte());
      }
    } else if (shape == 1) {
      out.append(kPreface);  // a valid preface, then nothing but random bytes
      for (uint32_t n = rng() % 256; n > 0; --n) {
        out.push_back(byte());
      }
    } else {
      out.append(kPreface);
      out += frameBytes(kSettings, 0, 0, "");
      if (shape >= 4) {  // a live call, so stream frames reach a handler
        out += frameBytes(kHeaders, kEndHeaders, 1, requestHeaders(kPath));
      }
      for (uint32_t frames = rng() % 8; frames > 0; --frames) {
        const uint8_t type = static_cast<uint8_t>(rng() % 11);
        const uint8_t flags = static_cast<uint8_t>(rng() & 0xff);
        const uint32_t stream = rng() % 3 == 0 ? rng() : rng() % 6;
        std::string payload;
        if (type == kData && rng() % 2 == 0) {  // a gRPC message (maybe a command, maybe big)
          const uint32_t len = rng() % 3 == 0 ? rng() : rng() % 64;
          payload = grpcMessage(std::string(std::min<uint32_t>(len, 64), 'm'));
          payload[0] = static_cast<char>(rng() % 4 == 0 ? 1 : 0);
          for (int k = 0; k < 4; ++k) {
            payload[1 + k] = static_cast<char>(len >> (24 - 8 * k));
          }
        } else {
          for (uint32_t n = rng() % 40; n > 0; --n) {
            payload.push_back(byte());
          }
        }
        const uint32_t length_override = rng() % 16 == 0 ? rng() & 0xffffff : 0;
        out += frameBytes(type, flags, stream, payload, length_override);
      }
      if (rng() % 4 == 0) {
        for (uint32_t n = rng() % 32; n > 0; --n) {
          out.push_back(byte());
        }
      }
    }
    raw.send(out);
    raw.shutdownWrite();
    // Whatever it made of the input, the server must read our EOF and close.
    if (!raw.readUntilClosed(5s)) {
      ++hung;
    }
  }
  CHECK(hung == 0);
  CHECK(ts.server->stats().protocol_errors > 0);
  // A real client still works.
  auto channel = plainChannel(ts.port());
  const CallResult r = runCall(*channel, {"still", "", "alive"});
  CHECK(r.status.error_code() == grpc::StatusCode::OK);
  CHECK(r.received == std::vector<std::string>{"still", "", "alive"});
  const int opened = ts.recorder.counts().opened;
  CHECK(opened > kConnections / 3);
  REQUIRE(ts.recorder.waitFor([&](const Recorder::Counts& c) { return c.done == opened; }));
  ts.server->shutdown();
  CHECK(ts.recorder.allDoneOnce());
}

TEST_CASE("wire grpc_server: a silent connection is closed after handshake_timeout_ms") {
  ServerOptions o;
  o.handshake_timeout_ms = 300;
  TestServer ts(o);
  SECTION("nothing at all") {
    const auto start = Clock::now();
    RawConn raw(ts.port());
    REQUIRE(raw.readUntilClosed(5s));
    CHECK(msSince(start) >= 290);
  }
  SECTION("a preface but no call") {
    const auto start = Clock::now();
    RawConn raw(ts.port());
    raw.sendPreface();
    REQUIRE(raw.readUntilClosed(5s));
    CHECK(msSince(start) >= 290);
  }
}

TEST_CASE("wire grpc_server: a client that does not answer PING is closed") {
  ServerOptions o;
  o.keepalive_time_ms = 200;
  o.keepalive_timeout_ms = 200;
  o.handshake_timeout_ms = 60000;
  TestServer ts(o);
  RawConn answers(ts.port());
  RawConn silent(ts.port());
  const auto start = Clock::now();
  for (RawConn* c : {&answers, &silent}) {
    c->sendPreface();
    c->openCall(1);
  }
  int answered = 0, silent_pings = 0;
  const auto deadline = Clock::now() + 10s;
  while (!silent.closed() && Clock::now() < deadline) {
    if (auto f = answers.readFrame(5ms); f && f->type == kPing && !(f->flags & kAck)) {
      answers.sendFrame(kPing, kAck, 0, f->payload);
      ++answered;
    }
    if (auto f = silent.readFrame(5ms); f && f->type == kPing && !(f->flags & kAck)) {
      ++silent_pings;
    }
  }
  REQUIRE(silent.closed());
  CHECK(msSince(start) >= 400);  // keepalive_time_ms + keepalive_timeout_ms
  CHECK(silent_pings >= 1);
  CHECK(answered >= 1);
  CHECK_FALSE(answers.closed());
  // The one that answers is still served.
  answers.sendFrame(kData, kEndStream, 1, grpcMessage("alive"));
  auto end = answers.waitFrame([](const Frame& f) {
    return f.type == kHeaders && f.stream == 1 && (f.flags & kEndStream);
  });
  REQUIRE(end.has_value());
  CHECK(decodeHeaders(end->payload)["grpc-status"] == "0");
}

// =============================================================================================
// 7. shutdown()

TEST_CASE("wire grpc_server: shutdown ends open calls and returns within its bounds") {
  ServerOptions o;
  o.workers = GENERATE(1u, 2u);
  TestServer ts(o);
  constexpr int kPerGroup = 3;
  struct Client {
    std::shared_ptr<grpc::Channel> channel;
    grpc::ClientContext ctx;
    std::unique_ptr<ByteStream> stream;
    grpc::Status status;
    std::thread reader;
  };
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 2 * kPerGroup; ++i) {
    auto c = std::make_unique<Client>();
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    c->channel = plainChannel(ts.port(), args);
    c->ctx.AddMetadata("x-group", i < kPerGroup ? "a" : "b");
    c->stream = openStream(*c->channel, c->ctx);
    REQUIRE(c->stream->Write(toBuffer("hello")));
    grpc::ByteBuffer in;
    REQUIRE(c->stream->Read(&in));
    clients.push_back(std::move(c));
  }
  for (auto& c : clients) {
    Client* cp = c.get();
    cp->reader = std::thread([cp] {
      grpc::ByteBuffer in;
      while (cp->stream->Read(&in)) {
      }
      cp->status = cp->stream->Finish();
    });
  }
  REQUIRE(ts.recorder.counts().opened == 2 * kPerGroup);
  constexpr uint32_t kGrace = 500;
  const auto start = Clock::now();
  std::thread stopper([&] { ts.server->shutdown(kGrace); });
  // Group "a" is finished by its owner during the grace period; group "b" is not and gets
  // its connections closed when the grace period ends.
  CHECK(ts.recorder.finishGroup("a", GrpcStatus{14, "draining", {}}) == kPerGroup);
  stopper.join();
  const int64_t took = msSince(start);
  for (auto& c : clients) {
    c->reader.join();
  }
  CHECK(took >= kGrace - 10);
  CHECK(took < kGrace + 2000);
  for (int i = 0; i < 2 * kPerGroup; ++i) {
    INFO("client " << i << ": " << clients[i]->status.error_message());
    CHECK(clients[i]->status.error_code() == grpc::StatusCode::UNAVAILABLE);
    if (i < kPerGroup) {
      CHECK(clients[i]->status.error_message() == "draining");
    }
  }
  const auto counts = ts.recorder.counts();
  CHECK(counts.done == 2 * kPerGroup);
  CHECK(counts.reads_done == kPerGroup);  // only group "b" saw its reads end
  CHECK(ts.recorder.allDoneOnce());
  CHECK(ts.server->stats().calls_active == 0);
  ts.server->shutdown();  // idempotent
}

// The trailers of a call are on the wire before its onDone has run (it is posted); a
// shutdown right then must still deliver it before the io threads stop.
TEST_CASE("wire grpc_server: shutdown right after a call's trailers still delivers onDone") {
  for (int i = 0; i < 100; ++i) {
    TestServer ts;
    RawConn raw(ts.port());
    raw.sendPreface();
    raw.sendFrame(kHeaders, kEndHeaders | kEndStream, 1, requestHeaders(kPath));
    REQUIRE(raw.waitFrame([](const Frame& f) {
      return f.type == kHeaders && f.stream == 1 && (f.flags & kEndStream);
    }));
    ts.server->shutdown(0);
    INFO("round " << i);
    REQUIRE(ts.recorder.allDoneOnce());
  }
}

TEST_CASE("wire grpc_server: shutdown without calls returns at once and refuses new ones") {
  TestServer ts;
  auto channel = plainChannel(ts.port());
  CHECK(runCall(*channel, {"x"}).status.error_code() == grpc::StatusCode::OK);
  const auto start = Clock::now();
  ts.server->shutdown(5000);
  CHECK(msSince(start) < 1000);
  CHECK(runCall(*channel, {"x"}).status.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK(ts.recorder.allDoneOnce());
}

}  // namespace
}  // namespace portico::cp::wire
