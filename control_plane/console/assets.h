// The web console's files (web/console/, bundled by its build.sh), embedded in portico-cp at
// build time so the binary needs nothing beside it at run time. Immutable static data.
#pragma once

#include <span>
#include <string_view>

namespace portico::cp::console {

struct Asset {
  std::string_view path;          // "/index.html", "/app.js", ...
  std::string_view content_type;
  std::string_view body;
  std::string_view etag;          // quoted, as sent in ETag
};

// Every embedded file (generated: <build>/web/console/console_assets.cc).
std::span<const Asset> embeddedAssets();

}  // namespace portico::cp::console
