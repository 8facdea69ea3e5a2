#include "common/config/entities.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/reflection.h>

#include "common/config/kong_json.h"
#include "common/config/validate.h"

namespace portico::config {
namespace {

namespace pb = google::protobuf;

// ---- typedefs (kong/db/schema/typedefs.lua) ------------------------------------------------

Field idField() {
  Field f = Field::string("id");
  f.uuid = true;
  f.auto_value = true;
  return f;
}
Field timestampField(const std::string& name, bool is_float = false) {
  Field f = is_float ? Field::number(name) : Field::integer(name);
  f.auto_value = true;
  return f;
}
Field tagsField() {
  return Field::set("tags", Field::string("tag").lenMax(kMaxTagLength).validator([](Json& v) {
    return checkTag(v.get<std::string>());
  }));
}
Field utf8NameField(const std::string& name) {
  return Field::string(name).lenMax(kMaxNameLength).validator([](Json& v) {
    return checkUtf8Name(v.get<std::string>());
  });
}
Field consumerField() { return Field::foreign("consumer", "consumers").req().cascade(); }

}  // namespace

std::string headerNameCheck(const std::string& name) {
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) {
      return "bad header name '" + name + "', allowed characters are A-Z, a-z, 0-9, '_', and '-'";
    }
  }
  return "";
}
bool isHeaderName(std::string_view name) {
  if (name.empty()) {
    return false;
  }
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) {
      return false;
    }
  }
  return true;
}

bool splitNameValue(std::string_view entry, std::string_view* name, std::string_view* value) {
  const size_t colon = entry.find(':');
  *name = entry.substr(0, colon);
  if (name->empty()) {
    return false;
  }
  if (colon == std::string_view::npos) {
    *value = {};
    return true;
  }
  size_t v = colon;
  while (v < entry.size() && entry[v] == ':') ++v;
  *value = entry.substr(v);
  return true;
}

Field headerNameField(const std::string& name) {
  return Field::string(name).validator([](Json& v) { return headerNameCheck(v.get<std::string>()); });
}

std::vector<Json> jsonList(std::initializer_list<const char*> items) {
  std::vector<Json> out;
  for (const char* i : items) {
    out.emplace_back(i);
  }
  return out;
}

namespace {

// ---- OpenSSL helpers ---------------------------------------------------------------------------

using X509Ptr = std::unique_ptr<X509, decltype(&X509_free)>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;

std::string opensslError() {
  const unsigned long code = ERR_peek_last_error();
  char buf[256] = {0};
  ERR_error_string_n(code, buf, sizeof(buf));
  ERR_clear_error();
  return code == 0 ? "unknown error" : buf;
}

X509Ptr parseCert(const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())),
                                               BIO_free);
  return X509Ptr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr), X509_free);
}

PkeyPtr parseKey(const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())),
                                               BIO_free);
  return PkeyPtr(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr), EVP_PKEY_free);
}

std::string certificateCheck(Json& v) {
  ERR_clear_error();
  if (parseCert(v.get<std::string>()) == nullptr) {
    return "invalid certificate: " + opensslError();
  }
  return "";
}

std::string keyCheck(Json& v) {
  ERR_clear_error();
  if (parseKey(v.get<std::string>()) == nullptr) {
    return "invalid key: " + opensslError();
  }
  return "";
}

std::string certKeyMatch(const Json& e, const char* cert_field, const char* key_field,
                         const char* message) {
  if (!e[cert_field].is_string() || !e[key_field].is_string()) {
    return "";
  }
  X509Ptr cert = parseCert(e[cert_field].get<std::string>());
  PkeyPtr key = parseKey(e[key_field].get<std::string>());
  if (cert == nullptr || key == nullptr) {
    return "";
  }
  const int ok = X509_check_private_key(cert.get(), key.get());
  ERR_clear_error();
  return ok == 1 ? "" : message;
}

std::string sha256Hex(const std::string& pem) {
  X509Ptr cert = parseCert(pem);
  if (cert == nullptr) {
    return "";
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  X509_digest(cert.get(), EVP_sha256(), md, &len);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 15]);
  }
  return out;
}

// ---- entity schemas ----------------------------------------------------------------------------

