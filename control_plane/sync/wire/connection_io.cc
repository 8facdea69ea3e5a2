// A cluster connection's setup and I/O: TLS handshake (the client certificate is judged
// inside it), socket readiness, reads into the worker's buffer, and batched writes.
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
}  // namespace portico::cp::wire::internal
