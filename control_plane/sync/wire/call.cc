// A gRPC call: the application's writes and finish, handed to its connection's worker.
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <boost/asio/post.hpp>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "control_plane/sync/wire/server_internal.h"

namespace portico::cp::wire::internal {

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
}  // namespace portico::cp::wire::internal
