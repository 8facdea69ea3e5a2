#include "control_plane/console/console_site.h"

#include <nlohmann/json.hpp>

#include "control_plane/console/assets.h"

namespace portico::cp::console {
namespace {

// The page runs only its own bundle; it talks to the Admin API, on another origin (another
// port at least) that the listener cannot name for every way a browser may reach it, hence
// any http(s) origin for connect-src. Styles: uPlot and Preact set element styles through
// the CSSOM, which style-src does not govern.
constexpr char kCsp[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' http: https:; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'";

void addCommonHeaders(ApiResponse& r) {
  r.headers.emplace_back("Content-Security-Policy", kCsp);
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  r.headers.emplace_back("X-Frame-Options", "DENY");
  r.headers.emplace_back("Referrer-Policy", "no-referrer");
}

ApiResponse text(int status, std::string body) {
  ApiResponse r{status, std::move(body), "text/plain; charset=utf-8"};
  addCommonHeaders(r);
  return r;
}

const Asset* findAsset(std::string_view path) {
  for (const Asset& a : embeddedAssets()) {
    if (a.path == path) {
      return &a;
    }
  }
  return nullptr;
}

}  // namespace

std::string consoleConfigJson(const ConsoleOptions& options) {
  nlohmann::json j = {{"admin_api_url", options.admin_api_url},
                      {"admin_api_port", options.admin_port},
                      {"admin_api_scheme", options.admin_tls ? "https" : "http"},
                      {"admin_auth", options.admin_auth}};
  return j.dump();
}

ApiResponse handleConsoleRequest(const ConsoleOptions& options, const ApiRequest& request) {
  if (request.method != "GET") {
    ApiResponse r = text(405, "Method not allowed\n");
    r.headers.emplace_back("Allow", "GET");
    return r;
  }
  std::string_view path = request.target;
  path = path.substr(0, path.find_first_of("?#"));
  if (path == "/config.json") {
    ApiResponse r{200, consoleConfigJson(options), "application/json"};
    addCommonHeaders(r);
    r.headers.emplace_back("Cache-Control", "no-store");
    return r;
  }
  const Asset* asset = findAsset(path == "/" ? "/index.html" : path);
  if (asset == nullptr) {
    return text(404, "Not found\n");
  }
  ApiResponse r;
  // Revalidated on every load (no-cache): a new portico-cp serves its own bundle at once,
  // and an unchanged one costs a 304.
  if (request.header("if-none-match") == asset->etag) {
    r = ApiResponse{304, "", std::string(asset->content_type)};
  } else {
    r = ApiResponse{200, std::string(asset->body), std::string(asset->content_type)};
  }
  addCommonHeaders(r);
  r.headers.emplace_back("ETag", std::string(asset->etag));
  r.headers.emplace_back("Cache-Control", "no-cache");
  return r;
}

}  // namespace portico::cp::console
