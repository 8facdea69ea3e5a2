// ServiceHub's catalog API (/service-catalog/...) against a real PostgreSQL: CRUD, Konnect
// paging, full-text search ranking and filters, versions with OpenAPI documents and gateway
// service bindings, the consumers a service calls as, declared dependencies and those the
// vitals show, usage from the vitals rollups, bad input, read-only tokens and cascades.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "control_plane/admin_api/admin_auth.h"
#include "control_plane/admin_api/catalog_openapi.h"
#include "control_plane/admin_api/http_server.h"
#include "control_plane/store/migrations.h"
#include "control_plane/store/pg_store_impl.h"
#include "tests/support/test_support.h"

namespace portico::cp {
namespace {

using nlohmann::json;

struct Fixture {
  testing::TestPostgres pg;
  std::unique_ptr<PgConfigStore> store;
  std::unique_ptr<AdminHttpServer> admin;

  explicit Fixture(AdminServerOptions options = {}) {
    REQUIRE(migrateUp(pg.dsn()).ok());
    store = std::move(PgConfigStore::open({pg.dsn(), 4}).value());
    options.listen_address = "127.0.0.1:0";
    admin = std::move(AdminHttpServer::start(*store, options).value());
  }
  ~Fixture() {
    admin->shutdown();
    store->stop();
  }
  testing::HttpResponse call(const std::string& method, const std::string& target,
                             const std::string& body = "", const std::string& token = "") {
    std::map<std::string, std::string> headers;
    if (!body.empty()) {
      headers["Content-Type"] = "application/json";
    }
    if (!token.empty()) {
      headers["Kong-Admin-Token"] = token;
    }
    return testing::httpRequest("127.0.0.1", admin->port(), method, target, body, headers);
  }
  json callJson(const std::string& method, const std::string& target, const json& body,
                int expected) {
    auto r = call(method, target, body.is_null() ? "" : body.dump());
    INFO(method << " " << target << " -> " << r.status << " " << r.body.substr(0, 2000));
    REQUIRE(r.status == expected);
    return r.body.empty() ? json() : json::parse(r.body);
  }
  // The names of a list answer's items, in order.
  std::vector<std::string> names(const std::string& target) {
    std::vector<std::string> out;
    const json page = callJson("GET", target, json(), 200);
    for (const json& s : page["data"]) {
      out.push_back(s["name"]);
    }
    return out;
  }
};

const json kSpec = json::parse(R"j({
  "openapi": "3.0.3",
  "info": {"title": "Ledger API", "version": "2.0.0"},
  "paths": {
    "/refunds/{refundId}": {
      "post": {"operationId": "refundPayment", "summary": "Refund a settled charge",
               "tags": ["money-movement"],
               "parameters": [{"name": "refundId", "in": "path", "required": true}],
               "responses": {"201": {"description": "created"}}}
    }
  }
})j");

constexpr char kServices[] = "/service-catalog/services";

TEST_CASE("catalog: services are created, read by id or name, patched and deleted") {
  Fixture f;
  json created = f.callJson("POST", kServices,
                            {{"name", "payments"},
                             {"display_name", "Payments"},
                             {"description", "Takes card payments.\nOwned by the money team."},
                             {"owner_team", "money"},
                             {"labels", {{"tier", "1"}, {"env", "prod"}}},
                             {"links",
                              {{"repository", "https://git.example.com/payments"},
                               {"runbook", "https://wiki.example.com/payments/runbook"}}}},
                            201);
  const std::string id = created["id"];
  CHECK(created["name"] == "payments");
  CHECK(created["labels"] == json{{"tier", "1"}, {"env", "prod"}});
  CHECK(created["links"]["repository"] == "https://git.example.com/payments");
  CHECK(created["created_at"].get<std::string>().back() == 'Z');
  CHECK(f.callJson("GET", std::string(kServices) + "/payments", json(), 200) == created);
  CHECK(f.callJson("GET", std::string(kServices) + "/" + id, json(), 200) == created);

  // Unique names, with Kong's body.
  CHECK(
      f.callJson("POST", kServices, {{"name", "payments"}}, 409) ==
      json::parse(
          R"j({"code":5,"name":"unique constraint violation","message":"UNIQUE violation detected on '{name=\"payments\"}'","fields":{"name":"payments"}})j"));

  // PATCH: given fields change, null clears, the rest stays.
  json patched = f.callJson("PATCH", std::string(kServices) + "/payments",
                            {{"display_name", nullptr},
                             {"owner_team", "payments-core"},
                             {"links", {{"runbook", nullptr}}}},
                            200);
  CHECK(patched["display_name"].is_null());
  CHECK(patched["owner_team"] == "payments-core");
  CHECK(patched["description"] == created["description"]);
  CHECK(patched["links"] ==
        json{{"repository", "https://git.example.com/payments"}, {"runbook", nullptr}});
  f.callJson("POST", kServices, {{"name", "ledger"}}, 201);
  CHECK(f.callJson("PATCH", std::string(kServices) + "/ledger", {{"name", "payments"}},
                   409)["message"] == "UNIQUE violation detected on '{name=\"payments\"}'");
  CHECK(f.callJson("PATCH", std::string(kServices) + "/" + id, {{"name", "payments-v2"}},
                   200)["name"] == "payments-v2");
  f.callJson("GET", std::string(kServices) + "/payments", json(), 404);

  f.callJson("DELETE", std::string(kServices) + "/payments-v2", json(), 204);
  CHECK(f.callJson("GET", std::string(kServices) + "/" + id, json(), 404) ==
        json{{"message", "Not found"}});
  f.callJson("DELETE", std::string(kServices) + "/" + id, json(), 204);  // as Kong: idempotent
  f.callJson("PATCH", std::string(kServices) + "/nope", {{"owner_team", "x"}}, 404);
  // Root only: the catalog spans control planes.
  f.callJson("GET", "/control-planes/default/service-catalog/services", json(), 404);
}

TEST_CASE("catalog: bad service input names the field") {
  Fixture f;
  const auto violation = [&](const json& body) {
    return f.callJson("POST", kServices, body, 400)["message"].get<std::string>();
  };
  CHECK(violation(json::object()) == "schema violation (name: required field missing)");
  CHECK(violation({{"name", "a\x01z"}}) ==
        "schema violation (name: must not contain control characters)");
  CHECK(violation({{"name", "ok"}, {"description", "line\x1b[31m"}}) ==
        "schema violation (description: must not contain control characters)");
  CHECK(violation({{"name", "ok"}, {"display_name", "c1 \xc2\x85 control"}}) ==
        "schema violation (display_name: must not contain control characters)");
  CHECK(violation({{"name", "11111111-2222-4333-8444-555555555555"}}) ==
        "schema violation (name: must not be a UUID (the path takes a service's id or name))");
  CHECK(violation({{"name", std::string(256, 'n')}}) ==
        "schema violation (name: length must be between 1 and 255 characters)");
  CHECK(violation({{"name", "ok"}, {"links", {{"repository", "javascript:alert(1)"}}}}) ==
        "schema violation (links.repository: must be an http or https URL of at most 2048 "
        "characters)");
  CHECK(
      violation({{"name", "ok"}, {"labels", {{"a:b", "c"}}}}).find("schema violation (labels: ") ==
      0);
  CHECK(violation({{"name", "ok"}, {"labels", {{"k", 1}}}}).find("schema violation (labels: ") ==
        0);
  CHECK(violation({{"name", "ok"}, {"colour", "red"}}) ==
        "schema violation (colour: unknown field)");
  CHECK(violation({{"name", 3}, {"owner_team", ""}}) ==
        "2 schema violations (name: expected a string; owner_team: length must be between 1 "
        "and 255 characters)");
  auto r = f.call("POST", kServices, "[1]");
  CHECK(r.status == 400);
  CHECK(json::parse(r.body)["message"] == "the request body must be a JSON object");
  CHECK(f.call("POST", kServices, "{").status == 400);
  // NUL is refused by the body reader, with the field.
  CHECK(f.call("POST", kServices, R"({"name":"a\u0000b"})").status == 400);

  // Markup is stored as given (rendering is the reader's job); a multi-line description is
  // fine.
  const std::string xss = "<script>alert('x')</script>";
  json s = f.callJson("POST", kServices,
                      {{"name", xss}, {"description", "<img src=x onerror=alert(1)>\n\tok"}}, 201);
  CHECK(s["name"] == xss);
  CHECK(f.callJson("GET", std::string(kServices) + "/%3Cscript%3Ealert('x')%3C%2Fscript%3E", json(),
                   200)["id"] == s["id"]);
}

TEST_CASE("catalog: lists are paged as Konnect's") {
  Fixture f;
  for (int i = 0; i < 25; ++i) {
    char name[16];
    std::snprintf(name, sizeof(name), "svc-%02d", i);
    f.callJson("POST", kServices, {{"name", name}}, 201);
  }
  json page =
      f.callJson("GET", std::string(kServices) + "?page[size]=10&page[number]=3", json(), 200);
  CHECK(page["meta"] == json{{"page", {{"number", 3}, {"size", 10}, {"total", 25}}}});
  REQUIRE(page["data"].size() == 5);
  CHECK(page["data"][0]["name"] == "svc-20");
  json past =
      f.callJson("GET", std::string(kServices) + "?page[size]=10&page[number]=4", json(), 200);
  CHECK(past["data"].empty());
  CHECK(past["meta"]["page"]["total"] == 25);
  CHECK(f.callJson("GET", std::string(kServices), json(), 200)["meta"]["page"] ==
        json{{"number", 1}, {"size", 100}, {"total", 25}});
  CHECK(f.callJson("GET", std::string(kServices) + "?page[size]=0", json(), 400)["message"] ==
        "schema violation (page[size]: must be an integer between 1 and 1000)");
  CHECK(f.callJson("GET", std::string(kServices) + "?page[number]=x", json(), 400)["fields"] ==
        json{{"page[number]", "must be an integer between 1 and 1073741824"}});
}

TEST_CASE("catalog: search ranks names over descriptions over specs, and filters") {
  Fixture f;
  f.callJson("POST", kServices,
             {{"name", "ledger"}, {"owner_team", "finance"}, {"labels", {{"tier", "2"}}}}, 201);
  f.callJson("POST", std::string(kServices) + "/ledger/versions",
             {{"version", "2.0.0"}, {"spec", kSpec}}, 201);
  f.callJson("POST", kServices,
             {{"name", "billing"},
              {"description", "Sends invoices once payments settle"},
              {"owner_team", "finance"},
              {"labels", {{"tier", "1"}}}},
             201);
  f.callJson("POST", kServices,
             {{"name", "payments-gateway"},
              {"display_name", "Payments"},
              {"owner_team", "money"},
              {"labels", {{"tier", "1"}, {"pci", "yes"}}}},
             201);
  f.callJson("POST", kServices, {{"name", "search"}, {"description", "Nothing to do with it"}},
             201);

  const std::string q = std::string(kServices) + "?q=";
  // "payment" stems to what "payments" and "Payment" (camelCase split) index.
  CHECK(f.names(q + "payment") ==
        std::vector<std::string>{"payments-gateway", "billing", "ledger"});
  CHECK(f.names(q + "refund") == std::vector<std::string>{"ledger"});            // refundPayment
  CHECK(f.names(q + "refunds") == std::vector<std::string>{"ledger"});           // the path
  CHECK(f.names(q + "money-movement") == std::vector<std::string>{"ledger"});    // a tag
  CHECK(f.names(q + "settled%20charge") == std::vector<std::string>{"ledger"});  // summary
  // websearch syntax (PostgreSQL's ts_rank weighs an AND with a negated word its own way:
  // only the matches are checked here).
  std::vector<std::string> without_ledger = f.names(q + "payments%20-ledger");
  std::sort(without_ledger.begin(), without_ledger.end());
  CHECK(without_ledger == std::vector<std::string>{"billing", "payments-gateway"});
  CHECK(f.names(q + "%22sends%20invoices%22") == std::vector<std::string>{"billing"});
  CHECK(f.names(q + "nonexistent").empty());
  CHECK(f.names(q + "the").empty());  // only a stop word: nothing to look for
  json counted = f.callJson("GET", q + "payment&page[size]=1", json(), 200);
  CHECK(counted["meta"]["page"]["total"] == 3);

  // Filters, alone and with text.
  CHECK(f.names(std::string(kServices) + "?owner=finance") ==
        std::vector<std::string>{"billing", "ledger"});
  CHECK(f.names(std::string(kServices) + "?label=tier:1") ==
        std::vector<std::string>{"billing", "payments-gateway"});
  CHECK(f.names(std::string(kServices) + "?label=tier:1,pci") ==
        std::vector<std::string>{"payments-gateway"});
  CHECK(f.names(q + "payment&owner=finance") == std::vector<std::string>{"billing", "ledger"});
  CHECK(f.names(q + "payment&label=tier:2") == std::vector<std::string>{"ledger"});
  CHECK(f.callJson("GET", std::string(kServices) + "?label=:x", json(), 400)["message"] ==
        "schema violation (label: expected key:value or key, comma-separated)");
  CHECK(f.callJson("GET", q + std::string(1001, 'a'), json(), 400)["message"] ==
        "schema violation (q: must be at most 1000 characters)");

  // A changed description is searched at once; so is a removed version's spec, no longer.
  f.callJson("PATCH", std::string(kServices) + "/search", {{"description", "refund desk"}}, 200);
  CHECK(f.names(q + "refund") == std::vector<std::string>{"search", "ledger"});
  f.callJson("DELETE", std::string(kServices) + "/ledger/versions/2.0.0", json(), 204);
  CHECK(f.names(q + "refund") == std::vector<std::string>{"search"});
}

TEST_CASE("catalog: versions hold OpenAPI documents and gateway service bindings") {
  Fixture f;
  GroupRecord eu;
  eu.name = "eu";
  const std::string eu_id = f.store->createGroup(eu).value().id;
  const std::string default_id = f.store->getGroup("default").value().id;
  json orders_eu = f.callJson("POST", "/control-planes/eu/services",
                              {{"name", "orders"}, {"url", "http://orders.eu.test"}}, 201);
  json orders =
      f.callJson("POST", "/services", {{"name", "orders"}, {"url", "http://orders.test"}}, 201);
  f.callJson("POST", kServices, {{"name", "orders"}}, 201);
  const std::string versions = std::string(kServices) + "/orders/versions";

  json v1 = f.callJson("POST", versions,
                       {{"version", "1.0.0"},
                        {"state", "published"},
                        {"spec", kSpec},
                        {"gateway_services",
                         {{{"control_plane_id", "eu"}, {"service_id", "orders"}},
                          {{"control_plane_id", default_id}, {"service_id", orders["id"]}}}}},
                       201);
  CHECK(v1["state"] == "published");
  CHECK(v1["spec_format"] == "json");
  CHECK(v1["spec_size"] == kSpec.dump().size());
  CHECK(v1["gateway_services"] == json::array({{{"control_plane_id", default_id},
                                                {"control_plane_name", "default"},
                                                {"service_id", orders["id"]}},
                                               {{"control_plane_id", eu_id},
                                                {"control_plane_name", "eu"},
                                                {"service_id", orders_eu["id"]}}}));
  CHECK(f.callJson("GET", versions + "/1.0.0", json(), 200) == v1);
  CHECK(f.callJson("GET", versions + "/" + v1["id"].get<std::string>(), json(), 200) == v1);
  auto doc = f.call("GET", versions + "/1.0.0/spec");
  CHECK(doc.status == 200);
  CHECK(doc.headers["content-type"].find("application/json") == 0);
  CHECK(json::parse(doc.body) == kSpec);

  // A YAML document is kept as given and served as YAML; the default state is unpublished.
  const std::string yaml = "openapi: 3.1.0\ninfo:\n  title: Orders\n  version: '2'\npaths: {}\n";
  json v2 = f.callJson("POST", versions, {{"version", "2.0.0-beta"}, {"spec", yaml}}, 201);
  CHECK(v2["state"] == "unpublished");
  CHECK(v2["spec_format"] == "yaml");
  doc = f.call("GET", versions + "/2.0.0-beta/spec");
  CHECK(doc.headers["content-type"].find("application/yaml") == 0);
  CHECK(doc.body == yaml);

  json list = f.callJson("GET", versions, json(), 200);
  CHECK(list["meta"]["page"]["total"] == 2);
  CHECK(list["data"][0]["version"] == "2.0.0-beta");  // newest first
  CHECK(list["data"][1]["gateway_services"].size() == 2);
  CHECK(list["data"][0].count("spec") == 0);  // documents only through .../spec

  // Duplicates, bad bindings, bad documents.
  CHECK(f.callJson("POST", versions, {{"version", "1.0.0"}}, 409)["message"] ==
        "UNIQUE violation detected on '{version=\"1.0.0\"}'");
  CHECK(
      f.callJson("POST", versions,
                 {{"version", "3"},
                  {"gateway_services", {{{"control_plane_id", "mars"}, {"service_id", "x"}}}}},
                 400) ==
      json::parse(
          R"j({"code":2,"name":"schema violation","message":"schema violation (gateway_services.1.control_plane_id: control plane 'mars' not found)","fields":{"gateway_services":[{"control_plane_id":"control plane 'mars' not found"}]}})j"));
  CHECK(f.callJson("POST", versions,
                   {{"version", "3"},
                    {"gateway_services",
                     {{{"control_plane_id", "eu"}, {"service_id", "orders"}},
                      {{"control_plane_id", "eu"}, {"service_id", "billing"}}}}},
                   400)["message"] ==
        "schema violation (gateway_services.2.service_id: service 'billing' not found in control "
        "plane 'eu')");
  CHECK(f.callJson("POST", versions, {{"version", "3"}, {"gateway_services", {{{"x", 1}}}}},
                   400)["message"] ==
        "3 schema violations (gateway_services.1.control_plane_id: required field missing; "
        "gateway_services.1.service_id: required field missing; gateway_services.1.x: unknown "
        "field)");
  json bad = kSpec;
  bad["paths"]["/refunds/{refundId}"]["post"]["parameters"][0]["in"] = "body";
  bad["info"].erase("title");
  CHECK(f.callJson("POST", versions, {{"version", "3"}, {"spec", bad}}, 400)["message"] ==
        "schema violation (spec: invalid OpenAPI document: at /info/title: required field "
        "missing; at /paths/~1refunds~1{refundId}/post/parameters/0/in: must be one of query, "
        "header, path, cookie)");
  CHECK(f.callJson("POST", versions,
                   {{"version", "3"}, {"spec", "openapi: 3.0.0\ninfo: {title: t}\npaths: []\n"}},
                   400)["message"] ==
        "schema violation (spec: invalid OpenAPI document: at /info/version: required field "
        "missing (line 2); at /paths: must be an object (line 3))");
  CHECK(f.callJson("POST", versions, {{"version", "3"}, {"spec", 5}}, 400)["message"] ==
        "schema violation (spec: invalid OpenAPI document: at /: must be an OpenAPI document: a "
        "JSON object, or its JSON or YAML text)");
  CHECK(f.callJson("POST", versions, {{"version", "3"}, {"state", "live"}}, 400)["message"] ==
        "schema violation (state: expected one of: published, deprecated, unpublished)");
  CHECK(f.callJson("POST", versions, {{"version", "bad\nversion"}}, 400)["message"] ==
        "schema violation (version: must not contain control characters)");
  f.callJson("POST", std::string(kServices) + "/nope/versions", {{"version", "1"}}, 404);
  // Hostile documents: a billion-laughs spec stops at the alias ratio (it had taken 2 s and
  // ~350 MB before the 4,000,000-value cap), past-limit nesting and truncated text are named.
  std::string bomb = "openapi: 3.0.0\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i <= 9; ++i) {
    bomb += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
    for (int k = 0; k < 10; ++k) {
      bomb += (k ? ", *a" : "*a") + std::to_string(i - 1);
    }
    bomb += "]\n";
  }
  CHECK(f.callJson("POST", versions, {{"version", "3"}, {"spec", bomb}}, 400)["message"]
            .get<std::string>()
            .find("aliases expand the document's") != std::string::npos);
  CHECK(f.callJson("POST", versions,
                   {{"version", "3"}, {"spec", "x: " + std::string(100, '[')}}, 400)["message"]
            .get<std::string>()
            .find("nesting deeper than 64 levels") != std::string::npos);
  CHECK(f.callJson("POST", versions, {{"version", "3"}, {"spec", "openapi: 3.0.0\npaths: {"}},
                   400)["message"]
            .get<std::string>()
            .find("not a JSON or YAML document: line") != std::string::npos);

