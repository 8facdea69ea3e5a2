// bot-detection: refuses requests whose User-Agent is a known crawler, bot or HTTP library
// (Kong 3.10's ua-parser-derived list, re-expressed here as RE2 patterns), with config allow
// and deny regexes checked first.
#include <re2/re2.h>

#include <memory>
#include <string>
#include <vector>

#include "common/config/schema.h"
#include "data_plane/plugins/request_util.h"

namespace portico::dp::plugins::bot_detection {
namespace {

// The built-in list: crawlers by name, HTTP client libraries, and the generic "...bot",
// "...spider", "...crawl", "...scrape" words (but not the CUBOT phone brand).
const std::vector<std::string>& builtinPatterns() {
  static const auto* const kPatterns = new std::vector<std::string>{
      R"(Pingdom\.com_bot_version_\d+\.\d+)",
      R"(facebookexternalhit/\d+\.\d+)",
      R"(Google.*/\+/web/snippet)",
      R"((?:Google-HTTP-Java-Client|Apache-HttpClient|http%20client|Python-urllib|HttpMonitor|TLSProber|WinHTTP|JNLP|Go-http-client|okhttp|axios)(?:[ /]\d+(?:\.\d+){0,2})?)",
      R"((?:AdsBot-Google|Mediapartners-Google|AppEngine-Google|ia_archiver|heritrix|Nutch|Scrapy|Yahoo! Slurp|Slurp|Yandex\w+|WordPress|WhatWeb|MSIECrawler|bingbot|BingPreview|msnbot|MJ12bot|Baiduspider|[Bb]ai[Dd]u[Ss]pider|Googlebot|Twitterbot|LinkedInBot|archive\.org_bot|SimplePie|Wotbox|YodaoBot|ZyBorg))",
      R"((?i:[a-z0-9 _!\[\]:-]*(?:archiver|indexer|scraper|spider|crawl[a-z]*))[ /]\d+(?:\.\d+){0,2})",
      R"((?i)(?:spider|scrape|crawl))",
      R"([A-Za-z0-9-]*(?:[^C][^Uu]|^.?)[Bb]ot)",
  };
  return *kPatterns;
}

class Config final : public PluginConfig {
 public:
  std::vector<std::unique_ptr<const RE2>> allow;
  std::vector<std::unique_ptr<const RE2>> deny;

  std::string_view name() const override { return "bot-detection"; }
  int32_t priority() const override { return 2500; }
  PluginPtr createPlugin() const override;
};

const std::vector<std::unique_ptr<const RE2>>& builtinRules() {
  static const auto* const kRules = [] {
    auto* out = new std::vector<std::unique_ptr<const RE2>>();
    for (const std::string& p : builtinPatterns()) {
      out->push_back(std::make_unique<const RE2>(p));
    }
    return out;
  }();
  return *kRules;
}

bool anyMatch(const std::vector<std::unique_ptr<const RE2>>& rules, std::string_view ua) {
  for (const auto& re : rules) {
    if (RE2::PartialMatch(re2::StringPiece(ua.data(), ua.size()), *re)) return true;
  }
  return false;
}

class BotDetection final : public Plugin {
 public:
  explicit BotDetection(const Config& config) : config_(config) {}

  // Interface
  PhaseResult onRequest(RequestContext& ctx) override {
    const http::RequestHead& head = ctx.requestHead();
    std::string_view ua;
    int count = 0;
    for (uint32_t i = 0; i < head.num_headers; ++i) {
      if (http::equalsIgnoreCase(head.headers[i].name, "user-agent")) {
        ua = head.headers[i].value;
        ++count;
      }
    }
    if (count == 0) {
      return PhaseResult::kContinue;
    }
    if (count > 1) {
      ctx.sendLocalReply(400, "Only one User-Agent header allowed");
      return PhaseResult::kStop;
    }
    ua = http::trimOws(ua);
    if (anyMatch(config_.allow, ua)) {
      return PhaseResult::kContinue;
    }
    if (anyMatch(config_.deny, ua) || anyMatch(builtinRules(), ua)) {
      ctx.sendLocalReply(403, "Forbidden");
      return PhaseResult::kStop;
    }
    return PhaseResult::kContinue;
  }

 private:
  const Config& config_;
};

PluginPtr Config::createPlugin() const { return std::make_unique<BotDetection>(*this); }

}  // namespace

absl::StatusOr<PluginConfigConstSharedPtr> build(const config::v1::Plugin&,
                                                 const config::Json& conf) {
  auto c = std::make_shared<Config>();
  for (const char* list : {"allow", "deny"}) {
    if (!conf.contains(list) || !conf[list].is_array()) continue;
    for (const auto& v : conf[list]) {
      if (!v.is_string()) continue;
      RE2::Options options;
      options.set_log_errors(false);
      auto re = std::make_unique<const RE2>(v.get<std::string>(), options);
      if (!re->ok()) {
        return absl::InvalidArgumentError(std::string(list) + ": not a valid regex: " +
                                          v.get<std::string>());
      }
      (std::string_view(list) == "allow" ? c->allow : c->deny).push_back(std::move(re));
    }
  }
  for (const auto& re : builtinRules()) {
    if (!re->ok()) {
      return absl::InternalError("bot-detection: a built-in pattern does not compile");
    }
  }
  return c;
}

}  // namespace portico::dp::plugins::bot_detection
