// EndpointTable: patterns with {params}, first match wins, root-only entries, the method set
// (405 from the table, or the handler's own answer) and the preflight's Allow list.
#include <catch2/catch.hpp>

#include "control_plane/admin_api/endpoint_table.h"

namespace portico::cp::admin {
namespace {

EndpointHandler answers(int status) {
  return [status](const EndpointCall&) { return ApiResponse{status, ""}; };
}

ApiResponse run(const EndpointTable& table, const std::string& method,
                const std::vector<std::string>& segments, bool root = true) {
  std::vector<std::string> params;
  const Endpoint* e = table.find(segments, root, &params);
  if (e == nullptr) {
    return {404, ""};
  }
  const ApiRequest request{method, "/"};
  const std::map<std::string, std::string> query;
  return dispatch(*e, {request, segments, query, params, "default", ""});
}

TEST_CASE("endpoint table: literal and {param} segments, first match wins") {
  EndpointTable table;
  table.add(kGet, "", answers(200));
  table.add(kGet, "plugins/enabled", answers(201));
  table.add(kGet | kPost, "plugins", answers(202));
  table.add(kGet | kDelete, "plugins/{id}", answers(203));
  table.add(kGet, "services/{service}/routes/{route}", answers(204));
  CHECK(table.size() == 5);

  CHECK(run(table, "GET", {}).status == 200);
  CHECK(run(table, "GET", {"plugins", "enabled"}).status == 201);  // before plugins/{id}
  CHECK(run(table, "GET", {"plugins", "p1"}).status == 203);
  CHECK(run(table, "GET", {"plugins", "p1", "x"}).status == 404);  // lengths must agree
  CHECK(run(table, "GET", {"consumers"}).status == 404);

  std::vector<std::string> params;
  const Endpoint* e = table.find({"services", "s1", "routes", "r1"}, true, &params);
  REQUIRE(e != nullptr);
  CHECK(params == std::vector<std::string>{"s1", "r1"});
  CHECK(table.find({"services", "s1", "plugins", "r1"}, true, &params) == nullptr);
  CHECK(params.empty());
}

TEST_CASE("endpoint table: root-only entries are not reachable under a control plane") {
  EndpointTable table;
  table.add(kGet, "metrics", answers(200), Scope::kRootOnly);
  table.add(kGet, "status", answers(201));
  std::vector<std::string> params;
  CHECK(table.find({"metrics"}, true, &params) != nullptr);
  CHECK(table.find({"metrics"}, false, &params) == nullptr);
  CHECK(table.find({"status"}, false, &params) != nullptr);
}

TEST_CASE("endpoint table: methods outside the set get 405 unless the handler checks") {
  EndpointTable table;
  table.add(kGet | kPost, "services", answers(200));
  table.add(kGet, "control-planes", answers(201), Scope::kAnyGroup, MethodCheck::kHandler);
  CHECK(run(table, "POST", {"services"}).status == 200);
  const ApiResponse put = run(table, "PUT", {"services"});
  CHECK(put.status == 405);
  CHECK(put.body == R"({"message":"Method not allowed"})");
  CHECK(run(table, "HEAD", {"services"}).status == 405);
  CHECK(run(table, "PUT", {"control-planes"}).status == 201);  // the handler decides
}

TEST_CASE("endpoint table: method names and Kong's alphabetical Allow list") {
  CHECK(methodBit("GET") == kGet);
  CHECK(methodBit("DELETE") == kDelete);
  CHECK(methodBit("get") == 0);
  CHECK(methodBit("OPTIONS") == 0);
  CHECK(allowHeader(kGet) == "GET, OPTIONS");
  CHECK(allowHeader(kGet | kPost) == "GET, OPTIONS, POST");
  CHECK(allowHeader(kGet | kPut | kPatch | kDelete) == "DELETE, GET, OPTIONS, PATCH, PUT");
}

}  // namespace
}  // namespace portico::cp::admin