  // 10 MiB is the limit, with a message saying so; the transport lets it reach the endpoint.
  std::string huge = "openapi: 3.0.0\ninfo: {title: t, version: '1'}\npaths: {}\n#";
  huge.resize(catalog::kMaxSpecBytes + 1, 'x');
  auto refused = f.call("POST", versions, json{{"version", "big"}, {"spec", huge}}.dump());
  CHECK(refused.status == 413);
  CHECK(json::parse(refused.body)["message"] ==
        "spec: the OpenAPI document is 10485761 bytes, over the limit of 10485760 bytes (10 "
        "MiB)");
  huge.resize(catalog::kMaxSpecBytes);
  json at_limit = f.callJson("POST", versions, {{"version", "big"}, {"spec", huge}}, 201);
  CHECK(at_limit["spec_size"] == catalog::kMaxSpecBytes);
  CHECK(f.call("POST", "/services", std::string(2 << 20, ' ') + "{}").status == 413);

  // PATCH: state, bindings replaced, the document removed.
  json v1b = f.callJson(
      "PATCH", versions + "/1.0.0",
      {{"state", "deprecated"},
       {"gateway_services", {{{"control_plane_id", "eu"}, {"service_id", orders_eu["id"]}}}}},
      200);
  CHECK(v1b["state"] == "deprecated");
  CHECK(v1b["gateway_services"].size() == 1);
  CHECK(v1b["spec_format"] == "json");
  json v1c = f.callJson("PATCH", versions + "/1.0.0", {{"spec", nullptr}}, 200);
  CHECK(v1c["spec_format"].is_null());
  CHECK(v1c["spec_size"] == 0);
  CHECK(v1c["gateway_services"].size() == 1);
  f.callJson("GET", versions + "/1.0.0/spec", json(), 404);
  CHECK(f.callJson("PATCH", versions + "/1.0.0", {{"version", "2.0.0-beta"}}, 409)["message"] ==
        "UNIQUE violation detected on '{version=\"2.0.0-beta\"}'");
  CHECK(f.callJson("PATCH", versions + "/1.0.0", {{"version", "1.0.1"}}, 200)["version"] ==
        "1.0.1");
  f.callJson("DELETE", versions + "/1.0.1", json(), 204);
  f.callJson("DELETE", versions + "/1.0.1", json(), 204);
  f.callJson("GET", versions + "/1.0.1", json(), 404);
}

