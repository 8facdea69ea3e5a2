// The Dev Portal's admin side on the Admin listener, at the root only (the portal spans
// control planes):
//   /portal/settings                                              GET, PATCH
//   /portal/developers[?status=&page[size]=&page[number]=]        GET
//   /portal/developers/{id}                                       GET, PATCH {"status"}
//   /portal/applications[?developer_id=&page...]                  GET
//   /portal/applications/{id}                                     GET, DELETE
//   /portal/registrations[?status=&application_id=&developer_id=&page...]   GET
//   /portal/registrations/{id}                                    GET, PATCH {"status"}
// Approving a registration provisions its application at the gateway, revoking or rejecting
// takes that back (control_plane/portal/provisioning.h); a developer revoked or rejected
// loses every approved registration. Lists have Konnect's shape; bad input gets Kong's
// schema-violation body naming the field.
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "common/config/typedefs.h"
#include "control_plane/admin_api/admin_util.h"
#include "control_plane/admin_api/endpoints.h"
#include "control_plane/portal/portal_json.h"
#include "control_plane/portal/provisioning.h"

namespace portico::cp::admin {
namespace portal_api {
namespace {

using config::Json;

// The request body as a JSON object holding only `allowed` fields, or Kong's answer.
std::optional<ApiResponse> readPortalObject(const ApiRequest& req,
                                            const std::set<std::string>& allowed, Json* out) {
  Body body = readBody(req);
  if (std::optional<ApiResponse> bad = bodyError(body)) {
    return bad;
  }
  if (!body.value.is_object()) {
    return message(400, "the request body must be a JSON object");
  }
  config::FieldErrors errors;
  for (const auto& [key, value] : body.value.items()) {
    if (allowed.count(key) == 0) {
      errors.push_back({"", "", key, "unknown field"});
    }
  }
  if (!errors.empty()) {
    return schemaViolation(errors);
  }
  *out = std::move(body.value);
  return std::nullopt;
}

// {"status": one of `choices`} from `body`, or the schema violation naming it.
std::optional<ApiResponse> readStatus(const Json& body, const std::set<std::string>& choices,
                                      std::string* status) {
  std::string expected;
  for (const std::string& c : choices) {
    expected += (expected.empty() ? "" : ", ") + c;
  }
  if (!body.contains("status")) {
    return schemaViolation({{"", "", "status", "required field missing"}});
  }
  if (!body["status"].is_string() || choices.count(body["status"].get<std::string>()) == 0) {
    return schemaViolation({{"", "", "status", "expected one of: " + expected}});
  }
  *status = body["status"].get<std::string>();
  return std::nullopt;
}

// A status filter from the query (?status=), or the schema violation naming it.
std::optional<ApiResponse> readStatusFilter(const std::map<std::string, std::string>& query,
                                            std::string* status) {
  auto it = query.find("status");
  if (it == query.end()) {
    return std::nullopt;
  }
  static const std::set<std::string> kStatuses = {kPortalPending, kPortalApproved,
                                                  kPortalRejected, kPortalRevoked};
  if (kStatuses.count(it->second) == 0) {
    return schemaViolation(
        {{"", "", "status", "expected one of: approved, pending, rejected, revoked"}});
  }
  *status = it->second;
  return std::nullopt;
}

// A portal action's failure: FailedPrecondition is the client's to fix (400, the reason).
ApiResponse actionError(const absl::Status& st) {
  if (absl::IsFailedPrecondition(st)) {
    return message(400, std::string(st.message()));
  }
  return statusResponse(st);
}

class PortalAdminApi {
 public:
  explicit PortalAdminApi(PgConfigStore& store) : store_(store) {}

  ApiResponse settings(const EndpointCall& call) {
    portal::PortalActions actions(store_);
    if (call.method() == "GET") {
      auto s = actions.db().settings();
      return s.ok() ? json(200, portal::settingsJson(*s)) : statusResponse(s.status());
    }
    Json body;
    if (auto bad = readPortalObject(
            call.request, {"auto_approve_developers", "auto_approve_registrations", "updated_at"},
            &body)) {
      return *std::move(bad);
    }
    config::FieldErrors errors;
    std::optional<bool> developers, registrations;
    for (const char* field : {"auto_approve_developers", "auto_approve_registrations"}) {
      if (!body.contains(field)) {
        continue;
      }
      if (!body[field].is_boolean()) {
        errors.push_back({"", "", field, "expected a boolean"});
        continue;
      }
      (std::string(field) == "auto_approve_developers" ? developers : registrations) =
          body[field].get<bool>();
    }
    if (!errors.empty()) {
      return schemaViolation(errors);
    }
    auto s = actions.db().updateSettings(developers, registrations);
    return s.ok() ? json(200, portal::settingsJson(*s)) : statusResponse(s.status());
  }

  ApiResponse developers(const EndpointCall& call) {
    PageRequest page;
    if (std::optional<config::FieldError> bad = readPageRequest(call.query, &page)) {
      return schemaViolation({*bad});
    }
    std::string status;
    if (auto bad = readStatusFilter(call.query, &status)) {
      return *std::move(bad);
    }
    portal::PortalActions actions(store_);
    auto list = actions.db().listDevelopers(status, page.size, page.number);
    if (!list.ok()) {
      return statusResponse(list.status());
    }
    Json data = Json::array();
    for (const PortalDeveloper& d : list->items) {
      data.push_back(portal::developerJson(d));
    }
    return json(200, pageBody(std::move(data), page, list->total));
  }

