#include "control_plane/admin_api/cors.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"

namespace portico::cp {

absl::StatusOr<CorsOrigins> CorsOrigins::parse(std::string_view admin_gui_url) {
  CorsOrigins out;
  const std::string all(admin_gui_url);
  for (absl::string_view piece : absl::StrSplit(all, ',', absl::SkipWhitespace())) {
    const std::string url(absl::StripAsciiWhitespace(piece));
    const size_t scheme_end = url.find("://");
    const std::string scheme =
        absl::AsciiStrToLower(url.substr(0, std::min(scheme_end, url.size())));
    const size_t host = scheme_end == std::string::npos ? url.size() : scheme_end + 3;
    const size_t host_end = std::min(url.find_first_of("/?#", host), url.size());
    if ((scheme != "http" && scheme != "https") || host_end == host) {
      return absl::InvalidArgumentError("--admin_gui_url: '" + url +
                                        "' is not an http(s)://host[:port] URL");
    }
    // Browsers send the scheme and host in lower case.
    out.origins_.push_back(scheme + "://" +
                           absl::AsciiStrToLower(url.substr(host, host_end - host)));
  }
  return out;
}

std::string CorsOrigins::allowOrigin(std::string_view request_origin) const {
  if (origins_.empty()) {
    return request_origin.empty() ? "*" : std::string(request_origin);
  }
  const auto it = std::find(origins_.begin(), origins_.end(), request_origin);
  return it != origins_.end() ? *it : origins_.front();
}

}  // namespace portico::cp
