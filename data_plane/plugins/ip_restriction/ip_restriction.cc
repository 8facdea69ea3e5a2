// ip-restriction: allow or deny clients by IPv4/IPv6 address and CIDR range (Kong 3.10). The
// client address is the one after trusted_ips/real-IP processing.
#include <optional>
#include <string>
#include <vector>

#include "common/config/schema.h"
#include "data_plane/plugins/ip_restriction/cidr.h"
#include "data_plane/plugins/request_util.h"

namespace portico::dp::plugins::ip_restriction {
namespace {

class Config final : public PluginConfig {
 public:
  std::vector<Cidr> allow;
  std::vector<Cidr> deny;
  int status = 403;
  std::optional<std::string> message;

  std::string_view name() const override { return "ip-restriction"; }
  int32_t priority() const override { return 990; }
  PluginPtr createPlugin() const override;
};

class IpRestriction final : public Plugin {
 public:
  explicit IpRestriction(const Config& config) : config_(config) {}

  // Interface
  PhaseResult onRequest(RequestContext& ctx) override {
    std::optional<Address> addr = parseAddress(ctx.clientIp());
    if (!addr) {
      ctx.sendLocalReply(403, "Cannot identify the client IP address, unix domain sockets are "
                              "not supported.");
      return PhaseResult::kStop;
    }
    // deny first: a denied address is blocked even when allow also lists it.
    const bool blocked = containsAny(config_.deny, *addr) ||
                         (!config_.allow.empty() && !containsAny(config_.allow, *addr));
    if (!blocked) {
      return PhaseResult::kContinue;
    }
    if (config_.message) {
      ctx.sendLocalReply(config_.status, *config_.message);
    } else {
      ctx.sendLocalReply(config_.status,
                         "IP address not allowed: " + std::string(ctx.clientIp()));
    }
    return PhaseResult::kStop;
  }

 private:
  const Config& config_;
};

PluginPtr Config::createPlugin() const { return std::make_unique<IpRestriction>(*this); }

}  // namespace

absl::StatusOr<PluginConfigConstSharedPtr> build(const config::v1::Plugin&,
                                                 const config::Json& conf) {
  auto c = std::make_shared<Config>();
  for (const char* list : {"allow", "deny"}) {
    if (!conf.contains(list) || !conf[list].is_array()) continue;
    for (const auto& v : conf[list]) {
      std::optional<Cidr> cidr = v.is_string() ? parseCidr(v.get<std::string>()) : std::nullopt;
      if (!cidr) {
        return absl::InvalidArgumentError(std::string("invalid ip or cidr range in ") + list);
      }
      (std::string_view(list) == "allow" ? c->allow : c->deny).push_back(*cidr);
    }
  }
  if (c->allow.empty() && c->deny.empty()) {
    return absl::InvalidArgumentError("one of allow or deny must be non-empty");
  }
  if (conf.contains("status") && conf["status"].is_number_integer()) {
    c->status = conf["status"].get<int>();
  }
  if (conf.contains("message") && conf["message"].is_string()) {
    c->message = conf["message"].get<std::string>();
  }
  return c;
}

}  // namespace portico::dp::plugins::ip_restriction
