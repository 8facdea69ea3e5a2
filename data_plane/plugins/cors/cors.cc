// cors: answers CORS preflights and adds the Access-Control-* headers to every response,
// upstream or local (a key-auth 401 included), as Kong 3.10 does.
#include <re2/re2.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/config/schema.h"
#include "data_plane/plugins/request_util.h"

namespace portico::dp::plugins::cors {
namespace {

bool plainOrigin(const std::string& s) {
  return s.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                             "0123456789.:/-") == std::string::npos;
}

// "scheme://host[:port]" lower-cased, with the scheme's default port dropped; "" when `origin`
// has no scheme.
std::string normalizeOrigin(std::string_view origin) {
  const size_t sep = origin.find("://");
  if (sep == std::string_view::npos || sep == 0) {
    return "";
  }
  std::string out;
  for (char c : origin) out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  while (!out.empty() && out.back() == '/') out.pop_back();
  const std::string scheme = out.substr(0, sep);
  const size_t colon = out.rfind(':');
  if (colon > sep + 2 && out.find(']', colon) == std::string::npos) {
    const std::string port = out.substr(colon + 1);
    if ((scheme == "http" && port == "80") || (scheme == "https" && port == "443")) {
      out.resize(colon);
    }
  }
  return out;
}

std::string hostOf(const std::string& normalized) {
  const size_t sep = normalized.find("://");
  std::string host = normalized.substr(sep + 3);
  if (const size_t colon = host.rfind(':');
      colon != std::string::npos && host.find(']', colon) == std::string::npos) {
    host.resize(colon);
  }
  return host;
}

struct OriginRule {
  std::string text;                 // as configured
  std::string normalized;           // plain entries
  std::unique_ptr<const RE2> regex; // other entries, anchored at both ends
  bool match_host_only = false;     // a regex without ':' matches the host alone
};

class Config final : public PluginConfig {
 public:
  std::vector<OriginRule> origins;
  bool allow_all = true;          // no origins, or exactly ["*"]
  bool single_literal = false;    // one plain entry: sent as is
  std::string headers;            // joined with ","; empty = echo the request's
  std::string exposed_headers;
  std::string methods;
  std::optional<std::string> max_age;
  bool credentials = false;
  bool private_network = false;
  bool preflight_continue = false;
  bool allow_origin_absent = true;

  std::string_view name() const override { return "cors"; }
  int32_t priority() const override { return 2000; }
  PluginPtr createPlugin() const override;
};

class Cors final : public Plugin {
 public:
  explicit Cors(const Config& config) : config_(config) {}

  // Interface
  PhaseResult onRequest(RequestContext& ctx) override {
    readRequest(ctx);
    std::string_view request_method;
    const bool preflight = ctx.method() == "OPTIONS" && !origin_.empty() &&
                           ctx.requestHeader("access-control-request-method", &request_method);
    if (!preflight) {
      return PhaseResult::kContinue;
    }
    done_ = true;  // the response phase adds nothing to a preflight
    if (config_.preflight_continue) {
      return PhaseResult::kContinue;
    }
    const bool allow_all = setOrigin(ctx, /*append_vary=*/false);
    setCredentials(ctx, allow_all, /*append_vary=*/false);
    if (!config_.headers.empty()) {
      ctx.setResponseHeader("Access-Control-Allow-Headers", config_.headers);
    } else if (std::string_view requested;
               ctx.requestHeader("access-control-request-headers", &requested)) {
      ctx.setResponseHeader("Access-Control-Allow-Headers", requested);
    }
    ctx.setResponseHeader("Access-Control-Allow-Methods", config_.methods);
    if (config_.max_age) {
      ctx.setResponseHeader("Access-Control-Max-Age", *config_.max_age);
    }
    std::string_view pna;
    if (config_.private_network &&
        ctx.requestHeader("access-control-request-private-network", &pna) && pna == "true") {
      ctx.setResponseHeader("Access-Control-Allow-Private-Network", "true");
    }
    ctx.sendLocalBody(200, "", "");
    return PhaseResult::kStop;
  }

  void onResponseHeaders(RequestContext& ctx) override {
    if (done_) {
      return;
    }
    if (!seen_) {
      readRequest(ctx);  // an earlier plugin replied before our access phase ran
    }
    if (origin_.empty() && !config_.allow_origin_absent) {
      return;
    }
    const bool allow_all = setOrigin(ctx, /*append_vary=*/true);
    setCredentials(ctx, allow_all, /*append_vary=*/true);
    if (!config_.exposed_headers.empty()) {
      ctx.setResponseHeader("Access-Control-Expose-Headers", config_.exposed_headers);
    }
  }

 private:
  void readRequest(const RequestContext& ctx) {
    seen_ = true;
    std::string_view origin;
    if (ctx.requestHeader("origin", &origin)) {
      origin_.assign(http::trimOws(origin));
    }
  }

