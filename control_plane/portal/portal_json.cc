#include "control_plane/portal/portal_json.h"

namespace portico::cp::portal {

using config::Json;

Json settingsJson(const PortalSettings& s) {
  return Json{{"auto_approve_developers", s.auto_approve_developers},
              {"auto_approve_registrations", s.auto_approve_registrations},
              {"updated_at", s.updated_at}};
}

Json developerJson(const PortalDeveloper& d) {
  return Json{{"id", d.id},
              {"email", d.email},
              {"name", d.name},
              {"status", d.status},
              {"created_at", d.created_at},
              {"updated_at", d.updated_at}};
}

Json applicationJson(const PortalApplication& a, bool with_key) {
  Json j{{"id", a.id},
         {"name", a.name},
         {"description", a.description},
         {"developer", {{"id", a.developer_id}, {"email", a.developer_email}}},
         {"created_at", a.created_at},
         {"updated_at", a.updated_at}};
  if (with_key) {
    j["key"] = a.api_key;
  }
  return j;
}

Json registrationJson(const PortalRegistration& r) {
  return Json{{"id", r.id},
              {"status", r.status},
              {"application", {{"id", r.application_id}, {"name", r.application_name}}},
              {"developer", {{"id", r.developer_id}, {"email", r.developer_email}}},
              {"service", {{"id", r.service_id}, {"name", r.service_name}}},
              {"version", {{"id", r.version_id}, {"version", r.version}, {"state", r.version_state}}},
              {"created_at", r.created_at},
              {"updated_at", r.updated_at}};
}

Json apiJson(const PortalApi& a) {
  return Json{{"service", {{"id", a.service_id},
                           {"name", a.service_name},
                           {"display_name", a.display_name},
                           {"description", a.description}}},
              {"version", {{"id", a.version_id}, {"version", a.version}, {"state", a.state}}},
              {"has_spec", !a.spec_format.empty()},
              {"spec_format", a.spec_format},
              {"updated_at", a.updated_at}};
}

}  // namespace portico::cp::portal
