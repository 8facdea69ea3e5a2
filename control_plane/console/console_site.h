// The web console's listener (--console_listen, default 127.0.0.1:8002): it serves the
// console's static single-page app and /config.json, which tells the app where the Admin
// API is. It holds nothing privileged: the app calls the Admin API itself (CORS,
// cors.h), with the admin token the user types in.
#pragma once

#include <string>

#include "control_plane/admin_api/admin_api.h"

namespace portico::cp::console {

struct ConsoleOptions {
  // --admin_gui_api_url: the Admin API's URL as browsers reach it. Empty: the app uses the
  // page's own host with admin_port and admin_tls below.
  std::string admin_api_url;
  int admin_port = 8001;
  bool admin_tls = false;
  bool admin_auth = false;  // --admin_auth=on: the app asks for a token first
};

// Answers one request of the console listener (AdminServerOptions::handler): GET or HEAD of
// "/" (the app), an embedded file, or /config.json; 404 for any other path, 405 for other
// methods. Every answer carries a Content-Security-Policy that lets the page run only its own
// script and connect only to http(s) origins (the Admin API). Thread-safe.
ApiResponse handleConsoleRequest(const ConsoleOptions& options, const ApiRequest& request);

// The JSON /config.json answers.
std::string consoleConfigJson(const ConsoleOptions& options);

}  // namespace portico::cp::console
