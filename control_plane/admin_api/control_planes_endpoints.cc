// Konnect's control planes (config groups): GET/POST /control-planes and GET/PATCH/DELETE
// /control-planes/{id or name}, with Konnect's paging and error bodies; and the lookup that
// puts the Kong endpoints of one control plane under /control-planes/{id}/.
#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "control_plane/admin_api/admin_util.h"
#include "control_plane/admin_api/endpoints.h"

namespace portico::cp::admin {
namespace control_planes {
namespace {

const char* reasonPhrase(int status) {
  switch (status) {
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 409: return "Conflict";
    case 415: return "Unsupported Media Type";
    default: return "Error";
  }
}

// Konnect's error body; `field`/`rule` add one invalid_parameters entry.
ApiResponse konnectError(int status, const std::string& detail, const std::string& field = "",
                         const std::string& rule = "") {
  Json body{{"status", status}, {"title", reasonPhrase(status)}, {"detail", detail}};
  if (!field.empty()) {
    body["invalid_parameters"] =
        Json::array({Json{{"field", field}, {"rule", rule}, {"reason", detail}}});
  }
  return json(status, body);
}

Json groupJson(const GroupRecord& g) {
  return Json{{"id", g.id},
              {"name", g.name},
              {"description", g.description ? Json(*g.description) : Json()},
              {"labels", g.labels},
              {"created_at", g.created_at},
              {"updated_at", g.updated_at}};
}

constexpr size_t kMaxGroupName = 100;
constexpr size_t kMaxDescription = 250;
constexpr size_t kMaxLabels = 50;
constexpr size_t kMaxLabelLength = 63;

// Name: 1-100 printable characters, no '/', not a UUID (the path segment is an id or a name).
// Labels: up to 50 string values, keys and values of 1-63 characters (Konnect's limits).
std::optional<ApiResponse> validateGroupBody(const Json& b, bool create) {
  if (b.contains("name") || create) {
    const Json name = b.value("name", Json());
    if (!name.is_string()) {
      return konnectError(400, "name is a required string", "name", "required");
    }
    const std::string n = name.get<std::string>();
    const bool printable = std::all_of(n.begin(), n.end(), [](char c) {
      return static_cast<unsigned char>(c) >= 0x20 && c != 0x7f && c != '/';
    });
    if (n.empty() || n.size() > kMaxGroupName || !printable || config::isUuid(n)) {
      return konnectError(400,
                          "name must be 1 to 100 printable characters without '/' and not a UUID",
                          "name", "is_valid");
    }
  }
  if (b.contains("description") && !b["description"].is_null()) {
    if (!b["description"].is_string() ||
        b["description"].get<std::string>().size() > kMaxDescription) {
      return konnectError(400, "description must be a string of at most 250 characters",
                          "description", "is_valid");
    }
  }
  if (b.contains("labels")) {
    const Json& l = b["labels"];
    bool ok = l.is_object() && l.size() <= kMaxLabels;
    for (auto it = l.begin(); ok && it != l.end(); ++it) {
      ok = !it.key().empty() && it.key().size() <= kMaxLabelLength && it->is_string() &&
           !it->get<std::string>().empty() && it->get<std::string>().size() <= kMaxLabelLength;
    }
    if (!ok) {
      return konnectError(400,
                          "labels must be an object of at most 50 string values, keys and values "
                          "of 1 to 63 characters",
                          "labels", "is_valid");
    }
  }
  return std::nullopt;
}

// The whole Konnect answer, bad bodies and unknown control planes checked before methods.
ApiResponse answer(PgConfigStore& store, const EndpointCall& call) {
  const ApiRequest& req = call.request;
  const std::vector<std::string>& seg = call.segments;
  const std::string& m = req.method;
  if (seg.size() == 1 && m == "GET") {
    PageRequest page;
    if (std::optional<config::FieldError> bad = readPageRequest(call.query, &page)) {
      return konnectError(400, bad->field + " " + bad->reason);
    }
    auto groups = store.listGroups();
    if (!groups.ok()) {
      return statusResponse(groups.status());
    }
    Json data = Json::array();
    const size_t first = static_cast<size_t>(page.number - 1) * static_cast<size_t>(page.size);
    for (size_t i = first; i < groups->size() && i < first + page.size; ++i) {
      data.push_back(groupJson((*groups)[i]));
    }
    return json(200, pageBody(std::move(data), page, groups->size()));
  }
  Body body;
  if (m == "POST" || m == "PATCH") {
    body = readBody(req);
    if (body.kind == BodyKind::kInvalid) {
      return konnectError(400, invalidBodyMessage(body));
    }
    if (body.kind == BodyKind::kRefused) {
      return konnectError(400, body.refused.front().reason, body.refused.front().field);
    }
    if (body.kind == BodyKind::kUnsupported) {
      return konnectError(415, "Unsupported Media Type");
    }
    if (!body.value.is_object()) {
      return konnectError(400, "the request body must be a JSON object");
    }
  }
  if (seg.size() == 1) {
    if (m != "POST") {
      return message(405, kMethodNotAllowed);
    }
    if (auto err = validateGroupBody(body.value, true)) {
      return *err;
    }
    GroupRecord g;
    g.name = body.value["name"].get<std::string>();
    if (body.value.contains("description") && body.value["description"].is_string()) {
      g.description = body.value["description"].get<std::string>();
    }
    if (body.value.contains("labels")) {
      g.labels = body.value["labels"];
    }
    auto created = store.createGroup(g);
    if (absl::IsAlreadyExists(created.status())) {
      return konnectError(409, "a control plane named '" + g.name + "' already exists");
    }
    if (!created.ok()) {
      return statusResponse(created.status());
    }
    return json(201, groupJson(*created));
  }
  auto group = store.getGroup(seg[1]);
  if (!group.ok()) {
    if (m == "DELETE" && absl::IsNotFound(group.status())) {
      return {204, ""};
    }
    return absl::IsNotFound(group.status()) ? konnectError(404, "control plane not found")
                                            : statusResponse(group.status());
  }
  if (m == "GET") {
    return json(200, groupJson(*group));
  }
  if (m == "PATCH") {
    if (auto err = validateGroupBody(body.value, false)) {
      return *err;
    }
    if (body.value.contains("name") && body.value["name"] != group->name) {
      return konnectError(400, "name cannot be changed: data planes address a control plane by "
                               "its name", "name", "immutable");
    }
    auto updated = store.updateGroup(group->name, body.value);
    if (!updated.ok()) {
      return absl::IsNotFound(updated.status()) ? konnectError(404, "control plane not found")
                                                : statusResponse(updated.status());
    }
    return json(200, groupJson(*updated));
  }
  if (m == "DELETE") {
    if (group->name == kDefaultGroup) {
      return konnectError(400, "the default control plane cannot be deleted");
    }
    const absl::Status st = store.deleteGroup(group->name);
    if (!st.ok() && !absl::IsNotFound(st)) {
      return statusResponse(st);
    }
    return {204, ""};
  }
  return message(405, kMethodNotAllowed);
}

}  // namespace
}  // namespace control_planes

std::optional<ApiResponse> resolveControlPlane(PgConfigStore& store, const std::string& ref,
                                               std::string* name) {
  auto group = store.getGroup(ref);
  if (!group.ok()) {
    return absl::IsNotFound(group.status())
               ? control_planes::konnectError(404, "control plane not found")
               : statusResponse(group.status());
  }
  *name = group->name;
  return std::nullopt;
}

void addControlPlanesEndpoints(EndpointTable& table, const EndpointDeps& deps) {
  PgConfigStore& store = deps.store;
  const auto answer = [&store](const EndpointCall& call) {
    return control_planes::answer(store, call);
  };
  table.add(kGet | kPost, "control-planes", answer, Scope::kRootOnly, MethodCheck::kHandler);
  table.add(kGet | kPatch | kDelete, "control-planes/{id}", answer, Scope::kRootOnly,
            MethodCheck::kHandler);
}

}  // namespace portico::cp::admin