TEST_CASE("catalog: declared dependencies") {
  Fixture f;
  for (const char* name : {"checkout", "payments", "ledger"}) {
    f.callJson("POST", kServices, {{"name", name}}, 201);
  }
  const std::string deps = std::string(kServices) + "/checkout/dependencies";
  CHECK(f.callJson("POST", deps, {{"service", "payments"}}, 201)["name"] == "payments");
  f.callJson("POST", deps, {{"service", "ledger"}}, 201);
  f.callJson("POST", std::string(kServices) + "/payments/dependencies", {{"service", "ledger"}},
             201);
  CHECK(f.callJson("POST", deps, {{"service", "payments"}}, 409)["message"] ==
        "UNIQUE violation detected on '{service=\"payments\"}'");
  CHECK(f.callJson("POST", deps, {{"service", "checkout"}}, 400)["message"] ==
        "schema violation (service: a service cannot depend on itself)");
  CHECK(f.callJson("POST", deps, {{"service", "nope"}}, 400)["message"] ==
        "schema violation (service: catalog service 'nope' not found)");
  CHECK(f.callJson("POST", deps, json::object(), 400)["message"] ==
        "schema violation (service: required field missing)");

  CHECK(f.names(deps) == std::vector<std::string>{"ledger", "payments"});
  CHECK(f.names(std::string(kServices) + "/ledger/dependencies?direction=dependents") ==
        std::vector<std::string>{"checkout", "payments"});
  CHECK(f.callJson("GET", deps + "?page[size]=1", json(), 200)["meta"]["page"]["total"] == 2);
  CHECK(f.callJson("GET", deps + "/ledger", json(), 200)["name"] == "ledger");
  f.callJson("GET", std::string(kServices) + "/ledger/dependencies/checkout", json(), 404);
  f.callJson("DELETE", deps + "/ledger", json(), 204);
  f.callJson("DELETE", deps + "/ledger", json(), 204);
  CHECK(f.names(deps) == std::vector<std::string>{"payments"});
}

