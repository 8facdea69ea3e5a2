// cli/openapi: OpenAPI 3 to Kong declarative config with openapi-2-kong's rules (names, regex
// paths, tags, x-kong-* extensions, security and request-validator plugins), its bad-input
// errors with their place, and every spec of ../shared/fixtures/openapi loading with our own
// declarative loader.
#include "cli/openapi.h"

#include <dirent.h>

#include <cstdlib>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "common/declarative/declarative.h"

namespace portico::cli {
namespace {

using Json = nlohmann::json;

Json convert(const std::string& yaml, OpenApiOptions options = {}) {
  absl::StatusOr<Document> doc = parseDocument("spec.yaml", yaml);
  REQUIRE(doc.ok());
  absl::StatusOr<Json> out = openApiToKong(*doc, options);
  INFO(out.status().ToString());
  REQUIRE(out.ok());
  return *out;
}

std::string convertError(const std::string& yaml) {
  absl::StatusOr<Document> doc = parseDocument("spec.yaml", yaml);
  REQUIRE(doc.ok());
  absl::StatusOr<Json> out = openApiToKong(*doc, {});
  REQUIRE_FALSE(out.ok());
  return std::string(out.status().message());
}

void requireLoads(const Json& config) {
  declarative::LoadResult r = declarative::loadDeclarative(config.dump());
  INFO(r.describe("generated"));
  REQUIRE(r.ok());
}

constexpr char kPetstore[] = R"(openapi: "3.0.0"
info:
  title: Swagger Petstore
servers:
  - url: http://petstore.swagger.io/v1
paths:
  /pets:
    get:
      operationId: listPets
    post:
      operationId: createPets
  /pets/{petId}:
    get:
      operationId: showPetById
  /pets/{pet-id}/toys:
    put: {}
)";

TEST_CASE("openapi: slugify as openapi-2-kong's names") {
  CHECK(slugify("Swagger Petstore") == "Swagger_Petstore");
  CHECK(slugify("find pet by id") == "find_pet_by_id");
  CHECK(slugify("__a__b \t c_") == "a_b_c");
  CHECK(slugify("Ünïcode Çafé") == "Unicode_Cafe");
  CHECK(slugify("a&b$c%d<e>f|g") == "aandbdollarcpercentdlessegreaterforg");
  CHECK(slugify("/pets-{petId}/x?y=1,#z") == "pets-petIdxy1z");
  CHECK(slugify("keep:*+~.()'\"!-@") == "keep:*+~.()'\"!-@");
  CHECK(slugify("日本") == "");
}

TEST_CASE("openapi: path parameters become named captures") {
  CHECK(pathToRegex("/foo/{bar}/{baz}", false) == "/foo/(?<bar>[^/]+)/(?<baz>[^/]+)$");
  CHECK(pathToRegex("/foo/{bar}/{baz}", true) == "~/foo/(?<bar>[^/]+)/(?<baz>[^/]+)$");
  CHECK(pathToRegex("/foo-bar/{bar-test}", true) == "~/foo-bar/(?<bar_test>[^/]+)$");
  CHECK(pathToRegex("/foo-bar/{bar-test}", false) == "/foo-bar/(?<bar-test>[^/]+)$");
  CHECK(pathToRegex("/foo/bar/$baz(1)", false) == "/foo/bar/\\$baz\\(1\\)$");
  CHECK(pathToRegex("/a/{x}://b/{}", false) == "/a/{x}://b/{}$");
  CHECK(pathToRegex("/", true) == "~/$");
}

TEST_CASE("openapi: one service from servers, one route per operation") {
  OpenApiOptions options;
  options.file_tag = "petstore.yaml";
  options.tags = {"team-a"};
  const Json config = convert(kPetstore, options);
  CHECK(config["_format_version"] == "3.0");
  REQUIRE(config["services"].size() == 1);
  CHECK_FALSE(config.contains("upstreams"));
  const Json& s = config["services"][0];
  const Json tags = {"OAS3_import", "OAS3file_petstore.yaml", "team-a"};
  CHECK(s["name"] == "Swagger_Petstore");
  CHECK(s["protocol"] == "http");
  CHECK(s["host"] == "petstore.swagger.io");
  CHECK(s["port"] == 80);
  CHECK(s["path"] == "/v1");
  CHECK(s["plugins"] == Json::array());
  CHECK(s["tags"] == tags);
  const Json& r = s["routes"];
  REQUIRE(r.size() == 4);
  // In the file's order, as openapi-2-kong writes them.
  CHECK(r[0]["name"] == "Swagger_Petstore-listPets");
  CHECK(r[0]["methods"] == Json{"GET"});
  CHECK(r[0]["paths"] == Json{"~/pets$"});
  CHECK(r[0]["strip_path"] == false);
  CHECK(r[0]["tags"] == tags);
  CHECK_FALSE(r[0].contains("plugins"));
  CHECK(r[1]["name"] == "Swagger_Petstore-createPets");
  CHECK(r[1]["methods"] == Json{"POST"});
  CHECK(r[2]["name"] == "Swagger_Petstore-showPetById");
  CHECK(r[2]["paths"] == Json{"~/pets/(?<petId>[^/]+)$"});
  CHECK(r[3]["name"] == "Swagger_Petstore-pets-pet-id-toys-put");
  CHECK(r[3]["paths"] == Json{"~/pets/(?<pet_id>[^/]+)/toys$"});
  requireLoads(config);

  options.format_version = "1.1";
  const Json legacy = convert(kPetstore, options);
  CHECK(legacy["_format_version"] == "1.1");
  CHECK(legacy["services"][0]["routes"][2]["paths"] == Json{"/pets/(?<petId>[^/]+)$"});
}

TEST_CASE("openapi: server URLs") {
  const auto service = [](const std::string& servers) {
    return convert("openapi: 3.0.0\ninfo: {title: t}\nservers:\n" + servers + "paths: {}\n")
        ["services"][0];
  };
  Json s = service("  - url: https://API.example.com\n");
  CHECK(s["protocol"] == "https");
  CHECK(s["host"] == "api.example.com");
  CHECK(s["port"] == 443);
  CHECK(s["path"] == "/");
  s = service("  - url: /v1\n");  // relative: against http://localhost
  CHECK(s["host"] == "localhost");
  CHECK(s["path"] == "/v1");
  s = service(
      "  - url: '{proto}://{host}:{port}/{base}'\n    variables:\n      proto: {default: http}\n"
      "      host: {default: h.test}\n      port: {default: '8080'}\n      base: {default: v2}\n");
  CHECK(s["protocol"] == "http");
  CHECK(s["host"] == "h.test");
  CHECK(s["port"] == 8080);
  CHECK(s["path"] == "/v2");
  CHECK(convertError("openapi: 3.0.0\nservers:\n  - url: '{a}'\n    variables:\n      a: {}\n"
                     "paths: {}\n") ==
        "spec.yaml:5: /servers/0/variables/a: Server variable \"a\" missing default value");
  // The service's name: x-kong-name, else the title, else "openapi".
  CHECK(convert("openapi: 3.0.0\nservers: [{url: /}]\npaths: {}\n")["services"][0]["name"] ==
        "openapi");
  CHECK(convert("openapi: 3.0.0\nx-kong-name: My API\ninfo: {title: t}\nservers: [{url: /}]\n"
                "paths: {}\n")["services"][0]["name"] == "My_API");
}

TEST_CASE("openapi: x-kong extensions") {
  const Json config = convert(R"(openapi: 3.0.3
info: {title: Ext}
servers:
  - url: https://a.example.com:8443/base
  - url: http://b.example.com
x-kong-service-defaults: {retries: 3, name: ignored}
x-kong-upstream-defaults: {slots: 1000}
x-kong-route-defaults: {preserve_host: true}
x-kong-plugin-rate-limiting:
  config: {minute: 10, policy: local}
x-kong-plugin-cors: {config: {origins: ["*"]}, tags: [extra]}
paths:
  /a:
    x-kong-plugin-cors: {config: {origins: ["https://a.example"]}}
    x-kong-route-defaults: {regex_priority: 5}
    get:
      operationId: getA
      x-kong-plugin-rate-limiting: {config: {minute: 5, policy: local}}
    post:
      x-kong-name: Make A
      x-kong-route-defaults: {strip_path: true}
      x-kong-plugin-key-auth: {enabled: false}
  /b:
    delete: {}
)");
  const Json& s = config["services"][0];
  CHECK(s["name"] == "Ext");
  CHECK(s["retries"] == 3);
  CHECK(s["host"] == "Ext.upstream");
  CHECK(s["port"] == 8443);
  REQUIRE(s["plugins"].size() == 2);
  CHECK(s["plugins"][0]["name"] == "rate-limiting");
  CHECK(s["plugins"][0]["config"]["minute"] == 10);
  CHECK(s["plugins"][1]["name"] == "cors");
  CHECK(s["plugins"][1]["tags"] == Json{"OAS3_import", "extra"});
  const Json& r = s["routes"];
  REQUIRE(r.size() == 3);
  // Path-level route defaults replace the document's; the operation's replace the path's.
  CHECK(r[0]["regex_priority"] == 5);
  CHECK_FALSE(r[0].contains("preserve_host"));
  REQUIRE(r[0]["plugins"].size() == 2);  // the operation's rate-limiting, the path's cors
  CHECK(r[0]["plugins"][0]["config"]["minute"] == 5);
  CHECK(r[0]["plugins"][1]["config"]["origins"] == Json{"https://a.example"});
  CHECK(r[1]["name"] == "Ext-Make_A");
  CHECK(r[1]["strip_path"] == true);
  CHECK_FALSE(r[1].contains("regex_priority"));
  CHECK(r[1]["plugins"][0]["name"] == "key-auth");
  CHECK(r[1]["plugins"][0]["enabled"] == false);
  CHECK(r[2]["name"] == "Ext-b-delete");
  CHECK(r[2]["preserve_host"] == true);
  REQUIRE(config["upstreams"].size() == 1);
  const Json& u = config["upstreams"][0];
  CHECK(u["name"] == "Ext.upstream");
  CHECK(u["slots"] == 1000);
  CHECK(u["targets"][0]["target"] == "a.example.com:8443");
  CHECK(u["targets"][1]["target"] == "b.example.com:80");
  requireLoads(config);

  CHECK(convertError("openapi: 3.0.0\nservers: [{url: /}]\nx-kong-service-defaults: 3\n"
                     "paths: {}\n") ==
        "spec.yaml:3: /x-kong-service-defaults: expected 'x-kong-service-defaults' to be an "
        "object");
  CHECK(convertError("openapi: 3.0.0\nservers: [{url: /}]\npaths:\n  /a:\n    get:\n"
                     "      x-kong-plugin-cors: 1\n") ==
        "spec.yaml:6: /paths/~1a/get/x-kong-plugin-cors: expected 'x-kong-plugin-cors' to be an "
        "object (a plugin)");
}

TEST_CASE("openapi: security requirements and request-validator") {
  const Json config = convert(R"(openapi: 3.0.0
info: {title: Sec}
servers: [{url: http://x.test}]
security: [{Key: []}]
components:
  securitySchemes:
    Key: {type: apiKey, in: header, name: X-Key}
    Basic: {$ref: '#/components/securitySchemes/RealBasic'}
    RealBasic:
      type: http
      scheme: basic
      x-kong-security-basic-auth: {config: {hide_credentials: true}}
    Oidc: {type: openIdConnect, openIdConnectUrl: https://idp.test}
    OAuth: {type: oauth2, flows: {}}
  parameters:
    Id: {name: id, in: path, required: true, schema: {$ref: '#/components/schemas/Id'}}
  schemas:
    Id: {type: string}
    Pet:
      type: object
      properties:
        name: {type: string, nullable: true}
paths:
  /pets/{id}:
    x-kong-plugin-request-validator: {}
    put:
      security: [{Basic: [], Oidc: [read, write], OAuth: []}]
      parameters: [{$ref: '#/components/parameters/Id'}, {name: q, in: query}]
      requestBody:
        content:
          application/json:
            schema: {$ref: '#/components/schemas/Pet'}
          text/plain: {}
)");
  const Json& s = config["services"][0];
  REQUIRE(s["plugins"].size() == 1);
  CHECK(s["plugins"][0]["name"] == "key-auth");
  CHECK(s["plugins"][0]["config"]["key_names"] == Json{"X-Key"});
  const Json& p = s["routes"][0]["plugins"];
  REQUIRE(p.size() == 3);
  CHECK(p[0]["name"] == "request-validator");
  const Json& c = p[0]["config"];
  CHECK(c["version"] == "draft4");
  REQUIRE(c["parameter_schema"].size() == 2);
  CHECK(c["parameter_schema"][0] == Json{{"in", "path"},   {"explode", false},
                                         {"required", true}, {"name", "id"},
                                         {"schema", R"({"type":"string"})"}, {"style", "simple"}});
  CHECK(c["parameter_schema"][1]["schema"] == "{}");
  CHECK(c["parameter_schema"][1]["style"] == "form");
  CHECK(Json::parse(c["body_schema"].get<std::string>()) ==
        Json::parse(R"({"type":"object","properties":{"name":{"type":["string","null"],
                        "nullable":true}}})"));
  CHECK(c["allowed_content_types"] == Json{"application/json", "text/plain"});
  CHECK(p[1]["name"] == "basic-auth");
  CHECK(p[1]["config"]["hide_credentials"] == true);
  CHECK(p[2]["name"] == "openid-connect");
  CHECK(p[2]["config"] ==
        Json{{"issuer", "https://idp.test"}, {"scopes_required", {"read", "write"}}});

  CHECK(convertError(R"(openapi: 3.0.0
servers: [{url: /}]
components: {securitySchemes: {B: {type: http, scheme: bearer}}}
paths: {/a: {get: {security: [{B: []}]}}}
)") == "spec.yaml:3: /components/securitySchemes/B: Only \"basic\" http scheme supported. got "
       "bearer");
}

TEST_CASE("openapi: bad specs get one error naming the place") {
  CHECK(convertError("openapi: 3.0.0\ninfo: {title: t}\npaths: {}\n") ==
        "spec.yaml:1: /: no servers defined in spec");
  CHECK(convertError("swagger: '2.0'\n") ==
        "spec.yaml:1: /swagger: Swagger 2.0 is not supported: convert the spec to OpenAPI 3 "
        "first");
  CHECK(convertError("openapi: 2.5\n") ==
        "spec.yaml:1: /openapi: expected an OpenAPI 3.x version string, got 2.5");
  CHECK(convertError("info: {}\n") == "spec.yaml:1: /: not an OpenAPI 3 document: no 'openapi' field");
  CHECK(convertError("- a\n") == "spec.yaml:1: /: an OpenAPI document is a map");
  CHECK(convertError("openapi: 3.0.0\nservers: [{url: /}]\n") ==
        "spec.yaml:1: /: expected 'paths' to be a map");
  CHECK(convertError("openapi: 3.0.0\nservers: [{url: /}]\npaths:\n  /a:\n"
                     "    $ref: 'other.yaml#/x'\n") ==
        "spec.yaml:5: /paths/~1a/$ref: only local $refs (\"#/...\") are supported, not "
        "'other.yaml#/x'");
  CHECK(convertError("openapi: 3.0.0\nservers: [{url: /}]\npaths:\n  /a:\n"
                     "    $ref: '#/nowhere'\n") ==
        "spec.yaml:5: /paths/~1a/$ref: $ref target '#/nowhere' does not exist");
  CHECK(convertError("openapi: 3.0.0\nservers: [{url: /}]\nx: {$ref: '#/y'}\ny: {$ref: '#/x'}\n"
                     "paths:\n  /a:\n    $ref: '#/x'\n") ==
        "spec.yaml:4: /y/$ref: $ref cycle: #/x -> #/y -> #/x");
  // A recursive body schema cannot be expanded into request-validator's body_schema.
  const std::string recursive = convertError(R"(openapi: 3.0.0
servers: [{url: /}]
components:
  schemas:
    Node: {type: object, properties: {next: {$ref: '#/components/schemas/Node'}}}
paths:
  /a:
    post:
      x-kong-plugin-request-validator: {}
      requestBody: {content: {application/json: {schema: {$ref: '#/components/schemas/Node'}}}}
)");
  CHECK(recursive ==
        "spec.yaml:5: /components/schemas/Node/properties/next/$ref: $ref cycle through "
        "#/components/schemas/Node (recursive schemas cannot be expanded)");
  // Unused recursive schemas are fine.
  convert("openapi: 3.0.0\nservers: [{url: /}]\ncomponents: {schemas: {N: {properties: "
          "{n: {$ref: '#/components/schemas/N'}}}}}\npaths: {/a: {get: {}}}\n");

  // The loader's limits hold for specs too: nesting depth, alias expansion.
  std::string deep = "openapi: 3.0.0\nx: ";
  for (int i = 0; i < 100; ++i) {
    deep += "[";
  }
  CHECK_FALSE(parseDocument("deep.yaml", deep).ok());
  std::string bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  for (char c = 'b'; c <= 'i'; ++c) {
    const std::string prev(1, static_cast<char>(c - 1));
    bomb += std::string(1, c) + ": &" + std::string(1, c) + " [";
    for (int k = 0; k < 10; ++k) {
      bomb += (k ? ", *" : "*") + prev;
    }
    bomb += "]\n";
  }
  CHECK_FALSE(parseDocument("bomb.yaml", bomb).ok());
}

TEST_CASE("openapi: the fixture specs (../shared/fixtures/openapi) load with our loader") {
  const char* src = std::getenv("PORTICO_SOURCE_DIR");
  const std::string dir = std::string(src != nullptr ? src : ".") + "/../shared/fixtures/openapi/";
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    WARN("skipped: " << dir << " is absent");
    return;
  }
  std::vector<std::string> specs;
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name.size() > 5 && (name.ends_with(".yaml") || name.ends_with(".yml") ||
                            name.ends_with(".json"))) {
      specs.push_back(name);
    }
  }
  ::closedir(d);
  REQUIRE_FALSE(specs.empty());
  int converted = 0;
  for (const std::string& name : specs) {
    INFO(name);
    absl::StatusOr<Document> doc = readDocument(dir + name);
    REQUIRE(doc.ok());
    const Json* servers = doc->value.contains("servers") ? &doc->value["servers"] : nullptr;
    for (const char* format : {"3.0", "1.1"}) {
      OpenApiOptions options;
      options.format_version = format;
      options.file_tag = name;
      absl::StatusOr<Json> config = openApiToKong(*doc, options);
      if (servers == nullptr) {
        // As openapi-2-kong: a spec without servers has no service to generate.
        REQUIRE_FALSE(config.ok());
        CHECK(std::string(config.status().message()).ends_with("no servers defined in spec"));
        continue;
      }
      INFO(config.status().ToString());
      REQUIRE(config.ok());
      CHECK(config->at("_format_version") == format);
      CHECK_FALSE(config->at("services")[0]["routes"].empty());
      requireLoads(*config);
      ++converted;
    }
  }
  CHECK(converted >= 4);  // petstore.yaml and petstore-expanded.yaml, in both formats
}

}  // namespace
}  // namespace portico::cli
