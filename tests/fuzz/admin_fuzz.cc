#include "tests/fuzz/admin_fuzz.h"

#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/config/entities.h"
#include "common/config/json_limits.h"
#include "control_plane/admin_api/form.h"

namespace portico::fuzz {
namespace {

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz invariant broken: %s\n", what);
    std::abort();
  }
}

}  // namespace

int fuzzAdminJsonBody(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  bool too_deep = false;
  std::optional<config::Json> j = config::parseUntrustedJson(text, config::kMaxJsonDepth, &too_deep);
  if (j) {
    check(!too_deep, "a parsed body reported too deep");
    // What we accepted nests no deeper than the limit.
    check(config::jsonDepth(j->dump(-1, ' ', false, config::Json::error_handler_t::replace)) <=
              config::kMaxJsonDepth,
          "an accepted body nests deeper than kMaxJsonDepth");
  }
  return 0;
}

int fuzzAdminFormBody(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  std::string error;
  std::optional<config::Json> form = cp::parseKongForm(body, &error);
  check(form.has_value() == error.empty(), "a refused form body without a reason");
  if (form) {
    check(form->is_object(), "a form body is not an object");
    const std::string dumped = form->dump(-1, ' ', false, config::Json::error_handler_t::replace);
    check(config::jsonDepth(dumped) <= config::kMaxJsonDepth + 1,
          "a form body nests deeper than kMaxJsonDepth");
    // Indexes are capped, so what one byte of input can allocate is bounded.
    check(dumped.size() <= 16 * size + 64 * cp::kMaxFormIndex + 64,
          "a form body grew out of proportion to its input");
  }
  return 0;
}

int fuzzEntitySchema(const uint8_t* data, size_t size) {
  static const char* const kEntities[] = {
      "services",    "routes", "consumers",          "plugins",
      "upstreams",   "targets", "certificates",      "snis",
      "ca_certificates", "keyauth_credentials", "basicauth_credentials", "jwt_secrets",
      "hmacauth_credentials", "acls"};
  if (size == 0) {
    return 0;
  }
  const std::string entity = kEntities[data[0] % (sizeof(kEntities) / sizeof(kEntities[0]))];
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  std::optional<config::Json> input = config::parseUntrustedJson(text);
  if (!input) {
    return 0;
  }
  config::Json out;
  const config::FieldErrors errors = config::processEntityJson(entity, *input, &out);
  // Every error says why (its field may be "": an unknown field named "" is one, as in Kong).
  for (const config::FieldError& e : errors) {
    check(!e.reason.empty(), "an error without a reason");
  }
  if (errors.empty()) {
    // Normalizing is idempotent: what we store validates again, unchanged.
    config::Json again;
    const config::FieldErrors second = config::processEntityJson(entity, out, &again);
    if (!second.empty()) {
      std::fprintf(stderr, "%s %s: %s: %s\n", entity.c_str(), out.dump().c_str(),
                   second[0].field.c_str(), second[0].reason.c_str());
    }
    check(second.empty(), "a normalized entity does not validate again");
  }
  return 0;
}

}  // namespace portico::fuzz