  void vary(RequestContext& ctx, bool append) {
    if (append) {
      ctx.addResponseHeader("Vary", "Origin");
    } else {
      ctx.setResponseHeader("Vary", "Origin");
    }
  }

  // Kong's configure_origin; true when Access-Control-Allow-Origin is "*".
  bool setOrigin(RequestContext& ctx, bool append_vary) {
    if (config_.allow_all) {
      ctx.setResponseHeader("Access-Control-Allow-Origin", "*");
      return true;
    }
    vary(ctx, append_vary);
    if (config_.single_literal) {
      ctx.setResponseHeader("Access-Control-Allow-Origin", config_.origins.front().text);
      return false;
    }
    const std::string normalized = normalizeOrigin(origin_);
    if (!normalized.empty()) {
      const std::string host = hostOf(normalized);
      for (const OriginRule& rule : config_.origins) {
        if (rule.text == "*") {
          ctx.setResponseHeader("Access-Control-Allow-Origin", "*");
          return true;
        }
        const bool match =
            rule.regex != nullptr
                ? RE2::FullMatch(rule.match_host_only ? host : normalized, *rule.regex)
                : rule.normalized == normalized;
        if (match) {
          ctx.setResponseHeader("Access-Control-Allow-Origin", normalized);
          return false;
        }
      }
    }
    ctx.removeResponseHeader("Access-Control-Allow-Origin");  // even the upstream's
    return false;
  }

  // Kong's configure_credentials.
  void setCredentials(RequestContext& ctx, bool allow_all, bool append_vary) {
    if (!config_.credentials) {
      return;
    }
    if (!allow_all) {
      ctx.setResponseHeader("Access-Control-Allow-Credentials", "true");
      return;
    }
    // ACAC cannot be true with ACAO "*": the request's origin is echoed instead.
    if (!origin_.empty()) {
      ctx.setResponseHeader("Access-Control-Allow-Origin", origin_);
      ctx.setResponseHeader("Access-Control-Allow-Credentials", "true");
      vary(ctx, append_vary);
    }
  }

  const Config& config_;
  std::string origin_;
  bool seen_ = false;
  bool done_ = false;
};

PluginPtr Config::createPlugin() const { return std::make_unique<Cors>(*this); }

std::string joined(const config::Json& conf, const char* field) {
  std::string out;
  if (conf.contains(field) && conf[field].is_array()) {
    for (const auto& v : conf[field]) {
      if (!v.is_string()) continue;
      if (!out.empty()) out.push_back(',');
      out.append(v.get<std::string>());
    }
  }
  return out;
}

}  // namespace

absl::StatusOr<PluginConfigConstSharedPtr> build(const config::v1::Plugin&,
                                                 const config::Json& conf) {
  auto c = std::make_shared<Config>();
  if (conf.contains("origins") && conf["origins"].is_array()) {
    for (const auto& v : conf["origins"]) {
      if (!v.is_string()) continue;
      OriginRule rule;
      rule.text = v.get<std::string>();
      if (rule.text != "*" && !plainOrigin(rule.text)) {
        std::string pattern = rule.text;
        if (!pattern.empty() && pattern.front() == '^') pattern.erase(0, 1);
        if (!pattern.empty() && pattern.back() == '$') pattern.pop_back();
        rule.match_host_only = rule.text.find(':') == std::string::npos;
        RE2::Options options;
        options.set_log_errors(false);
        auto re = std::make_unique<const RE2>(pattern, options);
        if (!re->ok()) {
          return absl::InvalidArgumentError("origins: '" + rule.text + "' is not a valid regex");
        }
        rule.regex = std::move(re);
      } else {
        rule.normalized = normalizeOrigin(rule.text);
      }
      c->origins.push_back(std::move(rule));
    }
  }
  c->allow_all = c->origins.empty() || (c->origins.size() == 1 && c->origins[0].text == "*");
  c->single_literal = c->origins.size() == 1 && !c->allow_all && c->origins[0].regex == nullptr;
  c->headers = joined(conf, "headers");
  c->exposed_headers = joined(conf, "exposed_headers");
  c->methods = joined(conf, "methods");
  if (c->methods.empty()) {
    c->methods = "GET,HEAD,PUT,PATCH,POST,DELETE,OPTIONS,TRACE,CONNECT";
  }
  if (conf.contains("max_age") && conf["max_age"].is_number()) {
    const double age = conf["max_age"].get<double>();
    c->max_age = age == static_cast<double>(static_cast<int64_t>(age))
                     ? std::to_string(static_cast<int64_t>(age))
                     : conf["max_age"].dump();
  }
  c->credentials = conf.value("credentials", false);
  c->private_network = conf.value("private_network", false);
  c->preflight_continue = conf.value("preflight_continue", false);
  c->allow_origin_absent = conf.value("allow_origin_absent", true);
  return c;
}

}  // namespace portico::dp::plugins::cors