EntitySchema servicesSchema() {
  // Metadata only: services are validated by the hand-written codec (kong_json.h); this
  // describes keys, references and GET /schemas/services.
  EntitySchema s;
  s.name = "services";
  s.endpoint_key = "name";
  s.fields = {idField(), timestampField("created_at"), timestampField("updated_at"),
              utf8NameField("name").isUnique(),
              Field::integer("retries").def(5).range(0, 32767),
              Field::string("protocol").req().def("http").oneOf(jsonList(
                  {"grpc", "grpcs", "http", "https", "tcp", "tls", "tls_passthrough", "udp"})),
              Field::string("host").req().lenMax(kMaxHostLength),
              Field::integer("port").req().def(80).range(0, 65535),
              Field::string("path").lenMax(kMaxPathLength),
              Field::integer("connect_timeout").def(60000).range(1, 2147483646),
              Field::integer("write_timeout").def(60000).range(1, 2147483646),
              Field::integer("read_timeout").def(60000).range(1, 2147483646), tagsField(),
              Field::foreign("client_certificate", "certificates"),
              Field::boolean("tls_verify"), Field::integer("tls_verify_depth").range(0, 64),
              Field::array("ca_certificates", Field::string("ca")),
              Field::boolean("enabled").req().def(true)};
  return s;
}

EntitySchema routesSchema() {
  EntitySchema s;
  s.name = "routes";
  s.endpoint_key = "name";
  const auto protocols = jsonList({"grpc", "grpcs", "http", "https", "tcp", "tls",
                                   "tls_passthrough", "udp"});
  s.fields = {idField(), timestampField("created_at"), timestampField("updated_at"),
              utf8NameField("name").isUnique(),
              Field::set("protocols", Field::string("p").oneOf(protocols))
                  .req()
                  .lenMin(1)
                  .def(Json::array({"http", "https"})),
              Field::set("methods", Field::string("m")), Field::array("hosts", Field::string("h")),
              Field::array("paths", Field::string("p").lenMax(kMaxPathLength)),
              Field::map("headers", Field::string("k"), Field::array("v", Field::string("v"))),
              Field::integer("https_redirect_status_code")
                  .req()
                  .def(426)
                  .oneOf({426, 301, 302, 307, 308}),
              Field::integer("regex_priority").def(0),
              Field::boolean("strip_path").req().def(true),
              Field::string("path_handling").def("v0").oneOf(jsonList({"v0", "v1"})),
              Field::boolean("preserve_host").req().def(false),
              Field::boolean("request_buffering").req().def(true),
              Field::boolean("response_buffering").req().def(true),
              Field::set("snis", Field::string("sni")), Field::set("sources", Field::json("s")),
              Field::set("destinations", Field::json("d")), tagsField(),
              Field::foreign("service", "services")};
  return s;
}

EntitySchema consumersSchema() {
  EntitySchema s;
  s.name = "consumers";
  s.endpoint_key = "username";
  s.fields = {idField(), timestampField("created_at"), timestampField("updated_at"),
              Field::string("username").lenMax(kMaxNameLength).isUnique(),
              Field::string("custom_id").lenMax(kMaxNameLength).isUnique(),
              tagsField()};
  EntityCheck c;
  c.kind = EntityCheck::Kind::kAtLeastOneOf;
  c.fields = {"custom_id", "username"};
  s.checks = {c};
  return s;
}

}  // namespace

const std::vector<Json>& httpProtocols() {
  static const auto* const kProtocols =
      new std::vector<Json>(jsonList({"grpc", "grpcs", "http", "https"}));
  return *kProtocols;
}

PluginSchema httpPluginSchema(std::string name, int32_t priority, std::vector<Field> config) {
  PluginSchema p;
  p.name = std::move(name);
  p.priority = priority;
  p.config = Field::record("config", std::move(config)).req();
  p.protocols = httpProtocols();
  return p;
}

