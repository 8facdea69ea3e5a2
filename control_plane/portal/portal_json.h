// The Dev Portal's rows as JSON, one shape for the Admin API (/portal/...) and the portal's
// own API, so an admin and a developer see the same fields. Thread-safe (pure functions).
#pragma once

#include "common/config/schema.h"
#include "control_plane/store/pg_portal.h"

namespace portico::cp::portal {

config::Json settingsJson(const PortalSettings& s);
config::Json developerJson(const PortalDeveloper& d);
// `with_key`: include the application's API key (its developer's view only).
config::Json applicationJson(const PortalApplication& a, bool with_key);
config::Json registrationJson(const PortalRegistration& r);
config::Json apiJson(const PortalApi& a);

}  // namespace portico::cp::portal
