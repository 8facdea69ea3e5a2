// jwt: a consumer's signed JSON Web Token from the query, a cookie or a Bearer header (Kong
// 3.10): HS*, RS*, ES*, PS* and EdDSA, exp/nbf, maximum_expiration. Failures answer Kong's
// exact JSON bodies (kong.response.exit with a table).
#include <ctime>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/config/schema.h"
#include "data_plane/plugins/consumers.h"
#include "data_plane/plugins/jwt/token.h"
#include "data_plane/plugins/request_util.h"

namespace portico::dp::plugins::jwt {
namespace {

constexpr std::string_view kJson = "application/json; charset=utf-8";

class Config final : public PluginConfig {
 public:
  std::vector<std::string> uri_param_names;
  std::vector<std::string> cookie_names;
  std::vector<std::string> header_names;
  std::string key_claim_name = "iss";
  bool secret_is_base64 = false;
  bool verify_exp = false;
  bool verify_nbf = false;
  std::optional<std::string> anonymous;
  bool run_on_preflight = true;
  double maximum_expiration = 0;
  std::string www_no_token;       // Bearer [realm="r"]
  std::string www_invalid_token;  // Bearer [realm="r", ]error="invalid_token"

  std::string_view name() const override { return "jwt"; }
  int32_t priority() const override { return 1450; }
  PluginPtr createPlugin() const override;
};

// `\s*[Bb]earer\s+(.+)`
std::optional<std::string_view> bearer(std::string_view v) {
  size_t i = 0;
  while (i < v.size() && (v[i] == ' ' || v[i] == '\t')) ++i;
  if (v.size() - i < 7 || (v[i] != 'B' && v[i] != 'b') || v.substr(i + 1, 5) != "earer") {
    return std::nullopt;
  }
  i += 6;
  if (i >= v.size() || (v[i] != ' ' && v[i] != '\t')) return std::nullopt;
  while (i < v.size() && (v[i] == ' ' || v[i] == '\t')) ++i;
  std::string_view token = v.substr(i);
  while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
  if (token.empty()) return std::nullopt;
  return token;
}

class Jwt final : public Plugin {
 public:
  explicit Jwt(const Config& config) : config_(config) {}

  // Interface
  PhaseResult onRequest(RequestContext& ctx) override {
    if (!config_.run_on_preflight && ctx.method() == "OPTIONS") {
      return PhaseResult::kContinue;
    }
    const std::string* anonymous = config_.anonymous ? &*config_.anonymous : nullptr;
    if (alreadyAuthenticated(ctx, anonymous)) {
      return PhaseResult::kContinue;
    }
    if (authenticate(ctx)) {
      return PhaseResult::kContinue;
    }
    if (anonymous != nullptr) {
      return failAuthentication(ctx, anonymous, 401, "", "");
    }
    ctx.setResponseHeader("WWW-Authenticate", www_);
    ctx.sendLocalBody(401, body_, kJson);
    return PhaseResult::kStop;
  }

 private:
  bool fail(std::string_view message, bool invalid_token = true) {
    body_ = nlohmann::json{{"message", message}}.dump();
    www_ = invalid_token ? config_.www_invalid_token : config_.www_no_token;
    return false;
  }
  bool failClaims(const nlohmann::json& errors) {
    body_ = errors.dump();
    www_ = config_.www_invalid_token;
    return false;
  }

  bool findToken(const RequestContext& ctx, std::string* token) {
    std::set<std::string> found;
    for (const std::string& name : config_.uri_param_names) {
      std::string_view q = ctx.query();
      std::string decoded_name, value;
      while (!q.empty()) {
        const size_t amp = q.find('&');
        std::string_view arg = q.substr(0, amp);
        const size_t eq = arg.find('=');
        if (eq != std::string_view::npos && decodeQueryComponent(arg.substr(0, eq), &decoded_name) &&
            decoded_name == name && decodeQueryComponent(arg.substr(eq + 1), &value) &&
            !value.empty()) {
          found.insert(value);
        }
        if (amp == std::string_view::npos) break;
        q.remove_prefix(amp + 1);
      }
    }
    if (!config_.cookie_names.empty()) {
      const http::RequestHead& head = ctx.requestHead();
      for (uint32_t i = 0; i < head.num_headers; ++i) {
        if (!http::equalsIgnoreCase(head.headers[i].name, "cookie")) continue;
        std::string_view cookies = head.headers[i].value;
        while (!cookies.empty()) {
          const size_t semi = cookies.find(';');
          std::string_view pair = http::trimOws(cookies.substr(0, semi));
          const size_t eq = pair.find('=');
          if (eq != std::string_view::npos) {
            for (const std::string& name : config_.cookie_names) {
              if (pair.substr(0, eq) == name && eq + 1 < pair.size()) {
                found.insert(std::string(pair.substr(eq + 1)));
              }
            }
          }
          if (semi == std::string_view::npos) break;
          cookies.remove_prefix(semi + 1);
        }
      }
    }
    for (const std::string& name : config_.header_names) {
      std::string_view v;
      if (ctx.requestHeader(name, &v)) {
        if (std::optional<std::string_view> t = bearer(v)) {
          found.insert(std::string(*t));
        }
      }
    }
    if (found.empty()) {
      return fail("Unauthorized", /*invalid_token=*/false);
    }
    if (found.size() > 1) {
      return fail("Multiple tokens provided");
    }
    *token = *found.begin();
    return true;
  }