namespace {

EntitySchema pluginsSchema() {
  EntitySchema s;
  s.name = "plugins";
  s.endpoint_key = "instance_name";
  s.fields = {idField(),
              timestampField("created_at"),
              timestampField("updated_at"),
              Field::string("name").req().lenMax(kMaxNameLength),
              utf8NameField("instance_name").isUnique(),
              Field::foreign("route", "routes").cascade(),
              Field::foreign("service", "services").cascade(),
              Field::foreign("consumer", "consumers").cascade(),
              Field::record("config", {}).req(),
              Field::set("protocols",
                         Field::string("p").oneOf(jsonList({"grpc", "grpcs", "http", "https", "tcp",
                                                            "tls", "tls_passthrough", "udp"})))
                  .req()
                  .def(Json::array({"grpc", "grpcs", "http", "https"})),
              Field::boolean("enabled").req().def(true),
              tagsField(),
              // Dynamic ordering (Kong Enterprise's plugin_ordering): access-phase only.
              Field::record("ordering",
                            {Field::record("before", {Field::array("access", Field::string("a"))}),
                             Field::record("after", {Field::array("access", Field::string("a"))})})};
  s.unique_keys = {{{"consumer", "name", "route", "service"}, {}}};
  // The access order is fixed per route when chains are built; a consumer-scoped instance is
  // only chosen during the walk, too late to move it.
  EntityCheck ordering;
  ordering.fields = {"consumer", "ordering"};
  ordering.fn = [](const Json& e) -> std::string {
    const bool consumer = e.contains("consumer") && !e["consumer"].is_null();
    const bool ordered = e.contains("ordering") && !e["ordering"].is_null();
    return consumer && ordered ? "dynamic ordering is not supported on consumer-scoped plugins"
                               : "";
  };
  s.checks = {ordering};
  return s;
}

std::string upstreamNameCheck(Json& v) {
  const std::string name = v.get<std::string>();
  if (std::string too_long = checkHostLength(name, false); !too_long.empty()) {
    return too_long;
  }
  bool has_port = false;
  const std::string kind = classifyHost(name, &has_port);
  if (kind.empty()) {
    return "Invalid name ('" + name + "'); must be a valid hostname";
  }
  if (kind != "name") {
    return "Invalid name ('" + name + "'); no ip addresses allowed";
  }
  if (has_port) {
    return "Invalid name ('" + name + "'); no port allowed";
  }
  return "";
}

Field statusesField(const std::string& name, Json def) {
  return Field::array(name, Field::integer("s").range(100, 999)).def(std::move(def));
}

Field healthchecksField() {
  Field active = Field::record(
      "active",
      {Field::string("type").def("http").oneOf(jsonList({"tcp", "http", "https", "grpc", "grpcs"})),
       Field::number("timeout").def(1).range(0, 65535),
       Field::integer("concurrency").def(10).range(1, 2147483648.0),
       Field::string("http_path").def("/"), Field::string("https_sni"),
       Field::boolean("https_verify_certificate").def(true),
       Field::map("headers", Field::string("k"), Field::array("v", Field::string("v"))),
       Field::record("healthy", {Field::number("interval").def(0).range(0, 65535),
                                 statusesField("http_statuses", Json::array({200, 302})),
                                 Field::integer("successes").def(0).range(0, 255)})
           .def(Json::object()),
       Field::record("unhealthy",
                     {Field::number("interval").def(0).range(0, 65535),
                      statusesField("http_statuses",
                                    Json::array({429, 404, 500, 501, 502, 503, 504, 505})),
                      Field::integer("tcp_failures").def(0).range(0, 255),
                      Field::integer("timeouts").def(0).range(0, 255),
                      Field::integer("http_failures").def(0).range(0, 255)})
           .def(Json::object())});
  Field passive = Field::record(
      "passive",
      {Field::string("type").def("http").oneOf(jsonList({"tcp", "http", "https", "grpc", "grpcs"})),
       Field::record("healthy",
                     {statusesField("http_statuses",
                                    Json::array({200, 201, 202, 203, 204, 205, 206, 207, 208, 226,
                                                 300, 301, 302, 303, 304, 305, 306, 307, 308})),
                      Field::integer("successes").def(0).range(0, 255)})
           .def(Json::object()),
       Field::record("unhealthy", {statusesField("http_statuses", Json::array({429, 500, 503})),
                                   Field::integer("tcp_failures").def(0).range(0, 255),
                                   Field::integer("timeouts").def(0).range(0, 255),
                                   Field::integer("http_failures").def(0).range(0, 255)})
           .def(Json::object())});
  return Field::record("healthchecks", {active.def(Json::object()), passive.def(Json::object()),
                                        Field::number("threshold").def(0).range(0, 100)})
      .def(Json::object());
}

EntitySchema upstreamsSchema() {
  EntitySchema s;
  s.name = "upstreams";
  s.endpoint_key = "name";
  const auto hash_on = jsonList(
      {"none", "consumer", "ip", "header", "cookie", "path", "query_arg", "uri_capture"});
  s.fields = {idField(),
              timestampField("created_at"),
              timestampField("updated_at"),
              Field::string("name").req().lenMax(kMaxHostLength).isUnique().validator(
                  upstreamNameCheck),
              Field::string("algorithm")
                  .def("round-robin")
                  .oneOf(jsonList({"consistent-hashing", "least-connections", "round-robin",
                                   "latency"})),
              Field::string("hash_on").def("none").oneOf(hash_on),
              Field::string("hash_fallback").def("none").oneOf(hash_on),
              headerNameField("hash_on_header"),
              headerNameField("hash_fallback_header"),
              Field::string("hash_on_cookie").lenMax(kMaxNameLength),
              Field::string("hash_on_cookie_path").def("/").validator([](Json& v) {
                return checkServicePath(v.get<std::string>());
              }),
              Field::string("hash_on_query_arg").lenMax(kMaxNameLength),
              Field::string("hash_fallback_query_arg").lenMax(kMaxNameLength),
              Field::string("hash_on_uri_capture").lenMax(kMaxNameLength),
              Field::string("hash_fallback_uri_capture").lenMax(kMaxNameLength),
              Field::integer("slots").def(10000).range(10, 65536),
              healthchecksField(),
              tagsField(),
              Field::string("host_header").lenMax(kMaxHostLength).validator([](Json& v) {
                return checkHost(v.get<std::string>());
              }),
              Field::foreign("client_certificate", "certificates"),
              Field::boolean("use_srv_name").def(false)};
  auto conditional = [](const char* if_field, const char* value, const char* then_field) {
    EntityCheck c;
    c.kind = EntityCheck::Kind::kConditional;
    c.if_field = if_field;
    c.if_one_of = {Json(value)};
    c.then_field = then_field;
    return c;
  };
  s.checks = {conditional("hash_on", "header", "hash_on_header"),
              conditional("hash_fallback", "header", "hash_fallback_header"),
              conditional("hash_on", "cookie", "hash_on_cookie"),
              conditional("hash_fallback", "cookie", "hash_on_cookie"),
              conditional("hash_on", "query_arg", "hash_on_query_arg"),
              conditional("hash_fallback", "query_arg", "hash_fallback_query_arg"),
              conditional("hash_on", "uri_capture", "hash_on_uri_capture"),
              conditional("hash_fallback", "uri_capture", "hash_fallback_uri_capture")};
  return s;
}

// Kong's targets: host[:port] (IPv6 in brackets), port defaulting to 8000.
std::string targetCheck(Json& v) {
  const std::string target = v.get<std::string>();
  if (std::string too_long = checkHostLength(target, true); !too_long.empty()) {
    return too_long;
  }
  bool has_port = false;
  const std::string kind = classifyHost(target, &has_port);
  if (kind.empty()) {
    return "Invalid target ('" + target + "'); not a valid hostname or ip address";
  }
  if (!has_port) {
    v = kind == "ipv6" && target.front() != '[' ? "[" + target + "]:8000" : target + ":8000";
  }
  return "";
}

EntitySchema targetsSchema() {
  EntitySchema s;
  s.name = "targets";
  s.endpoint_key = "target";
  s.float_timestamps = true;
  s.fields = {idField(),
              timestampField("created_at", true),
              timestampField("updated_at", true),
              Field::foreign("upstream", "upstreams").req().cascade(),
              Field::string("target").req().validator(targetCheck),
              Field::integer("weight").def(100).range(0, 65535),
              tagsField()};
  s.unique_keys = {{{"target"}, {"upstream"}}};
  return s;
}

EntitySchema certificatesSchema() {
  EntitySchema s;
  s.name = "certificates";
  s.fields = {idField(),
              timestampField("created_at"),
              timestampField("updated_at"),
              Field::string("cert").req().validator(certificateCheck),
              Field::string("key").req().validator(keyCheck),
              Field::string("cert_alt").validator(certificateCheck),
              Field::string("key_alt").validator(keyCheck),
              tagsField(),
              Field::array("snis", Field::string("sni").validator([](Json& v) {
                return checkSni(v.get<std::string>());
              })).isTransient()};
  EntityCheck mutual;
  mutual.kind = EntityCheck::Kind::kMutuallyRequired;
  mutual.fields = {"cert_alt", "key_alt"};
  EntityCheck match;
  match.fields = {"cert", "key"};
  match.fn = [](const Json& e) {
    return certKeyMatch(e, "cert", "key", "certificate does not match key");
  };
  EntityCheck alt_match;
  alt_match.fields = {"cert_alt", "key_alt"};
  alt_match.fn = [](const Json& e) {
    return certKeyMatch(e, "cert_alt", "key_alt", "alternative certificate does not match key");
  };
  EntityCheck types;
  types.fields = {"cert", "cert_alt"};
  types.fn = [](const Json& e) -> std::string {
    X509Ptr a = parseCert(e["cert"].get<std::string>());
    X509Ptr b = parseCert(e["cert_alt"].get<std::string>());
    if (a == nullptr || b == nullptr) {
      return "";
    }
    if (EVP_PKEY_base_id(X509_get0_pubkey(a.get())) == EVP_PKEY_base_id(X509_get0_pubkey(b.get()))) {
      return "certificate and alternative certificate need to have different type (e.g. RSA "
             "and ECDSA), the provided certificates were both of the same type";
    }
    return "";
  };
  s.checks = {mutual, match, alt_match, types};
  return s;
}

EntitySchema snisSchema() {
  EntitySchema s;
  s.name = "snis";
  s.endpoint_key = "name";
  s.fields = {idField(),
              timestampField("created_at"),
              timestampField("updated_at"),
              Field::string("name").req().lenMax(kMaxHostLength).isUnique().validator([](Json& v) {
                return checkSni(v.get<std::string>());
              }),
              tagsField(),
              Field::foreign("certificate", "certificates").req().cascade()};
  return s;
}

EntitySchema caCertificatesSchema() {
  EntitySchema s;
  s.name = "ca_certificates";
  s.fields = {idField(),
              timestampField("created_at"),
              timestampField("updated_at"),
              Field::string("cert").req().validator(certificateCheck),
              Field::string("cert_digest").isUnique(),
              tagsField()};
  EntityCheck ca;
  ca.fields = {"cert"};
  ca.fn = [](const Json& e) -> std::string {
    const std::string pem = e["cert"].get<std::string>();
    size_t count = 0;
    for (size_t pos = pem.find("-----BEGIN CERTIFICATE-----"); pos != std::string::npos;
         pos = pem.find("-----BEGIN CERTIFICATE-----", pos + 1)) {
      ++count;
    }
    if (count > 1) {
      return "please submit only one certificate at a time";
    }
    X509Ptr cert = parseCert(pem);
    if (cert == nullptr) {
      return "";
    }
    if (X509_cmp_current_time(X509_get0_notAfter(cert.get())) < 0) {
      return "certificate expired, \"Not After\" time is in the past";
    }
    const uint32_t flags = X509_get_extension_flags(cert.get());
    if ((flags & EXFLAG_BCONS) == 0 || (flags & EXFLAG_CA) == 0) {
      return "certificate does not appear to be a CA because it is missing the \"CA\" basic "
             "constraint";
    }
    return "";
  };
  s.checks = {ca};
  return s;
}

EntitySchema credential(const std::string& name, const std::string& path,
                        const std::string& endpoint_key, std::vector<Field> fields) {
  EntitySchema s;
  s.name = name;
  s.admin_path = path;
  s.endpoint_key = endpoint_key;
  s.fields = {idField(), timestampField("created_at"), consumerField()};
  for (auto& f : fields) {
    s.fields.push_back(std::move(f));
  }
  s.fields.push_back(tagsField());
  return s;
}

EntitySchema jwtSchema() {
  EntitySchema s = credential(
      "jwt_secrets", "jwts", "key",
      {Field::string("key").lenMax(kMaxSecretLength).isUnique().autoRandom(),
       Field::string("secret").lenMax(kMaxSecretLength).autoRandom(),
       Field::string("rsa_public_key"),
       Field::string("algorithm").def("HS256").oneOf(
           jsonList({"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384",
                     "ES512", "PS256", "PS384", "PS512", "EdDSA"}))});
  EntityCheck c;
  c.kind = EntityCheck::Kind::kConditional;
  c.if_field = "algorithm";
  c.if_one_of = jsonList({"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384",
                          "PS512", "EdDSA"});
  c.then_field = "rsa_public_key";
  EntityCheck pem;
  pem.fields = {"rsa_public_key"};
  pem.fn = [](const Json& e) -> std::string {
    const std::string text = e["rsa_public_key"].get<std::string>();
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(
        BIO_new_mem_buf(text.data(), static_cast<int>(text.size())), BIO_free);
    PkeyPtr key(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr), EVP_PKEY_free);
    ERR_clear_error();
    return key == nullptr ? "'rsa_public_key' format is invalid" : "";
  };
  s.checks = {c, pem};
  return s;
}