TEST_CASE("catalog: services name the consumers they call as; bad ones name the field") {
  Fixture f;
  GroupRecord eu;
  eu.name = "eu";
  const std::string eu_id = f.store->createGroup(eu).value().id;
  const std::string default_id = f.store->getGroup("default").value().id;
  json bot = f.callJson("POST", "/consumers", {{"username", "checkout-bot"}}, 201);
  json bot_eu =
      f.callJson("POST", "/control-planes/eu/consumers", {{"username", "checkout-bot"}}, 201);
  json other = f.callJson("POST", "/consumers", {{"username", "other-bot"}}, 201);
  json created = f.callJson(
      "POST", kServices,
      {{"name", "checkout"},
       {"calls_as",
        {{{"control_plane_id", "eu"}, {"consumer_id", "checkout-bot"}},
         {{"control_plane_id", default_id}, {"consumer_id", bot["id"]}}}}},
      201);
  const json both = json::array({{{"control_plane_id", default_id},
                                  {"control_plane_name", "default"},
                                  {"consumer_id", bot["id"]}},
                                 {{"control_plane_id", eu_id},
                                  {"control_plane_name", "eu"},
                                  {"consumer_id", bot_eu["id"]}}});
  CHECK(created["calls_as"] == both);
  CHECK(f.callJson("GET", std::string(kServices) + "/checkout", json(), 200)["calls_as"] == both);
  // A PATCH without calls_as keeps them; one with them replaces them.
  CHECK(f.callJson("PATCH", std::string(kServices) + "/checkout", {{"owner_team", "shop"}},
                   200)["calls_as"] == both);
  // A consumer identifies one caller: another service cannot call as it.
  json conflict = f.callJson(
      "POST", kServices,
      {{"name", "payments"},
       {"calls_as", {{{"control_plane_id", "default"}, {"consumer_id", "checkout-bot"}}}}},
      409);
  CHECK(conflict["name"] == "unique constraint violation");
  CHECK(conflict["fields"]["calls_as"]["consumer_id"] == bot["id"]);
  f.callJson("GET", std::string(kServices) + "/payments", json(), 404);  // nothing half made
  f.callJson("POST", kServices, {{"name", "payments"}}, 201);
  f.callJson("PATCH", std::string(kServices) + "/payments",
             {{"calls_as", {{{"control_plane_id", "eu"}, {"consumer_id", bot_eu["id"]}}}}}, 409);
  CHECK(f.callJson("GET", std::string(kServices) + "/payments", json(), 200)["calls_as"] ==
        json::array());
  // Bad references and shapes name the field.
  CHECK(f.callJson("PATCH", std::string(kServices) + "/payments",
                   {{"calls_as", {{{"control_plane_id", "default"}, {"consumer_id", "nope"}},
                                  {{"control_plane_id", "mars"}, {"consumer_id", "x"}},
                                  {{"consumer_id", "other-bot"}, {"extra", 1}},
                                  "text"}}},
                   400)["fields"] ==
        json{{"calls_as",
              {{{"consumer_id", "consumer 'nope' not found in control plane 'default'"}},
               {{"control_plane_id", "control plane 'mars' not found"}},
               {{"control_plane_id", "required field missing"}, {"extra", "unknown field"}},
               "expected an object"}}});
  CHECK(f.callJson("POST", kServices, {{"name", "x"}, {"calls_as", "checkout-bot"}},
                   400)["fields"] ==
        json{{"calls_as", "expected an array of at most 100 objects"}});
  // Replaced, then cleared with null; a deleted service or control plane takes its callers.
  CHECK(f.callJson("PATCH", std::string(kServices) + "/checkout",
                   {{"calls_as", {{{"control_plane_id", "default"}, {"consumer_id", "other-bot"}}}}},
                   200)["calls_as"][0]["consumer_id"] == other["id"]);
  CHECK(f.callJson("PATCH", std::string(kServices) + "/payments",
                   {{"calls_as", {{{"control_plane_id", "eu"}, {"consumer_id", bot_eu["id"]}}}}},
                   200)["calls_as"][0]["control_plane_name"] == "eu");
  CHECK(f.callJson("PATCH", std::string(kServices) + "/checkout", {{"calls_as", nullptr}},
                   200)["calls_as"] == json::array());
  f.callJson("DELETE", "/control-planes/eu", json(), 204);
  CHECK(f.callJson("GET", std::string(kServices) + "/payments", json(), 200)["calls_as"] ==
        json::array());
  f.callJson("PATCH", std::string(kServices) + "/payments",
             {{"calls_as", {{{"control_plane_id", "default"}, {"consumer_id", "checkout-bot"}}}}},
             200);
  f.callJson("DELETE", std::string(kServices) + "/payments", json(), 204);
  CHECK(f.pg.psql("SELECT count(*) FROM catalog_service_callers") == "0\n");
}

