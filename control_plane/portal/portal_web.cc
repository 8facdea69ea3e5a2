#include "control_plane/portal/portal_web.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/declarative/declarative.h"
#include "common/declarative/yaml_json.h"
#include "common/logging.h"
#include "control_plane/admin_api/admin_util.h"
#include "control_plane/portal/portal_assets.h"
#include "control_plane/portal/portal_crypto.h"
#include "control_plane/portal/portal_json.h"

namespace portico::cp::portal {
namespace {

using config::Json;

constexpr char kSessionCookie[] = "portico_portal_session";
constexpr char kCsrfCookie[] = "portico_portal_csrf";
constexpr char kCsrfHeader[] = "x-csrf-token";
constexpr size_t kTokenBytes = 32;  // 256-bit session, CSRF and API key tokens
constexpr size_t kMaxEmail = 254;
constexpr size_t kMinPassword = 8;
constexpr size_t kMaxPassword = 1024;
constexpr size_t kMaxName = 255;
constexpr size_t kMaxDescription = 2000;

constexpr char kCsrfRefused[] = "Missing or invalid CSRF token";
constexpr char kLoginRequired[] = "Log in first";
constexpr char kBadCredentials[] = "Invalid email or password";
constexpr char kTooMany[] = "Too many attempts; try again later";
constexpr char kNotFound[] = "Not found";

// Every page may run the portal's own scripts only; Redoc styles itself with inline <style>
// (styled-components) and runs its search index in a blob: worker.
constexpr char kContentSecurityPolicy[] =
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'";

ApiResponse jsonAnswer(int status, const Json& body) {
  return {status, body.dump(-1, ' ', false, Json::error_handler_t::replace)};
}
ApiResponse messageAnswer(int status, const std::string& text) {
  return jsonAnswer(status, Json{{"message", text}});
}
ApiResponse fieldError(const std::string& field, const std::string& reason) {
  return jsonAnswer(400, Json{{"message", field + ": " + reason}, {"fields", {{field, reason}}}});
}

std::string cookieValue(const ApiRequest& req, std::string_view name) {
  for (const auto& [header, value] : req.headers) {
    if (header != "cookie") continue;
    size_t pos = 0;
    while (pos < value.size()) {
      size_t end = value.find(';', pos);
      if (end == std::string::npos) end = value.size();
      std::string_view part(value.data() + pos, end - pos);
      while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
      if (part.size() > name.size() && part.substr(0, name.size()) == name &&
          part[name.size()] == '=') {
        return std::string(part.substr(name.size() + 1));
      }
      pos = end + 1;
    }
  }
  return "";
}

// A token we issued: 64 lower-case hex characters.
bool isToken(const std::string& s) {
  return s.size() == 2 * kTokenBytes &&
         std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::string setCookie(const std::string& name, const std::string& value, int64_t max_age,
                      bool secure) {
  return name + "=" + value + "; Path=/; Max-Age=" + std::to_string(max_age) +
         "; HttpOnly; SameSite=Strict" + (secure ? "; Secure" : "");
}

// Text a person typed: no control characters (tab and newlines only with `multiline`).
bool cleanText(const std::string& s, bool multiline) {
  for (unsigned char c : s) {
    if ((c < 0x20 && !(multiline && (c == '\n' || c == '\r' || c == '\t'))) || c == 0x7f) {
      return false;
    }
  }
  return true;
}

// A plausible address: local@domain.tld, printable ASCII without spaces or quotes.
bool plausibleEmail(const std::string& e) {
  const size_t at = e.find('@');
  if (e.empty() || e.size() > kMaxEmail || at == 0 || at == std::string::npos ||
      e.find('@', at + 1) != std::string::npos) {
    return false;
  }
  const std::string domain = e.substr(at + 1);
  if (domain.size() < 3 || domain.find('.') == std::string::npos || domain.front() == '.' ||
      domain.back() == '.') {
    return false;
  }
  return std::all_of(e.begin(), e.end(), [](unsigned char c) {
    return c > 0x20 && c < 0x7f && c != '"' && c != '<' && c != '>' && c != '\\' && c != ',' &&
           c != ';' && c != '(' && c != ')';
  });
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// The JSON object body, or the answer refusing it.
std::optional<ApiResponse> readJsonObject(const ApiRequest& req, Json* out) {
  if (lower(req.content_type).rfind("application/json", 0) != 0) {
    return messageAnswer(415, "Send a JSON body (Content-Type: application/json)");
  }
  Json body = Json::parse(req.body, nullptr, false);
  if (!body.is_object()) {
    return messageAnswer(400, "The body must be a JSON object");
  }
  *out = std::move(body);
  return std::nullopt;
}

// body[field] as a string: "" when absent; nullopt when present but not a string.
std::optional<std::string> stringField(const Json& body, const char* field) {
  if (!body.contains(field) || body[field].is_null()) return std::string();
  if (!body[field].is_string()) return std::nullopt;
  return body[field].get<std::string>();
}

ApiResponse asset(std::string_view name) {
  const PortalAsset* a = findPortalAsset(name);
  if (a == nullptr) {
    return messageAnswer(404, kNotFound);
  }
  ApiResponse r{200, std::string(a->data)};
  r.content_type = a->content_type;
  r.headers.emplace_back("Cache-Control", "no-cache");
  return r;
}

// Markdown descriptions with their HTML tags made text: '<' becomes "&lt;", which Markdown
// renders as a literal '<'. Redoc renders `description` fields as Markdown, and Markdown
// passes HTML through; its own sanitizing (untrustedSpec) still let an <img onerror> reach
// the page (the CSP blocked it, which is the second line, not the first).
void neutralizeDescriptions(Json& node) {
  if (node.is_array()) {
    for (Json& item : node) neutralizeDescriptions(item);
    return;
  }
  if (!node.is_object()) return;
  for (auto it = node.begin(); it != node.end(); ++it) {
    if (it.key() == "description" && it->is_string()) {
      std::string& text = it->get_ref<std::string&>();
      std::string out;
      out.reserve(text.size());
      for (char c : text) {
        if (c == '<') {
          out += "&lt;";
        } else {
          out += c;
        }
      }
      text = std::move(out);
    } else {
      neutralizeDescriptions(*it);
    }
  }
}

// The document as the docs page renders it: parsed (JSON or YAML, with the loader's limits),
// descriptions neutralized, served as JSON.
ApiResponse docsSpec(const std::string& text) {
  declarative::YamlParse parsed =
      declarative::parseYaml(text, declarative::LoadOptions{}.yamlLimits());
  if (!parsed.ok) {
    return messageAnswer(422, "The OpenAPI document cannot be read");
  }
  neutralizeDescriptions(parsed.value);
  ApiResponse r = jsonAnswer(200, parsed.value);
  r.content_type = "application/json";
  return r;
}

}  // namespace

struct PortalWeb::Caller {
  std::optional<PortalSession> session;
  std::string token_hash;  // of the session cookie, when one was sent
  std::string csrf_cookie;
  bool tls = false;
};

PortalWeb::PortalWeb(PgConfigStore& store, const PortalOptions& options)
    : options_(options),
      actions_(store),
      login_per_email_(options.login_attempts_per_minute, std::chrono::seconds(60)),
      login_per_address_(4 * options.login_attempts_per_minute, std::chrono::seconds(60)),
      signup_per_email_(options.signups_per_hour == 0 ? 0 : 3, std::chrono::seconds(3600)),
      signup_per_address_(options.signups_per_hour, std::chrono::seconds(3600)),
      dummy_hash_(hashPassword(randomHex(16))) {}

ApiResponse PortalWeb::handle(const ApiRequest& request) {
  Caller caller;
  caller.tls = request.tls;
  caller.csrf_cookie = cookieValue(request, kCsrfCookie);
  const std::string session_token = cookieValue(request, kSessionCookie);
  ApiResponse answer;
  if (isToken(session_token)) {
    caller.token_hash = sha256Hex(session_token);
    auto session = actions_.db().getSession(caller.token_hash);
    if (session.ok() && session->developer.status == kPortalApproved) {
      caller.session = *std::move(session);
    } else if (!session.ok() && !absl::IsNotFound(session.status())) {
      LOG_WARN("portal", "session lookup failed: %s", session.status().ToString());
      answer = messageAnswer(503, admin::kUnavailable);
    }
  }
  if (answer.status == 200) {
    const bool safe = request.method == "GET" || request.method == "HEAD";
    if (!safe) {
      // The synchronizer token of the session, else the double-submitted cookie.
      const std::string sent = request.header(kCsrfHeader);
      const std::string& want = caller.session ? caller.session->csrf_token : caller.csrf_cookie;
      if (!isToken(sent) || !isToken(want) || !constantTimeEquals(sent, want)) {
        answer = messageAnswer(403, kCsrfRefused);
      }
    }
  }
  if (answer.status == 200) {
    answer = route(request, caller);
  }
  answer.headers.emplace_back("X-Content-Type-Options", "nosniff");
  answer.headers.emplace_back("X-Frame-Options", "DENY");
  answer.headers.emplace_back("Referrer-Policy", "same-origin");
  answer.headers.emplace_back("Content-Security-Policy", kContentSecurityPolicy);
  if (answer.content_type.empty()) {  // JSON: never cached, never a page
    answer.headers.emplace_back("Cache-Control", "no-store");
  }
  return answer;
}

ApiResponse PortalWeb::route(const ApiRequest& request, Caller& caller) {
  const admin::ParsedTarget target = admin::parseTarget(request.target);
  const std::vector<std::string>& seg = target.segments;
  const std::string& method = request.method;
  const bool get = method == "GET" || method == "HEAD";

  if (seg.empty() || seg[0] != "api") {
    if (!get) return messageAnswer(405, "Method not allowed");
    if (seg.empty()) return asset("index.html");
    if (seg[0] == "docs" && seg.size() == 3) return asset("docs.html");
    if (seg[0] == "assets" && seg.size() == 2) return asset(seg[1]);
    return messageAnswer(404, kNotFound);
  }
  const std::string what = seg.size() >= 2 ? seg[1] : "";
  if (what == "csrf" && seg.size() == 2 && get) {
    // With the developer when logged in, so a page learns both in one request.
    if (caller.session) {
      return jsonAnswer(200, Json{{"csrf_token", caller.session->csrf_token},
                                  {"developer", developerJson(caller.session->developer)}});
    }
    std::string token = caller.csrf_cookie;
    ApiResponse r;
    if (!isToken(token)) {
      token = randomHex(kTokenBytes);
      r.headers.emplace_back("Set-Cookie", setCookie(kCsrfCookie, token, 86400, caller.tls));
    }
    r.body = Json{{"csrf_token", token}, {"developer", nullptr}}.dump();
    return r;
  }
  if (what == "apis" && get) {
    if (seg.size() == 2) {
      auto apis = actions_.db().listPublishedApis();
      if (!apis.ok()) return admin::statusResponse(apis.status());
      Json data = Json::array();
      for (const PortalApi& a : *apis) data.push_back(apiJson(a));
      return jsonAnswer(200, Json{{"data", std::move(data)}});
    }
    if (seg.size() == 4 || (seg.size() == 5 && seg[4] == "spec")) {
      const bool spec = seg.size() == 5;
      auto api = actions_.db().getPublishedApi(seg[2], seg[3], spec);
      if (!api.ok()) return admin::statusResponse(api.status());
      if (!spec) return jsonAnswer(200, apiJson(*api));
      if (!api->spec) return messageAnswer(404, "This version has no OpenAPI document");
      if (target.query.count("render") != 0 && target.query.at("render") == "docs") {
        return docsSpec(*api->spec);
      }
      // Served as data, never as a page: a document cannot run as HTML on this origin.
      ApiResponse r{200, *std::move(api->spec)};
      r.content_type = api->spec_format == "yaml" ? "application/yaml" : "application/json";
      r.headers.emplace_back("Cache-Control", "no-store");
      return r;
    }
  }
  if (what == "signup" && seg.size() == 2 && method == "POST") return signup(request);
  if (what == "login" && seg.size() == 2 && method == "POST") return login(request, caller);
  if (what == "logout" && seg.size() == 2 && method == "POST") {
    if (!caller.token_hash.empty()) {
      if (absl::Status st = actions_.db().deleteSession(caller.token_hash); !st.ok()) {
        return admin::statusResponse(st);
      }
    }
    ApiResponse r{204, ""};
    r.headers.emplace_back("Set-Cookie", setCookie(kSessionCookie, "", 0, caller.tls));
    return r;
  }
  if (what == "me" && seg.size() == 2 && get) {
    if (!caller.session) return messageAnswer(401, kLoginRequired);
    Json me = developerJson(caller.session->developer);
    me["csrf_token"] = caller.session->csrf_token;
    return jsonAnswer(200, me);
  }
  if (what == "applications") {
    if (!caller.session) return messageAnswer(401, kLoginRequired);
    return applications(request, caller, seg);
  }
  return messageAnswer(404, kNotFound);
}

ApiResponse PortalWeb::signup(const ApiRequest& request) {
  Json body;
  if (auto bad = readJsonObject(request, &body)) return *std::move(bad);
  const auto email_in = stringField(body, "email");
  const auto password = stringField(body, "password");
  const auto name = stringField(body, "name");
  if (!email_in || email_in->empty()) return fieldError("email", "required");
  if (!password || password->empty()) return fieldError("password", "required");
  if (!name) return fieldError("name", "expected a string");
  const std::string email = lower(*email_in);
  if (!plausibleEmail(email)) return fieldError("email", "not a valid email address");
  if (password->size() < kMinPassword || password->size() > kMaxPassword) {
    return fieldError("password", "length must be between 8 and 1024");
  }
  if (name->size() > kMaxName) return fieldError("name", "length must be at most 255");
  if (!cleanText(*name, false)) return fieldError("name", "must not contain control characters");
  if (!signup_per_address_.allow(request.client_address) || !signup_per_email_.allow(email)) {
    ApiResponse r = messageAnswer(429, kTooMany);
    r.headers.emplace_back("Retry-After", "3600");
    return r;
  }
  auto settings = actions_.db().settings();
  if (!settings.ok()) return admin::statusResponse(settings.status());
  auto created =
      actions_.db().createDeveloper(email, *name, hashPassword(*password),
                                    settings->auto_approve_developers ? kPortalApproved
                                                                      : kPortalPending);
  if (absl::IsAlreadyExists(created.status())) {
    return jsonAnswer(409, Json{{"message", "This email is registered already"},
                                {"fields", {{"email", "already registered"}}}});
  }
  if (!created.ok()) return admin::statusResponse(created.status());
  return jsonAnswer(201, developerJson(*created));
}

ApiResponse PortalWeb::login(const ApiRequest& request, Caller& caller) {
  Json body;
  if (auto bad = readJsonObject(request, &body)) return *std::move(bad);
  const auto email_in = stringField(body, "email");
  const auto password = stringField(body, "password");
  if (!email_in || !password || email_in->empty() || password->empty() ||
      email_in->size() > kMaxEmail || password->size() > kMaxPassword) {
    return messageAnswer(400, "email and password are required");
  }
  const std::string email = lower(*email_in);
  // Both limits count every attempt; the address's first, so one client cycling through
  // emails is stopped too.
  if (!login_per_address_.allow(request.client_address) || !login_per_email_.allow(email)) {
    ApiResponse r = messageAnswer(429, kTooMany);
    r.headers.emplace_back("Retry-After", "60");
    return r;
  }
  auto developer = actions_.db().findDeveloperByEmail(email);
  if (!developer.ok() && !absl::IsNotFound(developer.status())) {
    return admin::statusResponse(developer.status());
  }
  // An unknown email costs the same hash as a known one.
  const bool match =
      verifyPassword(*password, developer.ok() ? developer->password_hash : dummy_hash_);
  if (!developer.ok() || !match) {
    return messageAnswer(401, kBadCredentials);
  }
  if (developer->status != kPortalApproved) {
    return messageAnswer(403, developer->status == kPortalPending
                                  ? "Your account is waiting for an administrator's approval"
                                  : "Your account is not active");
  }
  if (!caller.token_hash.empty()) {
    (void)actions_.db().deleteSession(caller.token_hash);  // a new session replaces it
  }
  // Expired sessions are never read again (getSession checks the expiry); a login now and
  // then deletes them, so the table holds live sessions and at most a minute of others.
  const int64_t now_s = std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::steady_clock::now().time_since_epoch())
                            .count();
  int64_t last = last_sweep_s_.load();
  if (now_s - last >= 60 && last_sweep_s_.compare_exchange_strong(last, now_s)) {
    if (auto swept = actions_.db().deleteExpiredSessions(); !swept.ok()) {
      LOG_WARN("portal", "deleting expired sessions: %s", swept.status().ToString());
    }
  }
  const std::string token = randomHex(kTokenBytes);
  const std::string csrf = randomHex(kTokenBytes);
  if (absl::Status st = actions_.db().createSession(sha256Hex(token), developer->id, csrf,
                                                    options_.session_ttl_seconds);
      !st.ok()) {
    return admin::statusResponse(st);
  }
  Json me = developerJson(*developer);
  me["csrf_token"] = csrf;
  ApiResponse r = jsonAnswer(200, me);
  r.headers.emplace_back(
      "Set-Cookie", setCookie(kSessionCookie, token, options_.session_ttl_seconds, caller.tls));
  return r;
}

ApiResponse PortalWeb::applications(const ApiRequest& request, const Caller& caller,
                                    const std::vector<std::string>& seg) {
  const std::string& developer_id = caller.session->developer.id;
  const std::string& method = request.method;
  if (seg.size() == 2) {
    if (method == "GET") {
      auto list = actions_.db().listApplications(developer_id, 1000, 1);
      if (!list.ok()) return admin::statusResponse(list.status());
      Json data = Json::array();
      for (const PortalApplication& a : list->items) data.push_back(applicationJson(a, true));
      return jsonAnswer(200, Json{{"data", std::move(data)}});
    }
    if (method != "POST") return messageAnswer(405, "Method not allowed");
    Json body;
    if (auto bad = readJsonObject(request, &body)) return *std::move(bad);
    const auto name = stringField(body, "name");
    const auto description = stringField(body, "description");
    if (!name || name->empty()) return fieldError("name", "required");
    if (name->size() > kMaxName) return fieldError("name", "length must be at most 255");
    if (!cleanText(*name, false)) return fieldError("name", "must not contain control characters");
    if (!description) return fieldError("description", "expected a string");
    if (description->size() > kMaxDescription) {
      return fieldError("description", "length must be at most 2000");
    }
    if (!cleanText(*description, true)) {
      return fieldError("description", "must not contain control characters");
    }
    PortalApplication app;
    app.developer_id = developer_id;
    app.name = *name;
    app.description = *description;
    app.api_key = randomHex(kTokenBytes);
    auto created = actions_.db().createApplication(app);
    if (absl::IsAlreadyExists(created.status())) {
      return jsonAnswer(409, Json{{"message", "You have an application of this name already"},
                                  {"fields", {{"name", "already used"}}}});
    }
    if (!created.ok()) return admin::statusResponse(created.status());
    return jsonAnswer(201, applicationJson(*created, true));
  }
  // /api/applications/{id}[/registrations[/{rid}]]: the caller's own applications only.
  auto app = actions_.db().getApplication(seg[2]);
  if (absl::IsNotFound(app.status()) || (app.ok() && app->developer_id != developer_id)) {
    return messageAnswer(404, kNotFound);
  }
  if (!app.ok()) return admin::statusResponse(app.status());
  if (seg.size() == 3) {
    if (method == "DELETE") {
      absl::Status st = actions_.deleteApplication(app->id);
      return st.ok() || absl::IsNotFound(st) ? ApiResponse{204, ""} : admin::statusResponse(st);
    }
    if (method != "GET") return messageAnswer(405, "Method not allowed");
    PortalRegistrationQuery q;
    q.application_id = app->id;
    q.size = 1000;
    auto regs = actions_.db().listRegistrations(q);
    if (!regs.ok()) return admin::statusResponse(regs.status());
    Json j = applicationJson(*app, true);
    j["registrations"] = Json::array();
    for (const PortalRegistration& r : regs->items) j["registrations"].push_back(registrationJson(r));
    return jsonAnswer(200, j);
  }
  if (seg[3] != "registrations" || seg.size() > 5) return messageAnswer(404, kNotFound);
  if (seg.size() == 4) {
    if (method != "POST") return messageAnswer(405, "Method not allowed");
    Json body;
    if (auto bad = readJsonObject(request, &body)) return *std::move(bad);
    const auto version_id = stringField(body, "version_id");
    if (!version_id || version_id->empty()) return fieldError("version_id", "required");
    auto api = actions_.db().getPublishedApi("", *version_id, false);
    if (absl::IsNotFound(api.status()) || (api.ok() && api->state != "published")) {
      return fieldError("version_id", "not a published API version");
    }
    if (!api.ok()) return admin::statusResponse(api.status());
    auto reg = actions_.db().createRegistration(app->id, api->version_id, kPortalPending);
    if (absl::IsAlreadyExists(reg.status())) {
      return jsonAnswer(409, Json{{"message", "This application is registered for it already"}});
    }
    if (!reg.ok()) return admin::statusResponse(reg.status());
    auto settings = actions_.db().settings();
    if (settings.ok() && settings->auto_approve_registrations) {
      auto approved = actions_.setRegistrationStatus(reg->id, kPortalApproved);
      if (approved.ok()) {
        return jsonAnswer(201, registrationJson(*approved));
      }
      // Stays pending for an administrator, who sees why when approving.
      LOG_WARN("portal", "automatic approval of registration %s failed: %s", reg->id,
               approved.status().ToString());
    }
    return jsonAnswer(201, registrationJson(*reg));
  }
  if (method != "DELETE") return messageAnswer(405, "Method not allowed");
  auto reg = actions_.db().getRegistration(seg[4]);
  if (absl::IsNotFound(reg.status()) || (reg.ok() && reg->application_id != app->id)) {
    return messageAnswer(404, kNotFound);
  }
  if (!reg.ok()) return admin::statusResponse(reg.status());
  if (reg->status == kPortalRevoked) return {204, ""};
  auto revoked = actions_.setRegistrationStatus(reg->id, kPortalRevoked);
  return revoked.ok() ? ApiResponse{204, ""} : admin::statusResponse(revoked.status());
}

}  // namespace portico::cp::portal