std::vector<const EntitySchema*>* buildSchemas() {
  auto* out = new std::vector<const EntitySchema*>();
  EntitySchema acls =
      credential("acls", "acls", "group", {Field::string("group").req().lenMax(kMaxNameLength)});
  // A group once per consumer (Kong's cache_key {consumer, group}).
  acls.unique_keys = {{{"consumer", "group"}, {}}};
  for (EntitySchema s :
       {servicesSchema(), routesSchema(), consumersSchema(), pluginsSchema(), upstreamsSchema(),
        targetsSchema(), certificatesSchema(), snisSchema(), caCertificatesSchema(),
        credential("keyauth_credentials", "key-auths", "key",
                   {Field::string("key").lenMax(kMaxSecretLength).isUnique().autoRandom(),
                    Field::integer("ttl").range(0, 100000000)}),
        credential("basicauth_credentials", "basic-auths", "username",
                   {Field::string("username").req().lenMax(kMaxNameLength).isUnique(),
                    Field::string("password").req().lenMax(kMaxSecretLength)}),
        jwtSchema(),
        credential("hmacauth_credentials", "hmac-auths", "username",
                   {Field::string("username").req().lenMax(kMaxNameLength).isUnique(),
                    Field::string("secret").lenMax(kMaxSecretLength).autoRandom()}),
        acls}) {
    out->push_back(new EntitySchema(std::move(s)));
  }
  return out;
}

}  // namespace

