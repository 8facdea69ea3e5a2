// basic-auth: a consumer's username and password from Proxy-Authorization or Authorization
// (Kong 3.10). Passwords are stored as Kong stores them, sha1(password .. consumer_id).
#include <openssl/crypto.h>

#include <optional>
#include <string>

#include "common/config/entities.h"
#include "common/config/schema.h"
#include "data_plane/plugins/basic_auth/credentials.h"
#include "data_plane/plugins/consumers.h"
#include "data_plane/plugins/request_util.h"

namespace portico::dp::plugins::basic_auth {
namespace {

constexpr std::string_view kUnauthorized = "Unauthorized";

class Config final : public PluginConfig {
 public:
  std::optional<std::string> anonymous;
  bool hide_credentials = false;
  std::string www_authenticate;  // Basic realm="<realm>"

  std::string_view name() const override { return "basic-auth"; }
  int32_t priority() const override { return 1100; }
  PluginPtr createPlugin() const override;
};

class BasicAuth final : public Plugin {
 public:
  explicit BasicAuth(const Config& config) : config_(config) {}

  // Interface
  PhaseResult onRequest(RequestContext& ctx) override {
    return runAuthentication(ctx, config_.anonymous, /*run_on_preflight=*/true,
                             config_.www_authenticate, [&] {
                               return authenticate(ctx) ? std::string_view() : kUnauthorized;
                             });
  }

 private:
  bool authenticate(RequestContext& ctx) {
    // Kong tries Proxy-Authorization first, then Authorization.
    for (std::string_view header : {std::string_view("proxy-authorization"),
                                    std::string_view("authorization")}) {
      std::string_view value;
      if (!ctx.requestHeader(header, &value)) {
        continue;
      }
      std::optional<BasicCredentials> given = parseBasicAuthorization(value);
      if (!given) {
        continue;
      }
      const ConsumerIndex::BasicAuth* cred = ctx.consumers().basicAuth(given->username);
      if (cred == nullptr) {
        return false;
      }
      const std::string hash =
          config::basicAuthHash(given->password, cred->consumer->entity->id());
      const std::string& stored = cred->credential->password();
      if (hash.size() != stored.size() ||
          CRYPTO_memcmp(hash.data(), stored.data(), hash.size()) != 0) {
        return false;
      }
      if (config_.hide_credentials) {
        ctx.removeUpstreamHeader(header);
      }
      setConsumer(ctx, *cred->consumer, cred->credential->id(), cred->credential->username());
      return true;
    }
    return false;
  }

  const Config& config_;
};

PluginPtr Config::createPlugin() const { return std::make_unique<BasicAuth>(*this); }

}  // namespace

absl::StatusOr<PluginConfigConstSharedPtr> build(const config::v1::Plugin&,
                                                 const config::Json& conf) {
  auto c = std::make_shared<Config>();
  if (conf.contains("anonymous") && conf["anonymous"].is_string()) {
    c->anonymous = conf["anonymous"].get<std::string>();
  }
  c->hide_credentials = conf.value("hide_credentials", false);
  std::string realm = "service";
  if (conf.contains("realm") && conf["realm"].is_string()) {
    realm = conf["realm"].get<std::string>();
  }
  c->www_authenticate = "Basic realm=\"" + realm + "\"";
  return c;
}

}  // namespace portico::dp::plugins::basic_auth
