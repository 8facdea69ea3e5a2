// Settings of the proxy engine, filled from flags by main and by tests directly.
#pragma once

#include <cstdint>
#include <string>

#include "common/http/http_parser.h"
#include "data_plane/proxy/trusted_ips.h"

namespace portico::dp {

namespace vitals {
class Collector;
}

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
  // HTTPS listener (--proxy_ssl_listen). The certificate is chosen by SNI from the snapshot;
  // without a match the default one: ssl_cert/ssl_cert_key, or one self-signed at start.
  bool ssl_enabled = false;
  std::string ssl_listen_address = "0.0.0.0";
  uint16_t ssl_listen_port = 8443;  // 0 picks a free port
  std::string ssl_cert_pem;
  std::string ssl_key_pem;
  // Kong's trusted_ips, real_ip_header and real_ip_recursive: peers whose X-Forwarded-* and
  // real-IP header are believed.
  TrustedIps trusted_ips;
  std::string real_ip_header = "X-Real-IP";
  bool real_ip_recursive = false;
  // The largest request body read whole for a plugin that needs it (request-transformer's body
  // edits); a larger one is refused with 413. Kong reads bodies into memory up to
  // client_body_buffer_size and to a temp file beyond.
  uint64_t max_request_body_buffer = 8 * 1024 * 1024;
  // The largest response body held whole for a plugin that edits it (response-transformer's
  // JSON edits); a larger one streams through unchanged.
  uint64_t max_response_body_buffer = 8 * 1024 * 1024;
  // Kong's allow_debug_header: `Kong-Debug: 1` adds Kong-Route-Id/-Name, Kong-Service-Id/-Name.
  bool allow_debug_header = false;
  // Traffic buckets reported to the control plane (data_plane/vitals/); not owned, must
  // outlive the proxy. Null: vitals off.
  vitals::Collector* vitals = nullptr;
};

}  // namespace portico::dp
