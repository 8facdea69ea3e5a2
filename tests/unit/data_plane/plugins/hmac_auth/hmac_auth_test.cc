// hmac-auth: the Authorization parser, schema, and signatures through the real proxy.
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <ctime>

#include <catch2/catch.hpp>

#include "data_plane/plugins/hmac_auth/authorization.h"
#include "tests/unit/data_plane/plugins/common.h"
#include "tests/unit/data_plane/plugins/plugin_fixture.h"

namespace portico::dp {
namespace {

using config::Json;
using testing::PluginFixture;
using testing::WireResponse;

std::string httpDate(int64_t offset = 0) {
  std::time_t t = std::time(nullptr) + offset;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

std::string sign(const EVP_MD* md, const std::string& secret, const std::string& data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(md, secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &len);
  return testing::base64(std::string(reinterpret_cast<char*>(mac), len));
}

struct HmacFixture : PluginFixture {
  explicit HmacFixture(Json config = Json::object()) {
    Json c = add("consumers", {{"username", "bob"}});
    add("hmacauth_credentials",
        {{"consumer", {{"id", c["id"]}}}, {"username", "bob-hmac"}, {"secret", "secret"}});
    add("plugins", {{"name", "hmac-auth"}, {"route", {{"id", routeId()}}}, {"config", config}});
    REQUIRE(apply().ToString() == "OK");
  }
  // GET /x signed over date and request-line.
  WireResponse signedGet(const std::string& date, const EVP_MD* md, const std::string& alg,
                         const std::string& secret = "secret", const std::string& extra = "") {
    const std::string data = "date: " + date + "\nGET /x?a=1 HTTP/1.1";
    return send("GET /x?a=1 HTTP/1.1\r\nHost: h\r\nDate: " + date +
                "\r\nAuthorization: hmac username=\"bob-hmac\", algorithm=\"" + alg +
                "\", headers=\"date request-line\", signature=\"" + sign(md, secret, data) +
                "\"\r\n" + extra + "\r\n");
  }
};

TEST_CASE("hmac-auth: the Authorization parser") {
  using plugins::hmac_auth::parseHmacAuthorization;
  auto a = parseHmacAuthorization(
      R"(hmac username="u", algorithm="hmac-sha256", headers="Date Request-Line", signature="c2ln")");
  REQUIRE(a.has_value());
  CHECK(a->username == "u");
  CHECK(a->algorithm == "hmac-sha256");
  CHECK(a->headers == std::vector<std::string>{"date", "request-line"});
  CHECK(a->signature == "c2ln");
  CHECK(parseHmacAuthorization(R"(HMAC username="u",algorithm="a",headers="h",signature="s")"));
  CHECK(!parseHmacAuthorization(R"(hmac username="u", headers="h", signature="s")"));
  CHECK(!parseHmacAuthorization(R"(Basic dXNlcjpwYXNz)"));
  CHECK(!parseHmacAuthorization(R"(hmac username="", algorithm="a", headers="h", signature="s")"));
  CHECK(!parseHmacAuthorization(std::string(20000, 'h')));
  CHECK(plugins::hmac_auth::parseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT") == 784111777);
  CHECK(!plugins::hmac_auth::parseHttpDate("yesterday"));
}

TEST_CASE("hmac-auth schema") {
  Json d = testing::pluginDefaults({{"name", "hmac-auth"}});
  CHECK(d["config"]["clock_skew"] == 300);
  CHECK(d["config"]["algorithms"] ==
        Json::array({"hmac-sha1", "hmac-sha256", "hmac-sha384", "hmac-sha512"}));
  CHECK(testing::pluginSchemaError({{"name", "hmac-auth"}, {"config", {{"algorithms", {"md5"}}}}}) ==
        "config.algorithms.1: expected one of: hmac-sha1, hmac-sha256, hmac-sha384, hmac-sha512");
}

TEST_CASE("hmac-auth: valid signatures for each algorithm, and Kong's 401s") {
  HmacFixture f;
  for (const auto& [md, alg] : {std::pair{EVP_sha1(), "hmac-sha1"}, {EVP_sha256(), "hmac-sha256"},
                                {EVP_sha384(), "hmac-sha384"}, {EVP_sha512(), "hmac-sha512"}}) {
    WireResponse r = f.signedGet(httpDate(), md, alg);
    INFO(alg << " " << r.body);
    REQUIRE(r.status == 200);
    CHECK(PluginFixture::upstreamHeader(r, "X-Credential-Identifier") == "bob-hmac");
    CHECK(PluginFixture::upstreamHeader(r, "X-Consumer-Username") == "bob");
  }
  WireResponse r = f.get("/x");
  CHECK(r.status == 401);
  CHECK(r.body == R"({"message":"Unauthorized"})");
  CHECK(r.header("WWW-Authenticate") == "hmac");
  r = f.signedGet(httpDate(-1000), EVP_sha256(), "hmac-sha256");
  CHECK(r.body ==
        R"({"message":"HMAC signature cannot be verified, a valid date or x-date header is required for HMAC Authentication"})");
  r = f.signedGet(httpDate(), EVP_sha256(), "hmac-sha256", "wrong");
  CHECK(r.body == R"({"message":"HMAC signature does not match"})");
  r = f.get("/x", "Date: " + httpDate() + "\r\nAuthorization: hmac garbage\r\n");
  CHECK(r.body == R"({"message":"HMAC signature cannot be verified"})");
  r = f.get("/x", "Date: " + httpDate() +
                      "\r\nAuthorization: hmac username=\"nobody\", algorithm=\"hmac-sha1\", "
                      "headers=\"date\", signature=\"!!!\"\r\n");
  CHECK(r.body == R"({"message":"HMAC signature cannot be verified"})");
}

TEST_CASE("hmac-auth: @request-target signs \"@request-target: <method> <target>\"") {
  HmacFixture f;
  const std::string date = httpDate();
  auto signedWith = [&](const std::string& data) {
    return f.send("POST /x?a=1 HTTP/1.1\r\nHost: h\r\nDate: " + date +
                  "\r\nContent-Length: 0\r\nAuthorization: hmac username=\"bob-hmac\",  "
                  "algorithm=\"hmac-sha1\", headers=\"date @request-target\", signature=\"" +
                  sign(EVP_sha1(), "secret", data) + "\"\r\n\r\n");
  };
  // Kong: the pseudo-header's name, ": ", the lower-cased method and the target with query.
  CHECK(signedWith("date: " + date + "\n@request-target: post /x?a=1").status == 200);
  CHECK(signedWith("date: " + date + "\npost /x?a=1").status == 401);
}

TEST_CASE("hmac-auth: enforce_headers, algorithms, hide_credentials, body digest") {
  HmacFixture f(Json{{"enforce_headers", {"x-extra"}}});
  CHECK(f.signedGet(httpDate(), EVP_sha256(), "hmac-sha256").body ==
        R"({"message":"HMAC signature cannot be verified"})");
  HmacFixture g(Json{{"algorithms", {"hmac-sha512"}}, {"hide_credentials", true}});
  CHECK(g.signedGet(httpDate(), EVP_sha256(), "hmac-sha256").status == 401);
  WireResponse r = g.signedGet(httpDate(), EVP_sha512(), "hmac-sha512");
  REQUIRE(r.status == 200);
  CHECK(PluginFixture::upstreamHeader(r, "Authorization").empty());

  HmacFixture b(Json{{"validate_request_body", true}});
  const std::string body = "{\"a\":1}";
  unsigned char sum[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(body.data()), body.size(), sum);
  const std::string digest =
      "SHA-256=" + testing::base64(std::string(reinterpret_cast<char*>(sum), sizeof(sum)));
  const std::string date = httpDate();

  auto post = [&](const std::string& d, const std::string& payload) {
    return b.send("POST /x HTTP/1.1\r\nHost: h\r\nDate: " + date + "\r\nDigest: " + d +
                  "\r\nAuthorization: hmac username=\"bob-hmac\", algorithm=\"hmac-sha256\", "
                  "headers=\"date digest\", signature=\"" +
                  sign(EVP_sha256(), "secret", "date: " + date + "\ndigest: " + d) +
                  "\"\r\nContent-Length: " + std::to_string(payload.size()) + "\r\n\r\n" +
                  payload);
  };
  CHECK(post(digest, body).status == 200);
  CHECK(post(digest, "{\"a\":2}").body == R"({"message":"HMAC signature does not match"})");
}

}  // namespace
}  // namespace portico::dp