TEST_CASE("catalog: observed dependencies come from the callers' consumers in the vitals") {
  Fixture f;
  GroupRecord eu;
  eu.name = "eu";
  REQUIRE(f.store->createGroup(eu).ok());
  const auto id = [](const json& j) { return j["id"].get<std::string>(); };
  json pay = f.callJson("POST", "/services", {{"name", "pay-gw"}, {"url", "http://p.test"}}, 201);
  json ledger =
      f.callJson("POST", "/services", {{"name", "ledger-gw"}, {"url", "http://l.test"}}, 201);
  json pay_eu = f.callJson("POST", "/control-planes/eu/services",
                           {{"name", "pay-gw"}, {"url", "http://p.eu.test"}}, 201);
  json checkout_bot = f.callJson("POST", "/consumers", {{"username", "checkout-bot"}}, 201);
  json checkout_bot_eu =
      f.callJson("POST", "/control-planes/eu/consumers", {{"username", "checkout-bot"}}, 201);
  json payments_bot = f.callJson("POST", "/consumers", {{"username", "payments-bot"}}, 201);
  json stranger = f.callJson("POST", "/consumers", {{"username", "stranger"}}, 201);
  f.callJson("POST", kServices,
             {{"name", "checkout"},
              {"calls_as",
               {{{"control_plane_id", "default"}, {"consumer_id", "checkout-bot"}},
                {{"control_plane_id", "eu"}, {"consumer_id", "checkout-bot"}}}}},
             201);
  f.callJson("POST", kServices,
             {{"name", "payments"},
              {"calls_as", {{{"control_plane_id", "default"}, {"consumer_id", "payments-bot"}}}}},
             201);
  f.callJson("POST", kServices, {{"name", "ledger"}}, 201);
  f.callJson("POST", kServices, {{"name", "idle"}}, 201);
  // payments runs as pay-gw in both control planes; two of its versions share pay-gw (its
  // traffic counts once).
  for (const char* v : {"1", "2"}) {
    f.callJson("POST", std::string(kServices) + "/payments/versions",
               {{"version", v},
                {"gateway_services",
                 {{{"control_plane_id", "default"}, {"service_id", "pay-gw"}},
                  {{"control_plane_id", "eu"}, {"service_id", "pay-gw"}}}}},
               201);
  }
  f.callJson("POST", std::string(kServices) + "/ledger/versions",
             {{"version", "1"},
              {"gateway_services", {{{"control_plane_id", "default"}, {"service_id", "ledger-gw"}}}}},
             201);
  f.callJson("POST", std::string(kServices) + "/checkout/dependencies", {{"service", "ledger"}},
             201);

  const auto row = [](int granularity, const std::string& group, int64_t ts,
                      const std::string& service, const std::string& consumer, int status,
                      int requests) {
    return absl::StrCat("(", granularity, ", '", group, "', ", ts, ", '", service, "', '', '",
                        consumer, "', ", status, ", ", requests, ", 0, 0, 1, 0, 0, ", requests,
                        ")");
  };
  const std::string rows[] = {
      row(60, "default", 600, id(pay), id(checkout_bot), 200, 100),
      row(60, "default", 660, id(pay), id(checkout_bot), 503, 5),
      row(60, "eu", 600, id(pay_eu), id(checkout_bot_eu), 200, 7),
      row(60, "default", 600, id(ledger), id(payments_bot), 200, 40),
      row(60, "default", 600, id(pay), id(payments_bot), 200, 9),    // itself: not a dependency
      row(60, "default", 600, id(pay), id(stranger), 200, 1000),     // no catalog service
      row(60, "default", 600, id(ledger), "", 401, 50),              // anonymous
      row(60, "default", 600, id(pay), "*", 200, 30),                // folded "other" consumers
      row(60, "eu", 600, id(pay_eu), id(checkout_bot), 200, 11),     // default's id in eu: no
      row(60, "default", 7200, id(pay), id(checkout_bot), 200, 500),  // outside the window
      row(10, "default", 600, id(pay), id(checkout_bot), 200, 3),    // 10 s rows
  };
  for (const std::string& r : rows) {
    f.pg.psql(
        "INSERT INTO vitals_requests (granularity, group_name, ts, service, route, consumer, "
        "status, requests, bytes_in, bytes_out, max_total, max_upstream, max_proxy, t2) VALUES " +
        r);
  }
  const std::string window = "start=0&end=3600";
  const std::string deps = std::string(kServices) + "/checkout/dependencies";
  json list = f.callJson("GET", deps + "?" + window, json(), 200);
  CHECK(list["meta"]["window"] == json{{"start", 0}, {"end", 3600}, {"granularity", "1m"}});
  CHECK(list["meta"]["page"]["total"] == 2);
  REQUIRE(list["data"].size() == 2);
  CHECK(list["data"][0]["name"] == "ledger");
  CHECK(list["data"][0]["declared"] == true);
  CHECK(list["data"][0]["observed"].is_null());
  CHECK(list["data"][1]["name"] == "payments");
  CHECK(list["data"][1]["declared"] == false);
  CHECK(list["data"][1]["observed"] ==
        json{{"requests", 112}, {"errors_5xx", 5}, {"last_seen", 660}});
  CHECK(f.names(deps + "?source=observed&" + window) == std::vector<std::string>{"payments"});
  CHECK(f.names(deps + "?source=declared&" + window) == std::vector<std::string>{"ledger"});
  CHECK(f.callJson("GET", deps + "?granularity=10s&source=observed&" + window, json(),
                   200)["data"][0]["observed"]["requests"] == 3);
  // Out of the default window (the last hour), only the declared one is left.
  CHECK(f.names(deps) == std::vector<std::string>{"ledger"});
  // One dependency: observed in the window, or 404.
  CHECK(f.callJson("GET", deps + "/payments?" + window, json(), 200)["observed"]["requests"] ==
        112);
  f.callJson("GET", deps + "/payments", json(), 404);
  f.callJson("GET", deps + "/idle?" + window, json(), 404);
  // The other direction.
  json on_ledger = f.callJson(
      "GET", std::string(kServices) + "/ledger/dependencies?direction=dependents&" + window, json(),
      200);
  REQUIRE(on_ledger["data"].size() == 2);
  CHECK(on_ledger["data"][0]["name"] == "checkout");
  CHECK(on_ledger["data"][0]["observed"].is_null());
  CHECK(on_ledger["data"][1]["name"] == "payments");
  CHECK(on_ledger["data"][1]["observed"]["requests"] == 40);
  CHECK(f.names(std::string(kServices) + "/payments/dependencies?direction=dependents&" +
                window) == std::vector<std::string>{"checkout"});
  CHECK(f.names(std::string(kServices) + "/payments/dependencies?" + window) ==
        std::vector<std::string>{"ledger"});
  // Declaring an observed one: both facts on one item. Deleting the declaration leaves the
  // observation.
  f.callJson("POST", deps, {{"service", "payments"}}, 201);
  json both = f.callJson("GET", deps + "/payments?" + window, json(), 200);
  CHECK(both["declared"] == true);
  CHECK(both["observed"]["requests"] == 112);
  f.callJson("DELETE", deps + "/payments", json(), 204);
  CHECK(f.callJson("GET", deps + "/payments?" + window, json(), 200)["declared"] == false);
  // Paging runs over both kinds.
  json first = f.callJson("GET", deps + "?page[size]=1&" + window, json(), 200);
  CHECK(first["data"][0]["name"] == "ledger");
  CHECK(first["meta"]["page"]["total"] == 2);
  CHECK(f.names(deps + "?page[size]=1&page[number]=2&" + window) ==
        std::vector<std::string>{"payments"});
  CHECK(f.callJson("GET", deps + "?page[size]=1&page[number]=3&" + window, json(),
                   200)["meta"]["page"]["total"] == 2);
  // Bad parameters name the field.
  CHECK(f.callJson("GET", deps + "?source=guessed", json(), 400)["message"] ==
        "schema violation (source: expected one of: all, declared, observed)");
  CHECK(f.callJson("GET", deps + "?start=x", json(), 400)["message"] ==
        "schema violation (start: expected epoch seconds)");
  CHECK(f.callJson("GET", deps + "?direction=up", json(), 400)["message"] ==
        "schema violation (direction: expected one of: dependencies, dependents)");
}