const std::vector<const EntitySchema*>& allEntitySchemas() {
  static const auto* const kSchemas = buildSchemas();
  return *kSchemas;
}

const EntitySchema* findEntitySchema(const std::string& name) {
  for (const EntitySchema* s : allEntitySchemas()) {
    if (s->name == name) {
      return s;
    }
  }
  return nullptr;
}

const PluginSchema* findPluginSchema(const std::string& name) {
  for (const auto& p : pluginSchemas()) {
    if (p.name == name) {
      return &p;
    }
  }
  return nullptr;
}

const EntitySchema& pluginEntitySchema(const PluginSchema& plugin) {
  static const auto* const kByName = [] {
    auto* m = new std::map<std::string, EntitySchema>();
    for (const auto& p : pluginSchemas()) {
      EntitySchema s = *findEntitySchema("plugins");
      for (auto& f : s.fields) {
        if (f.name == "config") {
          f = p.config;
        } else if (f.name == "consumer" && p.no_consumer) {
          f.must_be_null = true;
        } else if (f.name == "protocols") {
          f = Field::set("protocols", Field::string("p").oneOf(p.protocols))
                  .req()
                  .def(Json(p.default_protocols.empty() ? p.protocols : p.default_protocols));
        }
      }
      s.checks.insert(s.checks.end(), p.checks.begin(), p.checks.end());
      m->emplace(p.name, std::move(s));
    }
    return m;
  }();
  return kByName->at(plugin.name);
}

