#include "data_plane/snapshot.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace portico::dp {
namespace {

bool isIpLiteral(const std::string& host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

// Blocking resolution; only ever called on the config thread.
bool resolve(const std::string& host, std::string* address) {
  std::string bare = host;
  if (bare.size() > 2 && bare.front() == '[' && bare.back() == ']') {
    bare = bare.substr(1, bare.size() - 2);
  }
  if (isIpLiteral(bare)) {
    *address = bare;
    return true;
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(bare.c_str(), nullptr, &hints, &res) != 0 || res == nullptr) {
    return false;
  }
  char text[INET6_ADDRSTRLEN] = {0};
  bool ok = false;
  for (addrinfo* ai = res; ai != nullptr && !ok; ai = ai->ai_next) {
    if (ai->ai_family == AF_INET) {
      ok = inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(ai->ai_addr)->sin_addr, text,
                     sizeof(text)) != nullptr;
    } else if (ai->ai_family == AF_INET6) {
      ok = inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(ai->ai_addr)->sin6_addr, text,
                     sizeof(text)) != nullptr;
    }
  }
  freeaddrinfo(res);
  if (ok) {
    *address = text;
  }
  return ok;
}

uint32_t timeoutOr(int32_t ms, uint32_t dflt) { return ms > 0 ? static_cast<uint32_t>(ms) : dflt; }

}  // namespace

absl::StatusOr<std::shared_ptr<const Snapshot>> Snapshot::build(config::v1::Snapshot config,
                                                                std::string hash) {
  std::shared_ptr<Snapshot> snap(new Snapshot());
  snap->config_ = std::move(config);
  snap->hash_ = std::move(hash);
  ASSIGN_OR_RETURN(snap->router_, router::Router::build(snap->config_));
  snap->targets_.reserve(static_cast<size_t>(snap->config_.services_size()));
  for (const config::v1::Service& s : snap->config_.services()) {
    ServiceTarget t;
    t.service = &s;
    const bool https = s.protocol() == "https" || s.protocol() == "grpcs";
    t.port = s.port() > 0 && s.port() <= 65535 ? static_cast<uint16_t>(s.port())
                                               : static_cast<uint16_t>(https ? 443 : 80);
    t.resolved = resolve(s.host(), &t.address);
    if (!t.resolved) {
      LOG_WARN("snapshot", "service %s: cannot resolve host %s", s.id(), s.host());
    }
    t.pool_key = absl::StrCat(t.address, "|", t.port);
    const uint16_t default_port = https ? 443 : 80;
    t.host_header = t.port == default_port ? s.host() : absl::StrCat(s.host(), ":", t.port);
    t.base_path = s.has_path() && !s.path().empty() ? s.path() : "/";
    t.connect_timeout_ms = timeoutOr(s.connect_timeout(), 60000);
    t.read_timeout_ms = timeoutOr(s.read_timeout(), 60000);
    t.write_timeout_ms = timeoutOr(s.write_timeout(), 60000);
    snap->targets_.push_back(std::move(t));
  }
  return std::shared_ptr<const Snapshot>(std::move(snap));
}

}  // namespace portico::dp
