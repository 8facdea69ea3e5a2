#include "control_plane/portal/provisioning.h"

#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/config/entities.h"
#include "common/logging.h"
#include "control_plane/portal/portal_crypto.h"

namespace portico::cp::portal {
namespace {

using config::Json;

// The control planes a version is bound to, each once.
std::set<std::string> groupsOf(const CatalogVersion& version) {
  std::set<std::string> groups;
  for (const CatalogBinding& b : version.bindings) {
    groups.insert(b.control_plane_name);
  }
  return groups;
}

// A plugin that applies to the whole service: no route, no consumer.
bool serviceWide(const Json& plugin) {
  auto unset = [&](const char* field) {
    return !plugin.contains(field) || plugin[field].is_null();
  };
  return unset("route") && unset("consumer");
}

// Read-modify-write of a service's acl plugin: one at a time in this process, so two
// approvals sharing a gateway service do not drop each other's group. (CP replicas could
// still race; the lost group comes back with the next approval of that version.)
absl::Mutex& pluginMutex() {
  static absl::Mutex* const mu = new absl::Mutex();
  return *mu;
}

}  // namespace

std::string consumerUsername(const std::string& application_id) {
  return "portal-app-" + application_id;
}

std::string aclGroup(const std::string& version_id) { return "portal-version-" + version_id; }

absl::Status Provisioner::create(const std::string& group, const std::string& type,
                                 const Json& input) {
  Json entity;
  config::FieldErrors errors = config::processEntityJson(type, input, &entity);
  if (!errors.empty()) {
    return absl::InternalError(absl::StrCat("portal: invalid ", type, ": ", errors[0].field, ": ",
                                            errors[0].reason));
  }
  if (!entity.contains("id") || !entity["id"].is_string()) {
    entity["id"] = randomUuid();
  }
  auto written = store_.writeJson(group, type, std::move(entity), WriteMode::kCreate);
  return written.ok() ? absl::OkStatus() : written.status();
}

absl::StatusOr<std::string> Provisioner::ensureConsumer(const std::string& group,
                                                        const PortalApplication& app) {
  const std::string username = consumerUsername(app.id);
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto found = store_.getJson(group, "consumers", username);
    if (found.ok()) {
      return (*found)["id"].get<std::string>();
    }
    if (!absl::IsNotFound(found.status())) {
      return found.status();
    }
    absl::Status st = create(group, "consumers",
                             Json{{"username", username},
                                  {"custom_id", app.id},
                                  {"tags", Json::array({kPortalTag})}});
    if (!st.ok() && !absl::IsAlreadyExists(st)) {  // taken meanwhile: read it again
      return st;
    }
  }
  return absl::AbortedError("portal: consumer " + username + " could not be created");
}

absl::Status Provisioner::ensureChild(const std::string& group, const std::string& type,
                                      const std::string& consumer_id, const std::string& field,
                                      const std::string& value) {
  ListQuery q;
  q.foreign_field = "consumer";
  q.foreign_id = consumer_id;
  q.equals_field = field;
  q.equals_value = value;
  q.size = 1;
  auto page = store_.listJson(group, type, q);
  if (!page.ok()) {
    return page.status();
  }
  if (!page->items.empty()) {
    return absl::OkStatus();
  }
  absl::Status st = create(group, type,
                           Json{{"consumer", {{"id", consumer_id}}},
                                {field, value},
                                {"tags", Json::array({kPortalTag})}});
  return absl::IsAlreadyExists(st) ? absl::OkStatus() : st;
}

