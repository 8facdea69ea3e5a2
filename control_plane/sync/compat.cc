#include "control_plane/sync/compat.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "control_plane/sync/sync_server.h"

namespace portico::cp {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

bool appliesTo(const CompatRule& r, const SemVer& v) {
  return v.major < r.before_major || (v.major == r.before_major && v.minor < r.before_minor);
}

bool hasValue(const Message& m, const FieldDescriptor* f) {
  const Reflection* refl = m.GetReflection();
  if (f->is_repeated()) {
    return refl->FieldSize(m, f) > 0;
  }
  if (f->has_presence()) {
    return refl->HasField(m, f);
  }
  return refl->HasField(m, f);  // proto3 scalar without presence: set = non-default
}

}  // namespace

const std::vector<CompatRule>& builtinCompatRules() {
  // 0.1 added query-argument and URI-capture hashing to upstreams and TLS verification
  // settings to services; a 0.0.x DP would refuse (or silently misread) them.
  static const auto* const kRules = new std::vector<CompatRule>{
      {"P0001", 0, 1, "upstreams",
       {"hash_on_query_arg", "hash_fallback_query_arg", "hash_on_uri_capture",
        "hash_fallback_uri_capture"},
       "upstream hashing by query argument or URI capture needs data plane 0.1 or newer; "
       "the field is removed and the upstream falls back to its other hash settings"},
      {"P0002", 0, 1, "services", {"tls_verify", "tls_verify_depth"},
       "per-service TLS verification settings need data plane 0.1 or newer; the field is "
       "removed and the data plane's default applies"},
  };
  return *kRules;
}

std::string compatClass(const std::string& dp_version, const std::vector<CompatRule>& rules) {
  const std::optional<SemVer> v = parseSemVer(dp_version);
  if (!v.has_value()) {
    return "";
  }
  std::string cls;
  for (const CompatRule& r : rules) {
    if (appliesTo(r, *v)) {
      absl::StrAppend(&cls, cls.empty() ? "" : ",", r.id);
    }
  }
  return cls;
}

std::vector<CompatibilityIssue> compatRuleIssues(const std::string& compat_class,
                                                 const std::vector<CompatRule>& rules) {
  std::vector<CompatibilityIssue> out;
  if (compat_class.empty()) {
    return out;
  }
  const std::set<std::string> ids = absl::StrSplit(compat_class, ',');
  for (const CompatRule& r : rules) {
    if (ids.count(r.id) == 0) {
      continue;
    }
    for (const std::string& f : r.fields) {
      out.push_back({r.id, "warning", r.description, r.entity_type, "", f});
    }
  }
  return out;
}

std::vector<CompatibilityIssue> downgradeSnapshot(config::v1::Snapshot* snapshot,
                                                  const std::string& compat_class,
                                                  const std::vector<CompatRule>& rules,
                                                  size_t max_issues, size_t* total) {
  std::vector<CompatibilityIssue> issues;
  size_t count = 0;
  if (!compat_class.empty()) {
    const std::set<std::string> ids = absl::StrSplit(compat_class, ',');
    const Reflection* srefl = snapshot->GetReflection();
    for (const CompatRule& r : rules) {
      if (ids.count(r.id) == 0) {
        continue;
      }
      const FieldDescriptor* list = snapshot->GetDescriptor()->FindFieldByName(r.entity_type);
      if (list == nullptr || !list->is_repeated() ||
          list->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) {
        continue;  // a rule naming no entity list strips nothing
      }
      const int n = srefl->FieldSize(*snapshot, list);
      for (int i = 0; i < n; ++i) {
        Message* entity = srefl->MutableRepeatedMessage(snapshot, list, i);
        const FieldDescriptor* id_field = entity->GetDescriptor()->FindFieldByName("id");
        for (const std::string& name : r.fields) {
          const FieldDescriptor* f = entity->GetDescriptor()->FindFieldByName(name);
          if (f == nullptr || !hasValue(*entity, f)) {
            continue;
          }
          entity->GetReflection()->ClearField(entity, f);
          ++count;
          if (issues.size() < max_issues) {
            issues.push_back({r.id, "warning", r.description, r.entity_type,
                              id_field != nullptr
                                  ? entity->GetReflection()->GetString(*entity, id_field)
                                  : "",
                              name});
          }
        }
      }
    }
  }
  if (total != nullptr) {
    *total = count;
  }
  return issues;
}

}  // namespace portico::cp