Json pluginSchemaToJson(const PluginSchema& plugin) {
  return schemaToJson(pluginEntitySchema(plugin));
}

namespace {

void nullIfUnset(Json* out) {
  if (out->contains("id") && (*out)["id"] == "") {
    (*out)["id"] = nullptr;
  }
  for (const char* ts : {"created_at", "updated_at"}) {
    if (out->contains(ts) && (*out)[ts] == 0) {
      (*out)[ts] = nullptr;
    }
  }
}

}  // namespace

FieldErrors processEntityJson(const std::string& entity, const Json& input, Json* out) {
  if (entity == "services") {
    v1::Service s;
    FieldErrors errors = decodeService(input, &s);
    *out = encodeService(s);
    nullIfUnset(out);
    return errors;
  }
  if (entity == "routes") {
    v1::Route r;
    std::optional<std::string> service_name;
    FieldErrors errors = decodeRoute(input, &r, &service_name);
    if (service_name) {
      errors.push_back({"routes", r.id(), "service.id", "missing primary key"});
    }
    *out = encodeRoute(r);
    nullIfUnset(out);
    return errors;
  }
  const EntitySchema* schema = findEntitySchema(entity);
  if (schema == nullptr) {
    return {{entity, "", "@entity", "unknown entity"}};
  }
  if (entity == "plugins" && input.is_object()) {
    auto name = input.find("name");
    if (name != input.end() && name->is_string()) {
      if (std::string too_long = checkMaxLength(name->get_ref<const std::string&>(), kMaxNameLength);
          !too_long.empty()) {
        *out = input;
        return {{"plugins", "", "name", too_long}};
      }
      const PluginSchema* plugin = findPluginSchema(name->get<std::string>());
      if (plugin == nullptr) {
        *out = input;
        return {{"plugins", "", "name",
                 "plugin '" + name->get<std::string>() +
                     "' not enabled; add it to the 'plugins' configuration property"}};
      }
      schema = &pluginEntitySchema(*plugin);
    }
  }
  FieldErrors errors = processEntity(*schema, input, out);
  if (!errors.empty()) {
    return errors;
  }
  for (const auto& f : schema->fields) {
    if (f.auto_random && (*out)[f.name].is_null()) {
      (*out)[f.name] = randomHex32();
    }
  }
  if (entity == "ca_certificates") {
    (*out)["cert_digest"] = sha256Hex((*out)["cert"].get<std::string>());
  }
  return errors;
}