TEST_CASE("catalog: deleting a service takes its versions, bindings and dependencies") {
  Fixture f;
  GroupRecord eu;
  eu.name = "eu";
  REQUIRE(f.store->createGroup(eu).ok());
  f.callJson("POST", "/control-planes/eu/services", {{"name", "orders"}, {"url", "http://o.test"}},
             201);
  for (const char* name : {"a", "b", "c"}) {
    f.callJson("POST", kServices, {{"name", name}}, 201);
  }
  f.callJson("POST", std::string(kServices) + "/b/versions",
             {{"version", "1"},
              {"spec", kSpec},
              {"gateway_services", {{{"control_plane_id", "eu"}, {"service_id", "orders"}}}}},
             201);
  f.callJson("POST", std::string(kServices) + "/b/versions", {{"version", "2"}}, 201);
  f.callJson("POST", std::string(kServices) + "/a/dependencies", {{"service", "b"}}, 201);
  f.callJson("POST", std::string(kServices) + "/b/dependencies", {{"service", "c"}}, 201);
  CHECK(f.pg.psql("SELECT count(*) FROM catalog_versions") == "2\n");
  CHECK(f.pg.psql("SELECT count(*) FROM catalog_version_bindings") == "1\n");

  f.callJson("DELETE", std::string(kServices) + "/b", json(), 204);
  CHECK(f.pg.psql("SELECT count(*) FROM catalog_versions") == "0\n");
  CHECK(f.pg.psql("SELECT count(*) FROM catalog_version_bindings") == "0\n");
  CHECK(f.pg.psql("SELECT count(*) FROM catalog_dependencies") == "0\n");
  CHECK(f.names(kServices) == std::vector<std::string>{"a", "c"});

  // A deleted control plane takes its bindings; the version stays.
  f.callJson("POST", std::string(kServices) + "/c/versions",
             {{"version", "1"},
              {"gateway_services", {{{"control_plane_id", "eu"}, {"service_id", "orders"}}}}},
             201);
  f.callJson("DELETE", "/control-planes/eu", json(), 204);
  CHECK(f.callJson("GET", std::string(kServices) + "/c/versions/1", json(),
                   200)["gateway_services"] == json::array());
}

