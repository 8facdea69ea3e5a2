// Request helpers the plugins share: query-string arguments (ngx.decode_args semantics),
// Kong-style header-name matching, and the consumer headers and `anonymous` rule every
// authentication plugin applies (kong.client.authenticate + set_consumer).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "data_plane/plugins/consumers.h"
#include "data_plane/plugins/plugin.h"

namespace portico::dp::plugins {

// Strict base64 (padding optional); nullopt on any other character. `url_safe` also takes
// the URL alphabet ('-', '_'), as JWTs use.
std::optional<std::string> decodeBase64(std::string_view in, bool url_safe = false);

// Percent-decodes `in` ('+' is a space, as ngx.decode_args); false on a bad escape.
bool decodeQueryComponent(std::string_view in, std::string* out);

// Finds argument `name` (compared after decoding) in a raw query string. Returns how many
// times it occurs with a value (`name=...`); the first decoded value goes to *value.
// `name[]` and `name[1]` forms are other arguments, as in Kong.
int findQueryArg(std::string_view query, std::string_view name, std::string* value);
// `query` without every `name=...`/`name` argument, the others kept in order.
std::string removeQueryArg(std::string_view query, std::string_view name);

// Kong (nginx) header lookup for a configured name: case-insensitive, '_' and '-' equal.
bool findHeaderLoose(const http::RequestHead& head, std::string_view name,
                     std::string_view* value, std::string_view* actual_name = nullptr);

// True when a header value can be forwarded as is (no CR, LF or NUL).
bool safeHeaderValue(std::string_view value);

// Kong's set_consumer: authenticates the request and rewrites X-Consumer-ID,
// X-Consumer-Custom-ID, X-Consumer-Username, X-Credential-Identifier and X-Anonymous-Consumer
// upstream (set when there is a value, removed otherwise). `credential_identifier` empty =
// the anonymous consumer (no credential).
void setConsumer(RequestContext& ctx, const Consumer& consumer, std::string_view credential_id,
                 std::string_view credential_identifier);

// What an auth plugin does when its own check failed: with `anonymous` configured, the
// anonymous consumer is set and the request goes on (kContinue; Kong's logical OR), or 500
// when that consumer does not exist; without it, the 401 `message` goes out with
// `www_authenticate` (kStop).
PhaseResult failAuthentication(RequestContext& ctx, const std::string* anonymous, int status,
                               std::string_view message, std::string_view www_authenticate);

// Kong's logical OR: a plugin with `anonymous` does nothing when another auth plugin already
// set a credential.
inline bool alreadyAuthenticated(const RequestContext& ctx, const std::string* anonymous) {
  return anonymous != nullptr && !ctx.credentialId().empty();
}

// The access phase the auth plugins share (Kong's handler shape): skips OPTIONS unless
// `run_on_preflight`, skips when `anonymous` is set and another auth plugin already set a
// credential, then runs `authenticate()`, which returns "" once it set the consumer or the 401
// message; a failure goes through failAuthentication().
template <class Authenticate>
PhaseResult runAuthentication(RequestContext& ctx, const std::optional<std::string>& anonymous,
                              bool run_on_preflight, std::string_view www_authenticate,
                              Authenticate&& authenticate) {
  if (!run_on_preflight && ctx.method() == "OPTIONS") {
    return PhaseResult::kContinue;
  }
  const std::string* anon = anonymous ? &*anonymous : nullptr;
  if (alreadyAuthenticated(ctx, anon)) {
    return PhaseResult::kContinue;
  }
  const std::string_view message = authenticate();
  if (message.empty()) {
    return PhaseResult::kContinue;
  }
  return failAuthentication(ctx, anon, 401, message, www_authenticate);
}

}  // namespace portico::dp::plugins