absl::Status Provisioner::ensureServicePlugins(const std::string& group,
                                               const std::string& service_id,
                                               const std::string& acl_group) {
  absl::MutexLock lock(&pluginMutex());
  auto servicePlugin = [&](const char* name) -> absl::StatusOr<std::optional<Json>> {
    ListQuery q;
    q.foreign_field = "service";
    q.foreign_id = service_id;
    q.equals_field = "name";
    q.equals_value = name;
    auto page = store_.listJson(group, "plugins", q);
    if (!page.ok()) {
      return page.status();
    }
    for (Json& p : page->items) {
      if (serviceWide(p)) {
        return std::optional<Json>(std::move(p));
      }
    }
    return std::optional<Json>();
  };
  auto key_auth = servicePlugin("key-auth");
  if (!key_auth.ok()) {
    return key_auth.status();
  }
  if (!key_auth->has_value()) {
    if (absl::Status st = create(group, "plugins",
                                 Json{{"name", "key-auth"},
                                      {"service", {{"id", service_id}}},
                                      {"tags", Json::array({kPortalTag})}});
        !st.ok() && !absl::IsAlreadyExists(st)) {
      return st;
    }
  }
  auto acl = servicePlugin("acl");
  if (!acl.ok()) {
    return acl.status();
  }
  if (!acl->has_value()) {
    absl::Status st = create(group, "plugins",
                             Json{{"name", "acl"},
                                  {"service", {{"id", service_id}}},
                                  {"config", {{"allow", Json::array({acl_group})}}},
                                  {"tags", Json::array({kPortalTag})}});
    return absl::IsAlreadyExists(st) ? absl::OkStatus() : st;
  }
  Json plugin = std::move(**acl);
  Json& allow = plugin["config"]["allow"];
  if (!allow.is_array()) {
    return absl::FailedPreconditionError(
        "gateway service " + service_id + " in control plane " + group +
        " has an acl plugin with a deny list; give it an allow list for the portal to extend");
  }
  for (const Json& g : allow) {
    if (g == acl_group) {
      return absl::OkStatus();
    }
  }
  allow.push_back(acl_group);
  Json entity;
  config::FieldErrors errors = config::processEntityJson("plugins", plugin, &entity);
  if (!errors.empty()) {
    return absl::InternalError("portal: acl plugin update: " + errors[0].field + ": " +
                               errors[0].reason);
  }
  entity["id"] = plugin["id"];
  auto written = store_.writeJson(group, "plugins", std::move(entity), WriteMode::kUpdate);
  return written.ok() ? absl::OkStatus() : written.status();
}

absl::Status Provisioner::secureVersion(const CatalogVersion& version) {
  for (const CatalogBinding& b : version.bindings) {
    auto service = store_.getJson(b.control_plane_name, "services", b.gateway_service_id);
    if (absl::IsNotFound(service.status())) {
      // Deleted since it was bound: nothing to protect (its usage reads zero too).
      LOG_WARN("portal", "version %s: gateway service %s is gone from control plane %s",
               version.id, b.gateway_service_id, b.control_plane_name);
      continue;
    }
    if (!service.ok()) {
      return service.status();
    }
    if (absl::Status st =
            ensureServicePlugins(b.control_plane_name, b.gateway_service_id, aclGroup(version.id));
        !st.ok()) {
      return st;
    }
  }
  return absl::OkStatus();
}

absl::Status Provisioner::grant(const PortalApplication& app, const CatalogVersion& version) {
  if (absl::Status st = secureVersion(version); !st.ok()) {
    return st;
  }
  for (const std::string& group : groupsOf(version)) {
    auto consumer = ensureConsumer(group, app);
    if (!consumer.ok()) {
      return consumer.status();
    }
    if (absl::Status st = ensureChild(group, "keyauth_credentials", *consumer, "key", app.api_key);
        !st.ok()) {
      return st;
    }
    if (absl::Status st = ensureChild(group, "acls", *consumer, "group", aclGroup(version.id));
        !st.ok()) {
      return st;
    }
  }
  return absl::OkStatus();
}