TEST_CASE("catalog: usage sums the bound gateway services' vitals") {
  Fixture f;
  json a = f.callJson("POST", "/services", {{"name", "a"}, {"url", "http://a.test"}}, 201);
  json b = f.callJson("POST", "/services", {{"name", "b"}, {"url", "http://b.test"}}, 201);
  json other = f.callJson("POST", "/services", {{"name", "other"}, {"url", "http://o.test"}}, 201);
  f.callJson("POST", kServices, {{"name", "shop"}}, 201);
  const std::string versions = std::string(kServices) + "/shop/versions";
  f.callJson("POST", versions,
             {{"version", "1"},
              {"gateway_services", {{{"control_plane_id", "default"}, {"service_id", "a"}}}}},
             201);
  // Version 2 runs as both: a counts once in the service's total.
  json v2 = f.callJson("POST", versions,
                       {{"version", "2"},
                        {"gateway_services",
                         {{{"control_plane_id", "default"}, {"service_id", "a"}},
                          {{"control_plane_id", "default"}, {"service_id", "b"}}}}},
                       201);
  // a: 90 fast 200s (<= 10 ms) and 10 slow 503s (<= 100 ms, the slowest 80 ms);
  // b: 100 200s of <= 2 ms; other (not in the catalog): 1000 errors. At 1 min, t = 600..660.
  const auto row = [](const json& svc, int64_t ts, int status, int requests, int max_ms) {
    return "(60, 'default', " + std::to_string(ts) + ", '" + svc["id"].get<std::string>() +
           "', '', " + std::to_string(status) + ", " + std::to_string(requests) + ", 0, 0, " +
           std::to_string(max_ms) + ", 0, 0, " + std::to_string(requests) + ")";
  };
  for (auto [svc, ts, status, requests, bin, max_ms] :
       {std::tuple<json, int64_t, int, int, int, int>{a, 600, 200, 90, 3, 9},
        {a, 660, 503, 10, 6, 80},
        {b, 600, 200, 100, 1, 2},
        {other, 600, 500, 1000, 6, 90},
        {a, 7200, 200, 5000, 3, 9}}) {  // outside the window
    f.pg.psql(
        "INSERT INTO vitals_routes (granularity, group_name, ts, service, route, status, "
        "requests, bytes_in, bytes_out, max_total, max_upstream, max_proxy, t" +
        std::to_string(bin) + ") VALUES " + row(svc, ts, status, requests, max_ms));
  }
  json u = f.callJson("GET", std::string(kServices) + "/shop/usage?start=0&end=3600", json(), 200);
  CHECK(u["meta"] == json{{"start", 0}, {"end", 3600}, {"granularity", "1m"}});
  CHECK(u["data"]["requests"] == 200);
  CHECK(u["data"]["errors_5xx"] == 10);
  CHECK(u["data"]["error_rate"] == 0.05);
  CHECK(u["data"]["latency_ms"]["p99"] == 80);
  CHECK(u["data"]["latency_ms"]["p50"] == 2);
  REQUIRE(u["data"]["versions"].size() == 2);
  json by_id;
  for (const json& v : u["data"]["versions"]) {
    by_id[v["id"].get<std::string>()] = v;
  }
  const json& usage2 = by_id[v2["id"].get<std::string>()];
  CHECK(usage2["requests"] == 200);
  CHECK(usage2["gateway_services"].size() == 2);

  json one = f.callJson("GET", versions + "/1/usage?start=0&end=3600", json(), 200);
  CHECK(one["data"]["requests"] == 100);
  CHECK(one["data"]["error_rate"] == 0.1);
  CHECK(one["data"]["latency_ms"]["p99"] == 80);
  CHECK(one["data"]["gateway_services"] ==
        json::array({{{"control_plane_name", "default"},
                      {"service_id", a["id"]},
                      {"requests", 100},
                      {"errors_5xx", 10},
                      {"error_rate", 0.1},
                      {"latency_ms", {{"p50", 10}, {"p95", 80}, {"p99", 80}, {"max", 80}}}}}));
  CHECK(f.callJson("GET", std::string(kServices) + "/shop/usage?start=0&end=3600&granularity=1h",
                   json(), 200)["data"]["requests"] == 0);
  CHECK(f.callJson("GET", std::string(kServices) + "/shop/usage?start=10&end=5", json(),
                   400)["message"] == "schema violation (end: must be after start)");
  CHECK(f.callJson("GET", std::string(kServices) + "/shop/usage?granularity=5m", json(),
                   400)["message"] ==
        "schema violation (granularity: expected one of: 10s, 1m, 1h)");
  f.callJson("GET", std::string(kServices) + "/nope/usage", json(), 404);
}

