// key-auth: a consumer's API key from a header, the query string or the body (Kong 3.10).
#include <ctime>
#include <optional>
#include <string>
#include <vector>

#include "common/config/json_limits.h"
#include "common/config/schema.h"
#include "data_plane/plugins/consumers.h"
#include "data_plane/plugins/request_util.h"

namespace portico::dp::plugins::key_auth {
namespace {

constexpr std::string_view kNoKey = "No API key found in request";
constexpr std::string_view kUnauthorized = "Unauthorized";
constexpr std::string_view kDuplicate = "Duplicate API key found";

class Config final : public PluginConfig {
 public:
  std::vector<std::string> key_names;
  bool hide_credentials = false;
  bool key_in_header = true;
  bool key_in_query = true;
  bool key_in_body = false;
  bool run_on_preflight = true;
  std::optional<std::string> anonymous;
  std::string www_authenticate;  // "Key" or `Key realm="<realm>"`

  std::string_view name() const override { return "key-auth"; }
  int32_t priority() const override { return 1250; }
  PluginPtr createPlugin() const override;
};

// Where the key was found, so hide_credentials removes it from there.
enum class Source { kNone, kHeader, kQuery, kBody };

class KeyAuth final : public Plugin {
 public:
  explicit KeyAuth(const Config& config) : config_(config) {}

  // Interface
  PhaseResult onRequest(RequestContext& ctx) override {
    return runAuthentication(ctx, config_.anonymous, config_.run_on_preflight,
                             config_.www_authenticate, [&] { return authenticate(ctx); });
  }

 private:
  // "" on success (consumer set), else the 401 message.
  std::string_view authenticate(RequestContext& ctx) {
    std::string key;
    std::string_view header_name;
    std::string_view key_name;
    Source source = Source::kNone;
    for (const std::string& name : config_.key_names) {
      std::string_view v;
      if (config_.key_in_header && findHeaderLoose(ctx.requestHead(), name, &v, &header_name)) {
        key.assign(v);
        source = Source::kHeader;
      } else if (config_.key_in_query) {
        const int n = findQueryArg(ctx.query(), name, &key);
        if (n > 1) {
          return kDuplicate;
        }
        if (n == 1) {
          source = Source::kQuery;
        }
      }
      if (source == Source::kNone && config_.key_in_body) {
        const int n = findBodyKey(ctx, name, &key);
        if (n > 1) {
          return kDuplicate;
        }
        if (n == 1) {
          source = Source::kBody;
        }
      }
      if (source != Source::kNone) {
        key_name = name;
        break;
      }
    }
    if (source == Source::kNone || key.empty()) {
      return kNoKey;
    }
    ConsumerIndex::KeyAuth cred;
    if (!ctx.consumers().keyAuth(key, &cred) ||
        (cred.expires_at_s != 0 && cred.expires_at_s <= static_cast<int64_t>(std::time(nullptr)))) {
      return kUnauthorized;
    }
    if (config_.hide_credentials) {
      if (source == Source::kHeader) {
        ctx.removeUpstreamHeader(header_name);
      } else if (source == Source::kQuery) {
        ctx.setUpstreamQuery(removeQueryArg(ctx.query(), key_name));
      }
    }
    setConsumer(ctx, *cred.consumer, cred.credentialId(), cred.credentialId());
    return {};
  }

  // The key in a buffered form-urlencoded or JSON body; other or unparsable bodies count as
  // empty, as in Kong.
  static int findBodyKey(const RequestContext& ctx, std::string_view name, std::string* key) {
    std::string_view body;
    if (!ctx.bufferedBody(&body)) {
      return 0;
    }
    std::string_view type;
    ctx.requestHeader("content-type", &type);
    if (type.find("application/x-www-form-urlencoded") != std::string_view::npos) {
      return findQueryArg(body, name, key);
    }
    if (type.find("application/json") != std::string_view::npos) {
      std::optional<config::Json> parsed = config::parseUntrustedJson(body);
      if (!parsed || !parsed->is_object()) {
        return 0;
      }
      const config::Json& doc = *parsed;
      auto it = doc.find(std::string(name));
      if (it == doc.end()) {
        return 0;
      }
      if (it->is_array()) {
        return 2;  // Kong: a table value is a duplicate key
      }
      if (!it->is_string()) {
        return 0;
      }
      *key = it->get<std::string>();
      return 1;
    }
    return 0;
  }

  const Config& config_;
};

PluginPtr Config::createPlugin() const { return std::make_unique<KeyAuth>(*this); }

}  // namespace

absl::StatusOr<PluginConfigConstSharedPtr> build(const config::v1::Plugin&,
                                                 const config::Json& conf) {
  auto c = std::make_shared<Config>();
  for (const auto& n : conf.value("key_names", config::Json::array())) {
    c->key_names.push_back(n.get<std::string>());
  }
  c->hide_credentials = conf.value("hide_credentials", false);
  c->key_in_header = conf.value("key_in_header", true);
  c->key_in_query = conf.value("key_in_query", true);
  c->key_in_body = conf.value("key_in_body", false);
  c->run_on_preflight = conf.value("run_on_preflight", true);
  if (conf.contains("anonymous") && conf["anonymous"].is_string()) {
    c->anonymous = conf["anonymous"].get<std::string>();
  }
  c->www_authenticate = "Key";
  if (conf.contains("realm") && conf["realm"].is_string()) {
    c->www_authenticate = "Key realm=\"" + conf["realm"].get<std::string>() + "\"";
  }
  if (c->key_in_body && c->hide_credentials) {
    // Removing the key from a body means re-encoding it, which this proxy does not do yet:
    // refusing is better than forwarding the credential the operator asked to hide.
    return absl::InvalidArgumentError(
        "hide_credentials with key_in_body is not supported by this data plane");
  }
  return c;
}

}  // namespace portico::dp::plugins::key_auth
