// hmac-auth: HTTP signatures over listed headers with a consumer's shared secret (Kong 3.10),
// hmac-sha1/256/384/512, clock skew on Date/X-Date, enforced headers, and an optional body
// digest.
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <cmath>
#include <ctime>
#include <optional>
#include <string>
#include <vector>

#include "common/config/schema.h"
#include "data_plane/plugins/consumers.h"
#include "data_plane/plugins/hmac_auth/authorization.h"
#include "data_plane/plugins/request_util.h"

namespace portico::dp::plugins::hmac_auth {
namespace {

constexpr std::string_view kUnauthorized = "Unauthorized";
constexpr std::string_view kBadDate =
    "HMAC signature cannot be verified, a valid date or x-date header is required for HMAC "
    "Authentication";
constexpr std::string_view kCannotVerify = "HMAC signature cannot be verified";
constexpr std::string_view kNoMatch = "HMAC signature does not match";

std::string base64(const unsigned char* data, size_t len) {
  std::string out(4 * ((len + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data,
                                static_cast<int>(len));
  out.resize(static_cast<size_t>(n));
  return out;
}

const EVP_MD* digestFor(std::string_view algorithm) {
  if (algorithm == "hmac-sha1") return EVP_sha1();
  if (algorithm == "hmac-sha256") return EVP_sha256();
  if (algorithm == "hmac-sha384") return EVP_sha384();
  if (algorithm == "hmac-sha512") return EVP_sha512();
  return nullptr;
}

class Config final : public PluginConfig {
 public:
  bool hide_credentials = false;
  double clock_skew = 300;
  std::optional<std::string> anonymous;
  bool validate_request_body = false;
  std::vector<std::string> enforce_headers;  // lower-cased
  std::vector<std::string> algorithms;
  std::string www_authenticate;

  std::string_view name() const override { return "hmac-auth"; }
  int32_t priority() const override { return 1030; }
  PluginPtr createPlugin() const override;
};

class HmacAuth final : public Plugin {
 public:
  explicit HmacAuth(const Config& config) : config_(config) {}

  // Interface
  PhaseResult onRequest(RequestContext& ctx) override {
    return runAuthentication(ctx, config_.anonymous, /*run_on_preflight=*/true,
                             config_.www_authenticate, [&] { return authenticate(ctx); });
  }

 private:
  std::string_view authenticate(RequestContext& ctx) {
    std::string_view proxy_auth, auth;
    const bool has_proxy = ctx.requestHeader("proxy-authorization", &proxy_auth);
    const bool has_auth = ctx.requestHeader("authorization", &auth);
    if (!has_proxy && !has_auth) {
      return kUnauthorized;
    }
    std::string_view date;
    if (!ctx.requestHeader("x-date", &date) && !ctx.requestHeader("date", &date)) {
      return kBadDate;
    }
    std::optional<int64_t> when = parseHttpDate(http::trimOws(date));
    if (!when || std::fabs(static_cast<double>(std::time(nullptr) - *when)) > config_.clock_skew) {
      return kBadDate;
    }
    std::optional<HmacAuthorization> parsed;
    std::string_view used_header;
    if (has_proxy) {
      parsed = parseHmacAuthorization(proxy_auth);
      used_header = "proxy-authorization";
    }
    if (!parsed && has_auth) {
      parsed = parseHmacAuthorization(auth);
      used_header = "authorization";
    }
    if (!parsed) {
      return kCannotVerify;
    }
    for (const std::string& required : config_.enforce_headers) {
      bool listed = false;
      for (const std::string& h : parsed->headers) listed = listed || h == required;
      if (!listed) return kCannotVerify;
    }
    bool allowed = false;
    for (const std::string& a : config_.algorithms) allowed = allowed || a == parsed->algorithm;
    const EVP_MD* md = digestFor(parsed->algorithm);
    if (!allowed || md == nullptr) {
      return kCannotVerify;
    }
    const ConsumerIndex::Hmac* cred = ctx.consumers().hmac(parsed->username);
    if (cred == nullptr) {
      return kCannotVerify;
    }
    const std::string signing = signingString(ctx, parsed->headers);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    const std::string& secret = cred->credential->secret();
    if (HMAC(md, secret.data(), static_cast<int>(secret.size()),
             reinterpret_cast<const unsigned char*>(signing.data()), signing.size(), mac,
             &len) == nullptr) {
      return kNoMatch;
    }
    std::optional<std::string> given = decodeBase64(parsed->signature);
    if (!given || given->size() != len || CRYPTO_memcmp(given->data(), mac, len) != 0) {
      return kNoMatch;
    }
    if (config_.validate_request_body && !bodyMatches(ctx)) {
      return kNoMatch;
    }
    if (config_.hide_credentials) {
      ctx.removeUpstreamHeader(used_header);
    }
    setConsumer(ctx, *cred->consumer, cred->credential->id(), cred->credential->username());
    return {};
  }

  static std::string signingString(const RequestContext& ctx,
                                   const std::vector<std::string>& headers) {
    std::string out;
    std::string target(ctx.path());
    if (!ctx.query().empty()) {
      target.push_back('?');
      target.append(ctx.query());
    }
    for (size_t i = 0; i < headers.size(); ++i) {
      if (i > 0) out.push_back('\n');
      const std::string& h = headers[i];
      // As Kong: a header of that name wins; only a missing one means the pseudo-header.
      std::string_view value;
      if (ctx.requestHeader(h, &value)) {
        out.append(h).append(": ").append(value);
      } else if (h == "request-line") {
        out.append(ctx.method()).append(" ").append(target).append(
            ctx.requestHead().version == http::Version::kHttp10 ? " HTTP/1.0" : " HTTP/1.1");
      } else if (h == "@request-target") {
        std::string method(ctx.method());
        for (char& c : method) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        out.append(h).append(": ").append(method).append(" ").append(target);
      } else {
        out.append(h).append(":");
      }
    }
    return out;
  }

  // Digest: SHA-256=<base64(sha256(body))>. A body still on the wire cannot be checked here,
  // so it does not pass (never forwarded unverified).
  static bool bodyMatches(const RequestContext& ctx) {
    std::string_view body;
    const http::RequestHead& head = ctx.requestHead();
    const bool empty = head.body == http::BodyKind::kNone ||
                       (head.body == http::BodyKind::kContentLength && head.content_length == 0);
    if (!empty && !ctx.bufferedBody(&body)) {
      return false;
    }
    std::string_view digest;
    if (!ctx.requestHeader("digest", &digest)) {
      return empty;
    }
    unsigned char sum[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(body.data()), body.size(), sum);
    return http::trimOws(digest) == "SHA-256=" + base64(sum, sizeof(sum));
  }

  const Config& config_;
};

PluginPtr Config::createPlugin() const { return std::make_unique<HmacAuth>(*this); }

}  // namespace

absl::StatusOr<PluginConfigConstSharedPtr> build(const config::v1::Plugin&,
                                                 const config::Json& conf) {
  auto c = std::make_shared<Config>();
  c->hide_credentials = conf.value("hide_credentials", false);
  if (conf.contains("clock_skew") && conf["clock_skew"].is_number()) {
    c->clock_skew = conf["clock_skew"].get<double>();
  }
  if (conf.contains("anonymous") && conf["anonymous"].is_string()) {
    c->anonymous = conf["anonymous"].get<std::string>();
  }
  c->validate_request_body = conf.value("validate_request_body", false);
  for (const char* field : {"enforce_headers", "algorithms"}) {
    if (!conf.contains(field) || !conf[field].is_array()) continue;
    for (const auto& v : conf[field]) {
      if (!v.is_string()) continue;
      std::string s = v.get<std::string>();
      for (char& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      (std::string_view(field) == "algorithms" ? c->algorithms : c->enforce_headers)
          .push_back(std::move(s));
    }
  }
  c->www_authenticate = "hmac";
  if (conf.contains("realm") && conf["realm"].is_string()) {
    c->www_authenticate = "hmac realm=\"" + conf["realm"].get<std::string>() + "\"";
  }
  return c;
}

}  // namespace portico::dp::plugins::hmac_auth
