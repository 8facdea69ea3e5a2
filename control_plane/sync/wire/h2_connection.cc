// A cluster connection's HTTP/2: frame parsing, SETTINGS, HEADERS + CONTINUATION (HPACK),
// DATA with gRPC message framing, flow control, stream limits (the rapid-reset cap), trailers,
// GOAWAY, and the keepalive and handshake sweeps.
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
  const auto method_it = core_.methods.find(path);
  if (method_it == core_.methods.end()) {
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
  info.path = path;
  call->handler_ = method_it->second(call.get(), std::move(info));
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
}  // namespace portico::cp::wire::internal
