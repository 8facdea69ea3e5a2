// The catalog's OpenAPI checks (control_plane/admin_api/catalog_openapi.h): one case per
// accepted or rejected document, with the exact message naming the place in the document.
#include "control_plane/admin_api/catalog_openapi.h"

#include <catch2/catch.hpp>
#include <string>

namespace portico::cp::catalog {
namespace {

Json minimal30() {
  return Json::parse(R"j({
    "openapi": "3.0.3",
    "info": {"title": "Payments", "version": "1.0.0"},
    "paths": {
      "/invoices/{invoiceId}": {
        "get": {"operationId": "getInvoiceById", "summary": "Fetch one invoice",
                "tags": ["billing"],
                "parameters": [{"name": "invoiceId", "in": "path", "required": true}],
                "responses": {"200": {"description": "ok"}}}
      }
    }
  })j");
}

// Every issue of `doc`, described, joined by "; ".
std::string issues(const Json& doc) {
  std::string out;
  for (const OpenApiIssue& i : validateOpenApi(doc)) {
    out += (out.empty() ? "" : "; ") + i.describe();
  }
  return out;
}

TEST_CASE("catalog openapi: accepts a minimal 3.0 document and a 3.1 one without paths") {
  CHECK(issues(minimal30()) == "");
  CHECK(issues(Json::parse(R"j({"openapi": "3.1.0", "info": {"title": "t", "version": "1"},
                                "components": {}})j")) == "");
}

TEST_CASE("catalog openapi: the document must be an object") {
  CHECK(issues(Json::array()) == "at /: the document must be an object");
}

TEST_CASE("catalog openapi: Swagger 2.0 is named as such") {
  CHECK(issues(Json::parse(R"j({"swagger": "2.0", "info": {"title": "t", "version": "1"},
                                "paths": {}})j")) ==
        "at /openapi: required field missing (Swagger 2.0 documents are not supported: convert "
        "the document to OpenAPI 3)");
}

TEST_CASE("catalog openapi: openapi must be a 3.x version string") {
  for (const Json& v : {Json("2.0"), Json("3"), Json("3.0"), Json(3.0), Json("3.x.1")}) {
    Json doc = minimal30();
    doc["openapi"] = v;
    CHECK(issues(doc) ==
          "at /openapi: must be an OpenAPI 3.x version string such as \"3.0.3\" or \"3.1.0\"");
  }
}

TEST_CASE("catalog openapi: info needs a string title and version") {
  Json doc = minimal30();
  doc["info"] = Json{{"version", 1.0}};
  CHECK(issues(doc) ==
        "at /info/title: required field missing; at /info/version: must be a string");
}

TEST_CASE("catalog openapi: paths must be an object of '/' keys") {
  Json doc = minimal30();
  doc["paths"] = Json::array();
  CHECK(issues(doc) == "at /paths: must be an object");
  doc["paths"] = Json{{"pets", Json::object()}, {"/a~b", 3}, {"x-ext", 1}};
  CHECK(issues(doc) ==
        "at /paths/~1a~0b: must be an object; at /paths/pets: a path must start "
        "with '/'");
}

TEST_CASE("catalog openapi: 3.0 requires paths and responses, 3.1 does not") {
  Json doc = minimal30();
  doc["paths"]["/invoices/{invoiceId}"]["get"].erase("responses");
  CHECK(issues(doc) == "at /paths/~1invoices~1{invoiceId}/get/responses: required field missing");
  doc["openapi"] = "3.1.0";
  CHECK(issues(doc) == "");
  doc.erase("paths");
  CHECK(issues(doc) ==
        "at /paths: required field missing (an OpenAPI 3.1 document needs paths, "
        "components or webhooks)");
}

TEST_CASE("catalog openapi: operation fields have their types") {
  Json doc = minimal30();
  Json& op = doc["paths"]["/invoices/{invoiceId}"]["get"];
  op["operationId"] = 7;
  op["summary"] = Json::array();
  op["tags"] = Json::array({"ok", 2});
  op["responses"] = "none";
  CHECK(issues(doc) ==
        "at /paths/~1invoices~1{invoiceId}/get/summary: must be a string; "
        "at /paths/~1invoices~1{invoiceId}/get/operationId: must be a string; "
        "at /paths/~1invoices~1{invoiceId}/get/tags/1: must be a string; "
        "at /paths/~1invoices~1{invoiceId}/get/responses: must be an object");
  doc["paths"]["/invoices/{invoiceId}"]["post"] = "x";
  CHECK(issues(doc).find("at /paths/~1invoices~1{invoiceId}/post: must be an object") !=
        std::string::npos);
}

TEST_CASE("catalog openapi: operationIds are unique") {
  Json doc = minimal30();
  doc["paths"]["/other"]["put"] =
      Json{{"operationId", "getInvoiceById"}, {"responses", Json::object()}};
  CHECK(issues(doc) ==
        "at /paths/~1other/put/operationId: duplicate operationId "
        "'getInvoiceById' (also at /paths/~1invoices~1{invoiceId}/get)");
}

TEST_CASE("catalog openapi: parameters need a name and a valid in") {
  Json doc = minimal30();
  doc["paths"]["/invoices/{invoiceId}"]["get"]["parameters"] =
      Json::parse(R"j([{"name": "a", "in": "body"}, {"in": "query"}, {"name": "id", "in": "path"},
                       {"$ref": "#/components/parameters/x"}, 5])j");
  CHECK(issues(doc) ==
        "at /paths/~1invoices~1{invoiceId}/get/parameters/0/in: must be one of query, header, "
        "path, cookie; at /paths/~1invoices~1{invoiceId}/get/parameters/1/name: required field "
        "missing; at /paths/~1invoices~1{invoiceId}/get/parameters/2/required: must be true for "
        "a path parameter; at /paths/~1invoices~1{invoiceId}/get/parameters/4: must be an "
        "object");
}

TEST_CASE("catalog openapi: servers and tags are arrays of objects") {
  Json doc = minimal30();
  doc["servers"] = Json::array({Json{{"url", 1}}});
  doc["tags"] = Json::array({Json::object()});
  doc["components"] = 1;
  CHECK(issues(doc) ==
        "at /servers/0/url: must be a string; at /tags/0/name: required field "
        "missing; at /components: must be an object");
}

TEST_CASE("catalog openapi: at most max_issues are reported") {
  Json doc = minimal30();
  for (int i = 0; i < 20; ++i) {
    doc["paths"]["p" + std::to_string(i)] = Json::object();
  }
  CHECK(validateOpenApi(doc).size() == 10);
  CHECK(validateOpenApi(doc, 3).size() == 3);
}

TEST_CASE("catalog openapi: YAML text is read, and issues carry their line") {
  const SpecRead r =
      readSpec(Json("openapi: 3.0.3\n"
                    "info:\n"
                    "  title: Pets\n"
                    "  version: 1.0\n"
                    "paths:\n"
                    "  /pets:\n"
                    "    get:\n"
                    "      operationId: listPets\n"));
  REQUIRE(r.issues.size() == 2);
  CHECK(r.issues[0].describe() == "at /info/version: must be a string (line 4)");
  CHECK(r.issues[1].describe() ==
        "at /paths/~1pets/get/responses: required field missing "
        "(line 8)");  // where the get object starts
  CHECK(r.text.empty());
}

TEST_CASE("catalog openapi: a valid document's text is kept as given, with its format") {
  const std::string yaml =
      "openapi: 3.1.0\ninfo: {title: Pets, version: '1'}\npaths:\n  /pets: {get: {}}\n";
  SpecRead r = readSpec(Json(yaml));
  CHECK(r.issues.empty());
  CHECK(r.text == yaml);
  CHECK(r.format == "yaml");
  r = readSpec(Json(minimal30().dump(2)));
  CHECK(r.issues.empty());
  CHECK(r.format == "json");
  r = readSpec(minimal30());
  CHECK(r.issues.empty());
  CHECK(r.text == minimal30().dump());
  CHECK(r.bytes == r.text.size());
}

TEST_CASE("catalog openapi: text that is neither JSON nor YAML, and other types") {
  SpecRead r = readSpec(Json("openapi: [3.0\n"));
  REQUIRE(r.issues.size() == 1);
  CHECK(r.issues[0].describe().rfind("at /: not a JSON or YAML document: line ", 0) == 0);
  r = readSpec(Json(42));
  REQUIRE(r.issues.size() == 1);
  CHECK(r.issues[0].describe() ==
        "at /: must be an OpenAPI document: a JSON object, or its JSON or YAML text");
}

TEST_CASE("catalog openapi: documents over 10 MiB are refused before parsing") {
  SpecRead r = readSpec(Json(std::string(kMaxSpecBytes + 1, ' ')));
  CHECK(r.too_large);
  CHECK(r.bytes == kMaxSpecBytes + 1);
  Json big = minimal30();
  big["info"]["description"] = std::string(kMaxSpecBytes, 'x');
  r = readSpec(big);
  CHECK(r.too_large);
}

TEST_CASE("catalog openapi: search terms split operationIds and paths") {
  const std::string terms = openApiSearchTerms(minimal30());
  CHECK(terms ==
        "Payments invoices invoiceId invoice Id getInvoiceById get Invoice By Id Fetch "
        "one invoice billing");
}

TEST_CASE("catalog openapi: a punctuated operationId is kept whole and split") {
  Json doc = minimal30();
  doc["paths"] = Json{{"/a", {{"get", {{"operationId", "invoices.get-one"}}}}}};
  CHECK(openApiSearchTerms(doc) == "Payments a invoices.get-one invoices get one");
}

TEST_CASE("catalog openapi: search terms stop at whole words within the cap") {
  Json doc = minimal30();
  for (int i = 0; i < 5000; ++i) {
    doc["paths"]["/resource" + std::to_string(i) + "/items"]["get"] =
        Json{{"operationId", "listItems" + std::to_string(i)}, {"responses", Json::object()}};
  }
  const std::string terms = openApiSearchTerms(doc);
  CHECK(terms.size() <= kMaxSpecTermBytes);
  CHECK(terms.size() > kMaxSpecTermBytes - 100);
  CHECK(terms.back() != ' ');
}

}  // namespace
}  // namespace portico::cp::catalog
