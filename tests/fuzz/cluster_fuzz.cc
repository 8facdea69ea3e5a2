#include "tests/fuzz/cluster_fuzz.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "control_plane/sync/wire/grpc_server.h"
#include "control_plane/sync/wire/hpack.h"

namespace portico::fuzz {
namespace {

using cp::wire::CallHandler;
using cp::wire::CallInfo;
using cp::wire::GrpcServer;
using cp::wire::ServerCall;

// Answers every message with itself, then OK: enough to drive calls through their states.
class Echo final : public CallHandler {
 public:
  explicit Echo(ServerCall* call) : call_(call) {}
  void onMessage(std::string_view message) override {
    if (!writing_) {
      writing_ = true;
      call_->write(std::make_shared<const std::string>(message));
    }
  }
  void onReadsDone() override { call_->finish({}); }
  void onWriteDone(bool) override { writing_ = false; }
  void onDone() override { delete this; }

 private:
  ServerCall* call_;
  bool writing_ = false;
};

GrpcServer& server() {
  static GrpcServer* const kServer = [] {
    cp::wire::ServerOptions o;
    o.listen_address = "127.0.0.1:0";
    o.handshake_timeout_ms = 2000;
    o.max_receive_message_bytes = 64 * 1024;
    auto s = GrpcServer::start(std::move(o), "/portico.sync.v1.ConfigSync/Sync",
                               [](ServerCall* call, CallInfo) { return new Echo(call); });
    if (!s.ok()) {
      std::abort();
    }
    return s->release();
  }();
  return *kServer;
}

}  // namespace

int fuzzHpack(const uint8_t* data, size_t size) {
  if (size == 0) {
    return 0;
  }
  const size_t blocks = 1 + data[0] % 4;
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  cp::wire::HpackDecoder decoder;
  const size_t step = rest.size() / blocks + 1;
  for (size_t b = 0; b < blocks && !rest.empty(); ++b) {
    const std::string_view block = rest.substr(0, step);
    rest.remove_prefix(block.size());
    size_t listed = 0;
    const absl::Status st = decoder.decode(
        block, [&](std::string_view name, std::string_view value) {
          listed += name.size() + value.size() + 32;
        });
    // What was emitted stays within the header list limit, error or not.
    if (listed > 16384 + 32 + block.size() * 2 + 8192) {
      std::abort();
    }
    if (!st.ok()) {
      break;
    }
  }
  return 0;
}

int fuzzH2Frames(const uint8_t* data, size_t size) {
  const int port = server().port();
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    if (fd >= 0) ::close(fd);
    return 0;
  }
  static constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  std::string out(kPreface);
  out.append(reinterpret_cast<const char*>(data), size);
  size_t off = 0;
  while (off < out.size()) {
    const ssize_t n = ::send(fd, out.data() + off, out.size() - off, MSG_NOSIGNAL);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  ::shutdown(fd, SHUT_WR);
  char buf[4096];
  for (int waited = 0; waited < 300;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) == 0) {
      waited += 50;
      continue;
    }
    if (::recv(fd, buf, sizeof(buf), 0) <= 0) break;
  }
  ::close(fd);
  return 0;
}

}  // namespace portico::fuzz