size_t maxEntityBytes(const std::string& entity) {
  // A plugin's config (allow lists, templates) and a certificate's PEM chains (cert, key and
  // their _alt pair) legitimately run past 64 KiB.
  return entity == "plugins" || entity == "certificates" ? kMaxLargeEntityBytes
                                                         : kMaxEntityBytes;
}

FieldErrors checkEntitySize(const std::string& entity, const Json& entity_json) {
  const size_t max = maxEntityBytes(entity);
  // `replace`: a form body may carry invalid UTF-8 in a field no rule inspects.
  const size_t size = entity_json.dump(-1, ' ', false, Json::error_handler_t::replace).size();
  if (size <= max) {
    return {};
  }
  return {{entity, "", "@entity",
           "entity size must be at most " + std::to_string(max) + " bytes (got " +
               std::to_string(size) + ")"}};
}

namespace {

Json coerceValue(const Field& f, const Json& v) {
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    switch (f.type) {
      case FieldType::kInteger:
      case FieldType::kNumber: {
        char* end = nullptr;
        const double d = std::strtod(s.c_str(), &end);
        if (!s.empty() && end != nullptr && *end == '\0') {
          return std::floor(d) == d && std::fabs(d) < 9e15 ? Json(static_cast<int64_t>(d)) : Json(d);
        }
        return v;
      }
      case FieldType::kBoolean:
        return s == "true" ? Json(true) : s == "false" ? Json(false) : v;
      case FieldType::kArray:
      case FieldType::kSet:
        return Json::array({coerceValue(*f.elements, v)});
      default:
        return v;
    }
  }
  if (v.is_array() && f.elements && (f.type == FieldType::kArray || f.type == FieldType::kSet)) {
    Json out = Json::array();
    for (const auto& e : v) {
      out.push_back(coerceValue(*f.elements, e));
    }
    return out;
  }
  if (v.is_object() && f.type == FieldType::kRecord) {
    Json out = v;
    for (const auto& sub : f.fields) {
      if (out.contains(sub.name)) {
        out[sub.name] = coerceValue(sub, out[sub.name]);
      }
    }
    return out;
  }
  return v;
}

}  // namespace

Json coerceFormValues(const std::string& entity, const Json& input) {
  const EntitySchema* schema = findEntitySchema(entity);
  if (schema == nullptr || !input.is_object()) {
    return input;
  }
  if (entity == "plugins" && input.contains("name") && input["name"].is_string()) {
    if (const PluginSchema* p = findPluginSchema(input["name"].get<std::string>())) {
      schema = &pluginEntitySchema(*p);
    }
  }
  Json out = input;
  for (const auto& f : schema->fields) {
    if (out.contains(f.name)) {
      out[f.name] = coerceValue(f, out[f.name]);
    }
  }
  return out;
}