  ApiResponse developer(const EndpointCall& call) {
    portal::PortalActions actions(store_);
    auto d = actions.db().getDeveloper(call.params[0]);
    if (!d.ok()) {
      return statusResponse(d.status());
    }
    if (call.method() == "GET") {
      return json(200, portal::developerJson(*d));
    }
    Json body;
    if (auto bad = readPortalObject(call.request, {"status"}, &body)) {
      return *std::move(bad);
    }
    std::string status;
    if (auto bad = readStatus(body,
                              {kPortalApproved, kPortalPending, kPortalRejected, kPortalRevoked},
                              &status)) {
      return *std::move(bad);
    }
    auto updated = actions.setDeveloperStatus(d->id, status);
    return updated.ok() ? json(200, portal::developerJson(*updated))
                        : actionError(updated.status());
  }

  ApiResponse applications(const EndpointCall& call) {
    PageRequest page;
    if (std::optional<config::FieldError> bad = readPageRequest(call.query, &page)) {
      return schemaViolation({*bad});
    }
    auto it = call.query.find("developer_id");
    const std::string developer = it == call.query.end() ? "" : it->second;
    if (!developer.empty() && !config::isUuid(developer)) {
      return schemaViolation({{"", "", "developer_id", "expected a valid UUID"}});
    }
    portal::PortalActions actions(store_);
    auto list = actions.db().listApplications(developer, page.size, page.number);
    if (!list.ok()) {
      return statusResponse(list.status());
    }
    Json data = Json::array();
    for (const PortalApplication& a : list->items) {
      data.push_back(portal::applicationJson(a, false));
    }
    return json(200, pageBody(std::move(data), page, list->total));
  }

  ApiResponse application(const EndpointCall& call) {
    portal::PortalActions actions(store_);
    if (call.method() == "DELETE") {
      const absl::Status st = actions.deleteApplication(call.params[0]);
      return st.ok() || absl::IsNotFound(st) ? ApiResponse{204, ""} : actionError(st);
    }
    auto a = actions.db().getApplication(call.params[0]);
    return a.ok() ? json(200, portal::applicationJson(*a, false)) : statusResponse(a.status());
  }

  ApiResponse registrations(const EndpointCall& call) {
    PortalRegistrationQuery q;
    PageRequest page;
    if (std::optional<config::FieldError> bad = readPageRequest(call.query, &page)) {
      return schemaViolation({*bad});
    }
    q.size = page.size;
    q.number = page.number;
    if (auto bad = readStatusFilter(call.query, &q.status)) {
      return *std::move(bad);
    }
    for (auto [field, target] : {std::pair{"application_id", &q.application_id},
                                 std::pair{"developer_id", &q.developer_id}}) {
      auto it = call.query.find(field);
      if (it == call.query.end()) {
        continue;
      }
      if (!config::isUuid(it->second)) {
        return schemaViolation({{"", "", field, "expected a valid UUID"}});
      }
      *target = it->second;
    }
    portal::PortalActions actions(store_);
    auto list = actions.db().listRegistrations(q);
    if (!list.ok()) {
      return statusResponse(list.status());
    }
    Json data = Json::array();
    for (const PortalRegistration& r : list->items) {
      data.push_back(portal::registrationJson(r));
    }
    return json(200, pageBody(std::move(data), page, list->total));
  }

  ApiResponse registration(const EndpointCall& call) {
    portal::PortalActions actions(store_);
    auto r = actions.db().getRegistration(call.params[0]);
    if (!r.ok()) {
      return statusResponse(r.status());
    }
    if (call.method() == "GET") {
      return json(200, portal::registrationJson(*r));
    }
    Json body;
    if (auto bad = readPortalObject(call.request, {"status"}, &body)) {
      return *std::move(bad);
    }
    std::string status;
    if (auto bad = readStatus(body, {kPortalApproved, kPortalRejected, kPortalRevoked}, &status)) {
      return *std::move(bad);
    }
    auto updated = actions.setRegistrationStatus(r->id, status);
    return updated.ok() ? json(200, portal::registrationJson(*updated))
                        : actionError(updated.status());
  }

 private:
  PgConfigStore& store_;
};

}  // namespace
}  // namespace portal_api

void addPortalEndpoints(EndpointTable& table, const EndpointDeps& deps) {
  auto api = std::make_shared<portal_api::PortalAdminApi>(deps.store);
  const auto bind =
      [api](ApiResponse (portal_api::PortalAdminApi::*handler)(const EndpointCall&)) {
        return [api, handler](const EndpointCall& call) { return ((*api).*handler)(call); };
      };
  using portal_api::PortalAdminApi;
  table.add(kGet | kPatch, "portal/settings", bind(&PortalAdminApi::settings), Scope::kRootOnly);
  table.add(kGet, "portal/developers", bind(&PortalAdminApi::developers), Scope::kRootOnly);
  table.add(kGet | kPatch, "portal/developers/{id}", bind(&PortalAdminApi::developer),
            Scope::kRootOnly);
  table.add(kGet, "portal/applications", bind(&PortalAdminApi::applications), Scope::kRootOnly);
  table.add(kGet | kDelete, "portal/applications/{id}", bind(&PortalAdminApi::application),
            Scope::kRootOnly);
  table.add(kGet, "portal/registrations", bind(&PortalAdminApi::registrations),
            Scope::kRootOnly);
  table.add(kGet | kPatch, "portal/registrations/{id}", bind(&PortalAdminApi::registration),
            Scope::kRootOnly);
}

}  // namespace portico::cp::admin
