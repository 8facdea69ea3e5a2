// The Dev Portal listener's handler (portico-cp --portal_listen, served by the Admin API's
// HTTP transport with its own handler): the public pages (embedded assets from web/portal/,
// the published catalog versions and their OpenAPI documents, rendered by Redoc in the
// browser) and the developers' JSON API under /api/: sign-up, login, logout, applications and
// registrations. Pages are static: every value reaches the page as JSON and is inserted as
// text, and a strict Content-Security-Policy allows only the portal's own scripts.
//
// Sessions: a random 256-bit token in an HttpOnly, SameSite=Strict cookie (Secure over TLS);
// the server keeps only its SHA-256, with an expiry (portal_sessions). CSRF: every request but
// GET/HEAD must carry X-CSRF-Token: the session's own token (synchronizer token) when logged
// in, else the value of the portal's CSRF cookie (double submit); GET /api/csrf hands out the
// one that applies. Anything else is refused 403 before it is looked at. Login attempts and
// sign-ups are rate limited per client address and per email (429). handle() blocks on
// PostgreSQL: the transport calls it on a worker thread. Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "control_plane/admin_api/admin_api.h"
#include "control_plane/portal/provisioning.h"
#include "control_plane/portal/rate_limiter.h"

namespace portico::cp::portal {

struct PortalOptions {
  // Login attempts per email per minute; per client address, four times as many.
  uint32_t login_attempts_per_minute = 10;
  // Sign-ups per client address per hour; per email, 3 per hour. 0 = no limit.
  uint32_t signups_per_hour = 20;
  int64_t session_ttl_seconds = 12 * 3600;
};

class PortalWeb {
 public:
  // `store` must outlive this object.
  PortalWeb(PgConfigStore& store, const PortalOptions& options);
  ApiResponse handle(const ApiRequest& request);

 private:
  struct Caller;  // the request's session, if any
  ApiResponse route(const ApiRequest& request, Caller& caller);
  ApiResponse signup(const ApiRequest& request);
  ApiResponse login(const ApiRequest& request, Caller& caller);
  ApiResponse applications(const ApiRequest& request, const Caller& caller,
                           const std::vector<std::string>& segments);

  const PortalOptions options_;
  PortalActions actions_;
  RateLimiter login_per_email_, login_per_address_, signup_per_email_, signup_per_address_;
  const std::string dummy_hash_;  // verified against for unknown emails (same timing)
  std::atomic<int64_t> last_sweep_s_{0};  // expired sessions deleted at most once a minute
};

}  // namespace portico::cp::portal