  bool authenticate(RequestContext& ctx) {
    std::string raw;
    if (!findToken(ctx, &raw)) {
      return false;
    }
    DecodedToken token;
    switch (decodeToken(raw, &token)) {
      case DecodeError::kInvalidJson:
        return fail("Bad token; invalid JSON");
      case DecodeError::kInvalidAlg:
        return fail("Bad token; invalid alg");
      case DecodeError::kNone:
        break;
    }
    const std::string& claim = config_.key_claim_name;
    const nlohmann::json* key = nullptr;
    if (auto it = token.claims.find(claim); it != token.claims.end() && !it->is_null()) {
      key = &*it;
    } else if (auto ht = token.header.find(claim); ht != token.header.end() && !ht->is_null()) {
      key = &*ht;
    }
    if (key == nullptr) {
      return fail("No mandatory '" + claim + "' in claims");
    }
    if (!key->is_string() || key->get<std::string>().empty()) {
      return fail("Invalid '" + claim + "' in claims");
    }
    const ConsumerIndex::Jwt* cred = ctx.consumers().jwt(key->get<std::string>());
    if (cred == nullptr) {
      return fail("No credentials found for given '" + claim + "'");
    }
    const config::v1::JwtSecret& secret = *cred->credential;
    if (token.alg != secret.algorithm()) {
      return fail("Invalid algorithm");
    }
    std::string material;
    if (token.alg[0] == 'H') {
      material = secret.secret();
      if (config_.secret_is_base64) {
        std::optional<std::string> decoded = base64UrlDecode(material);
        if (!decoded) {
          return fail("Invalid key/secret");
        }
        material = std::move(*decoded);
      }
    } else {
      if (!secret.has_rsa_public_key() || secret.rsa_public_key().empty()) {
        return fail("Invalid key/secret");
      }
      material = secret.rsa_public_key();
    }
    bool bad_key = false;
    if (!verifySignature(token, material, &bad_key)) {
      return fail(bad_key ? "Invalid key/secret" : "Invalid signature");
    }
    const double now = static_cast<double>(std::time(nullptr));
    nlohmann::json errors = nlohmann::json::object();
    auto number = [&token](const char* name) -> std::optional<double> {
      auto it = token.claims.find(name);
      if (it == token.claims.end() || !it->is_number()) return std::nullopt;
      return it->get<double>();
    };
    if (config_.verify_exp) {
      std::optional<double> exp = number("exp");
      if (!exp) {
        errors["exp"] = "must be a number";
      } else if (*exp <= now) {
        errors["exp"] = "token expired";
      }
    }
    if (config_.verify_nbf) {
      std::optional<double> nbf = number("nbf");
      if (!nbf) {
        errors["nbf"] = "must be a number";
      } else if (*nbf > now) {
        errors["nbf"] = "token not valid yet";
      }
    }
    if (!errors.empty()) {
      return failClaims(errors);
    }
    if (config_.maximum_expiration > 0) {
      std::optional<double> exp = number("exp");
      if (!exp || *exp - now > config_.maximum_expiration) {
        return failClaims({{"exp", "exceeds maximum allowed expiration"}});
      }
    }
    setConsumer(ctx, *cred->consumer, secret.id(), secret.key());
    return true;
  }

  const Config& config_;
  std::string body_;
  std::string www_;
};

PluginPtr Config::createPlugin() const { return std::make_unique<Jwt>(*this); }

std::vector<std::string> strings(const config::Json& conf, const char* field) {
  std::vector<std::string> out;
  if (conf.contains(field) && conf[field].is_array()) {
    for (const auto& v : conf[field]) {
      if (v.is_string()) out.push_back(v.get<std::string>());
    }
  }
  return out;
}

}  // namespace

absl::StatusOr<PluginConfigConstSharedPtr> build(const config::v1::Plugin&,
                                                 const config::Json& conf) {
  auto c = std::make_shared<Config>();
  c->uri_param_names = strings(conf, "uri_param_names");
  c->cookie_names = strings(conf, "cookie_names");
  c->header_names = strings(conf, "header_names");
  if (conf.contains("key_claim_name") && conf["key_claim_name"].is_string()) {
    c->key_claim_name = conf["key_claim_name"].get<std::string>();
  }
  c->secret_is_base64 = conf.value("secret_is_base64", false);
  for (const std::string& claim : strings(conf, "claims_to_verify")) {
    c->verify_exp = c->verify_exp || claim == "exp";
    c->verify_nbf = c->verify_nbf || claim == "nbf";
  }
  if (conf.contains("anonymous") && conf["anonymous"].is_string()) {
    c->anonymous = conf["anonymous"].get<std::string>();
  }
  c->run_on_preflight = conf.value("run_on_preflight", true);
  if (conf.contains("maximum_expiration") && conf["maximum_expiration"].is_number()) {
    c->maximum_expiration = conf["maximum_expiration"].get<double>();
  }
  std::string realm;
  if (conf.contains("realm") && conf["realm"].is_string()) {
    realm = "realm=\"" + conf["realm"].get<std::string>() + "\"";
  }
  c->www_no_token = realm.empty() ? "Bearer" : "Bearer " + realm;
  c->www_invalid_token =
      realm.empty() ? "Bearer error=\"invalid_token\"" : "Bearer " + realm + ", error=\"invalid_token\"";
  return c;
}

}  // namespace portico::dp::plugins::jwt