TEST_CASE("catalog: a read-only token reads but does not write") {
  AdminServerOptions options;
  options.require_auth = true;
  Fixture f(options);
  const NewAdminToken admin = makeAdminToken("ops", kRoleAdmin);
  const NewAdminToken reader = makeAdminToken("viewer", kRoleReadOnly);
  REQUIRE(f.store->createAdmin(admin.record).ok());
  REQUIRE(f.store->createAdmin(reader.record).ok());
  const std::string body = json{{"name", "payments"}}.dump();
  CHECK(f.call("POST", kServices, body).status == 401);
  auto denied = f.call("POST", kServices, body, reader.token);
  CHECK(denied.status == 403);
  CHECK(json::parse(denied.body)["message"] ==
        "viewer, you do not have permissions to create this resource");
  CHECK(f.call("POST", kServices, body, admin.token).status == 201);
  CHECK(f.call("GET", std::string(kServices) + "?q=payments", "", reader.token).status == 200);
  CHECK(f.call("PATCH", std::string(kServices) + "/payments", R"({"owner_team":"x"})", reader.token)
            .status == 403);
  CHECK(f.call("DELETE", std::string(kServices) + "/payments", "", reader.token).status == 403);
  CHECK(f.call("POST", std::string(kServices) + "/payments/versions", R"({"version":"1"})",
               reader.token)
            .status == 403);
  CHECK(f.call("GET", std::string(kServices) + "/payments", "", reader.token).status == 200);
}

}  // namespace
}  // namespace portico::cp
