// Which origin the Admin API's answers allow (Access-Control-Allow-Origin), as Kong decides
// it from admin_gui_url (kong/api/api_helpers.lua cors_filter): the console's own origins
// when they are configured, else any. Immutable once parsed; shared by the I/O thread.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace portico::cp {

class CorsOrigins {
 public:
  // Every origin allowed (no --admin_gui_url).
  CorsOrigins() = default;

  // `admin_gui_url`: comma-separated http(s) URLs; each allows its scheme://host[:port] (a
  // path is ignored, as Kong does). "" allows any origin. kInvalidArgument names a URL that
  // is not http(s)://host.
  static absl::StatusOr<CorsOrigins> parse(std::string_view admin_gui_url);

  // The Access-Control-Allow-Origin for a request with this Origin header ("" = none): the
  // origin itself if allowed; else the first configured one; with none configured, the
  // request's origin or "*".
  std::string allowOrigin(std::string_view request_origin) const;

  const std::vector<std::string>& origins() const { return origins_; }

 private:
  std::vector<std::string> origins_;
};

}  // namespace portico::cp
