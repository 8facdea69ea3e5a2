// request-termination: answers every request itself with a fixed status and body, or an echo
// of the request (Kong 3.10), optionally only when a trigger header or query arg is present.
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "common/config/schema.h"
#include "data_plane/plugins/request_util.h"

namespace portico::dp::plugins::request_termination {
namespace {

constexpr std::string_view kJson = "application/json; charset=utf-8";

std::string_view defaultMessage(int status) {
  switch (status) {
    case 401: return "Unauthorized";
    case 404: return "Not found";
    case 405: return "Method not allowed";
    case 500: return "An unexpected error occurred";
    case 502: return "Bad Gateway";
    case 503: return "Service unavailable";
    default: return {};
  }
}

class Config final : public PluginConfig {
 public:
  int status = 503;
  std::optional<std::string> message;
  std::optional<std::string> body;
  std::string content_type;
  bool echo = false;
  std::optional<std::string> trigger;

  std::string_view name() const override { return "request-termination"; }
  int32_t priority() const override { return 2; }
  PluginPtr createPlugin() const override;
};

class RequestTermination final : public Plugin {
 public:
  explicit RequestTermination(const Config& config) : config_(config) {}

  // Interface
  PhaseResult onRequest(RequestContext& ctx) override {
    if (config_.trigger) {
      std::string_view header;
      std::string arg;
      const bool present = findHeaderLoose(ctx.requestHead(), *config_.trigger, &header) ||
                           findQueryArg(ctx.query(), *config_.trigger, &arg) > 0 ||
                           queryHasBareArg(ctx);
      if (!present) {
        return PhaseResult::kContinue;
      }
    }
    if (config_.echo) {
      ctx.sendLocalBody(config_.status, echo(ctx), kJson);
      return PhaseResult::kStop;
    }
    if (config_.body) {
      ctx.sendLocalBody(config_.status, *config_.body, config_.content_type);
      return PhaseResult::kStop;
    }
    std::string_view message =
        config_.message ? std::string_view(*config_.message) : defaultMessage(config_.status);
    if (config_.message || !message.empty()) {
      ctx.sendLocalBody(config_.status, nlohmann::json{{"message", message}}.dump(), kJson);
    } else {
      ctx.sendLocalBody(config_.status, "", "");
    }
    return PhaseResult::kStop;
  }

 private:
  // `?trigger` with no value counts as present (Kong: the arg exists).
  bool queryHasBareArg(const RequestContext& ctx) const {
    std::string_view q = ctx.query();
    while (!q.empty()) {
      const size_t amp = q.find('&');
      std::string_view arg = q.substr(0, amp);
      if (arg.substr(0, arg.find('=')) == *config_.trigger) {
        return true;
      }
      if (amp == std::string_view::npos) break;
      q.remove_prefix(amp + 1);
    }
    return false;
  }

  std::string echo(const RequestContext& ctx) const {
    nlohmann::json headers = nlohmann::json::object();
    const http::RequestHead& head = ctx.requestHead();
    for (uint32_t i = 0; i < head.num_headers; ++i) {
      std::string name(head.headers[i].name);
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      const std::string value(head.headers[i].value);
      if (!headers.contains(name)) {
        headers[name] = value;
      } else if (headers[name].is_array()) {
        headers[name].push_back(value);
      } else {
        headers[name] = nlohmann::json::array({headers[name], value});
      }
    }
    nlohmann::json query = nlohmann::json::object();
    std::string_view q = ctx.query();
    std::string name, value;
    while (!q.empty()) {
      const size_t amp = q.find('&');
      std::string_view arg = q.substr(0, amp);
      const size_t eq = arg.find('=');
      if (!arg.empty() && decodeQueryComponent(arg.substr(0, eq), &name)) {
        nlohmann::json v = true;
        if (eq != std::string_view::npos && decodeQueryComponent(arg.substr(eq + 1), &value)) {
          v = value;
        }
        if (!query.contains(name)) {
          query[name] = v;
        } else if (query[name].is_array()) {
          query[name].push_back(v);
        } else {
          query[name] = nlohmann::json::array({query[name], v});
        }
      }
      if (amp == std::string_view::npos) break;
      q.remove_prefix(amp + 1);
    }
    std::string_view raw_body;
    const bool has_body = ctx.bufferedBody(&raw_body);
    std::string host(ctx.host());
    int port = ctx.scheme() == "https" ? 443 : 80;
    if (const size_t colon = host.rfind(':');
        colon != std::string::npos && host.find(']', colon) == std::string::npos) {
      port = std::atoi(host.c_str() + colon + 1);
      host.resize(colon);
    }
    nlohmann::json request = {
        {"scheme", ctx.scheme()}, {"host", host},       {"port", port},
        {"headers", headers},     {"query", query},     {"method", ctx.method()},
        {"path", ctx.path()},     {"raw_body", has_body ? std::string(raw_body) : std::string()},
        {"uri_captures", {{"named", nlohmann::json::object()},
                          {"unnamed", nlohmann::json::array()}}}};
    nlohmann::json out = {{"message", config_.message ? nlohmann::json(*config_.message)
                                                      : nlohmann::json(nullptr)},
                          {"request", request}};
    if (ctx.route() != nullptr) {
      out["matched_route"] = {{"id", ctx.route()->id()}};
    }
    if (ctx.service() != nullptr) {
      out["matched_service"] = {{"id", ctx.service()->id()}};
    }
    return out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }

  const Config& config_;
};

PluginPtr Config::createPlugin() const { return std::make_unique<RequestTermination>(*this); }

}  // namespace

absl::StatusOr<PluginConfigConstSharedPtr> build(const config::v1::Plugin&,
                                                 const config::Json& conf) {
  auto c = std::make_shared<Config>();
  c->status = conf.value("status_code", 503);
  auto str = [&conf](const char* f) -> std::optional<std::string> {
    if (conf.contains(f) && conf[f].is_string()) return conf[f].get<std::string>();
    return std::nullopt;
  };
  c->message = str("message");
  c->body = str("body");
  c->content_type = str("content_type").value_or("");
  c->echo = conf.value("echo", false);
  c->trigger = str("trigger");
  if (c->status < 100 || c->status > 599) {
    return absl::InvalidArgumentError("status_code must be between 100 and 599");
  }
  return c;
}

}  // namespace portico::dp::plugins::request_termination