absl::Status Provisioner::revoke(const PortalApplication& app, const CatalogVersion& version) {
  for (const std::string& group : groupsOf(version)) {
    auto consumer = store_.getJson(group, "consumers", consumerUsername(app.id));
    if (absl::IsNotFound(consumer.status())) {
      continue;
    }
    if (!consumer.ok()) {
      return consumer.status();
    }
    ListQuery q;
    q.foreign_field = "consumer";
    q.foreign_id = (*consumer)["id"].get<std::string>();
    q.equals_field = "group";
    q.equals_value = aclGroup(version.id);
    auto page = store_.listJson(group, "acls", q);
    if (!page.ok()) {
      return page.status();
    }
    for (const Json& acl : page->items) {
      auto deleted = store_.deleteJson(group, "acls", acl["id"].get<std::string>());
      if (!deleted.ok()) {
        return deleted.status();
      }
    }
  }
  return absl::OkStatus();
}

absl::Status Provisioner::removeApplication(const std::string& application_id) {
  auto groups = store_.listGroups();
  if (!groups.ok()) {
    return groups.status();
  }
  for (const GroupRecord& g : *groups) {
    auto consumer = store_.getJson(g.name, "consumers", consumerUsername(application_id));
    if (absl::IsNotFound(consumer.status())) {
      continue;
    }
    if (!consumer.ok()) {
      return consumer.status();
    }
    auto deleted = store_.deleteJson(g.name, "consumers", (*consumer)["id"].get<std::string>());
    if (!deleted.ok()) {
      return deleted.status();
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<PortalRegistration> PortalActions::setRegistrationStatus(const std::string& id,
                                                                        const std::string& status) {
  if (status != kPortalApproved && status != kPortalRejected && status != kPortalRevoked) {
    return absl::InvalidArgumentError("status");
  }
  auto reg = db_.getRegistration(id);
  if (!reg.ok()) {
    return reg.status();
  }
  auto app = db_.getApplication(reg->application_id);
  if (!app.ok()) {
    return app.status();
  }
  auto version = catalog_.getVersion(reg->service_id, reg->version_id, false);
  if (!version.ok()) {
    return version.status();
  }
  if (status == kPortalApproved) {
    if (version->state != "published") {
      return absl::FailedPreconditionError("the version is " + version->state +
                                           "; only a published version takes registrations");
    }
    auto developer = db_.getDeveloper(reg->developer_id);
    if (!developer.ok()) {
      return developer.status();
    }
    if (developer->status != kPortalApproved) {
      return absl::FailedPreconditionError("the developer is " + developer->status);
    }
    if (absl::Status st = provisioner_.grant(*app, *version); !st.ok()) {
      return st;
    }
  } else if (absl::Status st = provisioner_.revoke(*app, *version); !st.ok()) {
    return st;
  }
  return db_.setRegistrationStatus(id, status);
}

absl::StatusOr<PortalDeveloper> PortalActions::setDeveloperStatus(const std::string& id,
                                                                  const std::string& status) {
  if (status != kPortalApproved && status != kPortalRejected && status != kPortalRevoked &&
      status != kPortalPending) {
    return absl::InvalidArgumentError("status");
  }
  if (status == kPortalRejected || status == kPortalRevoked) {
    PortalRegistrationQuery q;
    q.developer_id = id;
    q.status = kPortalApproved;
    q.size = 1000;
    for (;;) {
      auto page = db_.listRegistrations(q);
      if (!page.ok()) {
        return page.status();
      }
      if (page->items.empty()) {
        break;
      }
      for (const PortalRegistration& r : page->items) {
        if (auto st = setRegistrationStatus(r.id, kPortalRevoked); !st.ok()) {
          return st.status();
        }
      }
    }
  }
  return db_.setDeveloperStatus(id, status);
}

absl::Status PortalActions::deleteApplication(const std::string& id) {
  auto app = db_.getApplication(id);
  if (!app.ok()) {
    return app.status();
  }
  if (absl::Status st = provisioner_.removeApplication(id); !st.ok()) {
    return st;
  }
  return db_.deleteApplication(id);
}

}  // namespace portico::cp::portal
