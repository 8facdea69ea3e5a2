// Settings of the proxy engine, filled from flags by main and by tests directly.
#pragma once

#include <cstdint>
#include <string>

#include "common/http/http_parser.h"

namespace portico::dp {

struct ProxyOptions {
  std::string listen_address = "0.0.0.0";
  uint16_t listen_port = 8000;  // 0 picks a free port (tests); every worker shares it
  uint32_t workers = 1;
  http::Limits limits;          // head size, header count, URI length (400/414/431 above them)
  // Client side (nginx/Kong defaults).
  uint32_t client_header_timeout_ms = 60000;
  uint32_t client_body_timeout_ms = 60000;
  uint32_t keepalive_timeout_ms = 60000;
  uint32_t send_timeout_ms = 60000;
  uint32_t keepalive_requests = 10000;  // requests per client connection before closing it
  // Upstream keep-alive pool, per worker and per upstream address.
  uint32_t upstream_keepalive_pool_size = 256;
  uint32_t upstream_keepalive_idle_timeout_ms = 60000;
  uint32_t upstream_keepalive_max_requests = 10000;
};

}  // namespace portico::dp
