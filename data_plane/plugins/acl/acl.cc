// acl: allow or deny by the authenticated consumer's groups (Kong 3.10).
#include <string>
#include <vector>

#include "common/config/schema.h"
#include "data_plane/plugins/consumers.h"
#include "data_plane/plugins/request_util.h"

namespace portico::dp::plugins::acl {
namespace {

constexpr std::string_view kForbidden = "You cannot consume this service";
constexpr std::string_view kUnauthorized = "Unauthorized";
// Groups another plugin authenticated (Kong's kong.ctx.shared.authenticated_groups), joined
// with ", ".
constexpr std::string_view kAuthenticatedGroups = "authenticated_groups";

class Config final : public PluginConfig {
 public:
  std::vector<std::string> groups;  // allow or deny
  bool deny = false;
  bool hide_groups_header = false;
  bool always_use_authenticated_groups = false;

  std::string_view name() const override { return "acl"; }
  int32_t priority() const override { return 950; }
  PluginPtr createPlugin() const override;
};

std::vector<std::string_view> splitGroups(std::string_view joined) {
  std::vector<std::string_view> out;
  while (!joined.empty()) {
    const size_t comma = joined.find(',');
    out.push_back(http::trimOws(joined.substr(0, comma)));
    if (comma == std::string_view::npos) break;
    joined.remove_prefix(comma + 1);
  }
  return out;
}

class Acl final : public Plugin {
 public:
  explicit Acl(const Config& config) : config_(config) {}

  // Interface
  PhaseResult onRequest(RequestContext& ctx) override {
    const Consumer* consumer = ctx.consumer();
    const bool has_credential = !ctx.credentialId().empty();
    std::vector<std::string_view> auth_groups;
    bool have_auth_groups = false;
    if (auto it = ctx.shared().find(std::string(kAuthenticatedGroups));
        it != ctx.shared().end()) {
      auth_groups = splitGroups(it->second);
      have_auth_groups = true;
    }
    const std::vector<std::string_view>* groups = nullptr;
    bool authenticated = false;  // which header names the groups
    if (consumer == nullptr) {
      if (!have_auth_groups) {
        return reply(ctx, has_credential ? 403 : 401);
      }
      groups = &auth_groups;
      authenticated = true;
    } else if (have_auth_groups && (!has_credential || config_.always_use_authenticated_groups)) {
      groups = &auth_groups;
      authenticated = true;
    } else {
      groups = &consumer->groups;
      if (groups->empty() && !config_.deny) {
        return reply(ctx, has_credential ? 403 : 401);
      }
    }
    bool member = false;
    for (std::string_view g : *groups) {
      for (const std::string& configured : config_.groups) {
        member = member || g == configured;
      }
    }
    if (config_.deny ? member : !member) {
      return reply(ctx, 403);
    }
    if (config_.hide_groups_header) {
      // Hidden means hidden: a value the client sent does not reach the upstream either.
      ctx.removeUpstreamHeader("X-Consumer-Groups");
      ctx.removeUpstreamHeader("X-Authenticated-Groups");
    } else {
      std::string joined;
      for (std::string_view g : *groups) {
        if (!joined.empty()) joined.append(", ");
        joined.append(g);
      }
      ctx.setUpstreamHeader(authenticated ? "X-Authenticated-Groups" : "X-Consumer-Groups",
                            joined);
    }
    return PhaseResult::kContinue;
  }

 private:
  static PhaseResult reply(RequestContext& ctx, int status) {
    ctx.sendLocalReply(status, status == 401 ? kUnauthorized : kForbidden);
    return PhaseResult::kStop;
  }
  const Config& config_;
};

PluginPtr Config::createPlugin() const { return std::make_unique<Acl>(*this); }

}  // namespace

absl::StatusOr<PluginConfigConstSharedPtr> build(const config::v1::Plugin&,
                                                 const config::Json& conf) {
  auto c = std::make_shared<Config>();
  const bool deny = conf.contains("deny") && conf["deny"].is_array() && !conf["deny"].empty();
  c->deny = deny;
  for (const auto& g : conf.value(deny ? "deny" : "allow", config::Json::array())) {
    if (g.is_string()) c->groups.push_back(g.get<std::string>());
  }
  if (c->groups.empty()) {
    return absl::InvalidArgumentError("one of allow or deny must be non-empty");
  }
  c->hide_groups_header = conf.value("hide_groups_header", false);
  c->always_use_authenticated_groups = conf.value("always_use_authenticated_groups", false);
  return c;
}

}  // namespace portico::dp::plugins::acl