bool jsonToProto(const Json& entity, pb::Message* out) {
  const pb::Descriptor* d = out->GetDescriptor();
  const pb::Reflection* r = out->GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const pb::FieldDescriptor* f = d->field(i);
    auto it = entity.find(f->name());
    if (it == entity.end() || it->is_null()) {
      continue;
    }
    const Json& v = *it;
    if (f->is_repeated()) {
      if (!v.is_array()) {
        return false;
      }
      for (const auto& e : v) {
        if (f->cpp_type() != pb::FieldDescriptor::CPPTYPE_STRING || !e.is_string()) {
          return false;
        }
        r->AddString(out, f, e.get<std::string>());
      }
      continue;
    }
    switch (f->cpp_type()) {
      case pb::FieldDescriptor::CPPTYPE_STRING:
        r->SetString(out, f, v.is_string() ? v.get<std::string>() : v.dump());
        break;
      case pb::FieldDescriptor::CPPTYPE_INT32:
        if (!v.is_number()) return false;
        r->SetInt32(out, f, static_cast<int32_t>(v.get<double>()));
        break;
      case pb::FieldDescriptor::CPPTYPE_INT64:
        if (!v.is_number()) return false;
        r->SetInt64(out, f, static_cast<int64_t>(v.get<double>()));
        break;
      case pb::FieldDescriptor::CPPTYPE_DOUBLE:
        if (!v.is_number()) return false;
        r->SetDouble(out, f, v.get<double>());
        break;
      case pb::FieldDescriptor::CPPTYPE_BOOL:
        if (!v.is_boolean()) return false;
        r->SetBool(out, f, v.get<bool>());
        break;
      case pb::FieldDescriptor::CPPTYPE_MESSAGE:
        if (!jsonToProto(v, r->MutableMessage(out, f))) return false;
        break;
      default:
        return false;
    }
  }
  return true;
}

Json protoToJson(const pb::Message& message) {
  const pb::Descriptor* d = message.GetDescriptor();
  const pb::Reflection* r = message.GetReflection();
  Json out = Json::object();
  for (int i = 0; i < d->field_count(); ++i) {
    const pb::FieldDescriptor* f = d->field(i);
    if (f->is_repeated()) {
      const int n = r->FieldSize(message, f);
      if (n == 0) {
        out[f->name()] = nullptr;
        continue;
      }
      Json arr = Json::array();
      for (int k = 0; k < n; ++k) {
        arr.push_back(r->GetRepeatedString(message, f, k));
      }
      out[f->name()] = std::move(arr);
      continue;
    }
    if (f->has_presence() && !r->HasField(message, f)) {
      out[f->name()] = nullptr;
      continue;
    }
    switch (f->cpp_type()) {
      case pb::FieldDescriptor::CPPTYPE_STRING: {
        const std::string s = r->GetString(message, f);
        // JSON-valued fields (a plugin's config and ordering, an upstream's healthchecks).
        if ((f->name() == "config" || f->name() == "healthchecks" || f->name() == "ordering") &&
            !s.empty()) {
          out[f->name()] = Json::parse(s, nullptr, false);
        } else {
          out[f->name()] = s;
        }
        break;
      }
      case pb::FieldDescriptor::CPPTYPE_INT32:
        out[f->name()] = r->GetInt32(message, f);
        break;
      case pb::FieldDescriptor::CPPTYPE_INT64:
        out[f->name()] = r->GetInt64(message, f);
        break;
      case pb::FieldDescriptor::CPPTYPE_DOUBLE:
        out[f->name()] = r->GetDouble(message, f);
        break;
      case pb::FieldDescriptor::CPPTYPE_BOOL:
        out[f->name()] = r->GetBool(message, f);
        break;
      case pb::FieldDescriptor::CPPTYPE_MESSAGE:
        out[f->name()] = protoToJson(r->GetMessage(message, f));
        break;
      default:
        break;
    }
  }
  return out;
}

std::string basicAuthHash(const std::string& password, const std::string& consumer_id) {
  const std::string input = password + consumer_id;
  unsigned char md[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), md);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned char b : md) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

}  // namespace portico::config
