#include "common/config/entities/entity_schemas.h"

#include <algorithm>
#include <climits>
#include <string>
#include <string_view>
#include <vector>

#include "common/config/typedefs.h"
#include "re2/re2.h"

namespace portico::config {
namespace {

// The strings of a set value (a route's protocols), skipping anything else; views into `v`.
std::vector<std::string_view> routeStrings(const Json& v) {
  std::vector<std::string_view> out;
  if (v.is_array()) {
    for (const Json& e : v) {
      if (e.is_string()) {
        out.push_back(e.get_ref<const std::string&>());
      }
    }
  }
  return out;
}

bool hasProtocol(const std::vector<std::string_view>& protocols, std::string_view p) {
  return std::find(protocols.begin(), protocols.end(), p) != protocols.end();
}

// Kong's mutually_exclusive_subsets on protocols. Unknown elements were reported already.
std::string protocolFamilies(Json& v) {
  static const std::vector<std::vector<std::string>> kFamilies = {
      {"http", "https"}, {"tcp", "tls", "udp"}, {"tls_passthrough"}, {"grpc", "grpcs"}};
  const std::vector<std::string_view> protocols = routeStrings(v);
  for (const Json& p : v) {
    if (std::find(allProtocols().begin(), allProtocols().end(), p) == allProtocols().end()) {
      return "";
    }
  }
  std::string msg;
  int used = 0;
  for (const auto& family : kFamilies) {
    if (std::none_of(family.begin(), family.end(),
                     [&](const std::string& p) { return hasProtocol(protocols, p); })) {
      continue;
    }
    msg += used++ == 0 ? "(" : ", (";
    for (size_t k = 0; k < family.size(); ++k) {
      msg += (k == 0 ? "'" : ", '") + family[k] + "'";
    }
    msg += ")";
  }
  return used > 1 ? "these sets are mutually exclusive: " + msg : "";
}

std::string routeHeaderName(Json& v) {
  static const LazyRE2 kHostRe = {"(?i)host"};
  const std::string& name = v.get_ref<const std::string&>();
  if (!isHeaderName(name)) {
    return headerNameCheck(name);
  }
  if (RE2::FullMatch(name, *kHostRe)) {
    return "cannot contain 'host' header, which must be specified in the 'hosts' attribute";
  }
  return "";
}

// Kong's regex_priority has no bounds; the proto's is an int32.
std::string saturateInt32(Json& v) {
  v = std::clamp<double>(v.get<double>(), INT_MIN, INT_MAX);
  v = static_cast<int32_t>(v.get<double>());
  return "";
}

bool isGrpc(std::string_view p) { return p == "grpc" || p == "grpcs"; }
bool isStream(std::string_view p) {
  return p == "tcp" || p == "tls" || p == "udp" || p == "tls_passthrough";
}

// Set: a non-empty array or map (Kong's "must set one of" counts an empty array as unset).
bool isSet(const Json& r, const char* field) {
  const Json& v = r[field];
  return (v.is_array() || v.is_object()) && !v.empty();
}

// The subschema chosen by the first protocol: its field rules (Kong's grpc and stream
// subschemas declare these fields `eq = null` / `ne = true` with these messages).
FieldReasons routeSubschemaRules(const Json& r) {
  FieldReasons out;
  const std::vector<std::string_view> protocols = routeStrings(r["protocols"]);
  if (protocols.empty()) {
    return out;
  }
  const std::string_view first = protocols[0];
  if (isGrpc(first)) {
    if (r["strip_path"] == true) {
      out.emplace_back("strip_path", "cannot set 'strip_path' when 'protocols' is 'grpc' or 'grpcs'");
    }
    if (isSet(r, "methods")) {
      out.emplace_back("methods", "cannot set 'methods' when 'protocols' is 'grpc' or 'grpcs'");
    }
  }
  if (isStream(first)) {
    for (const char* name : {"methods", "hosts", "paths", "headers"}) {
      if (isSet(r, name)) {
        out.emplace_back(name, std::string("cannot set '") + name +
                                   "' when 'protocols' is 'tcp', 'tls', 'tls_passthrough' or 'udp'");
      }
    }
  }
  return out;
}

FieldReasons routeSnisRule(const Json& r) {
  const std::vector<std::string_view> protocols = routeStrings(r["protocols"]);
  const bool sni_capable = hasProtocol(protocols, "grpcs") || hasProtocol(protocols, "https") ||
                           hasProtocol(protocols, "tls") ||
                           hasProtocol(protocols, "tls_passthrough");
  if (protocols.empty() || sni_capable || !isSet(r, "snis")) {
    return {};
  }
  return {{"@entity",
           "'snis' can only be set when 'protocols' is 'grpcs', 'https', 'tls' or "
           "'tls_passthrough'"},
          {"snis", "length must be 0"}};
}

FieldReasons routePassthroughSnis(const Json& r) {
  const std::vector<std::string_view> protocols = routeStrings(r["protocols"]);
  if (protocols.empty() || protocols[0] != "tls_passthrough" || isSet(r, "snis")) {
    return {};
  }
  return {{"@entity", "must set snis when 'protocols' is 'tls_passthrough'"}};
}

// Kong's conditional_at_least_one_of on protocols: when `applies` to the route's protocols,
// one of `fields` must be set ("must set one of 'a', 'b' when 'protocols' is <when>").
EntityCheck atLeastOneWhen(bool (*applies)(const std::vector<std::string_view>&), const char* when,
                           std::vector<std::string> fields) {
  EntityCheck c;
  c.kind = EntityCheck::Kind::kCustomFields;
  c.fields = fields;
  c.fields.insert(c.fields.begin(), "protocols");
  c.field_fn = [applies, when, fields](const Json& r) -> FieldReasons {
    const std::vector<std::string_view> protocols = routeStrings(r["protocols"]);
    if (protocols.empty() || !applies(protocols)) {
      return {};
    }
    std::string names;
    for (const std::string& f : fields) {
      if (isSet(r, f.c_str())) {
        return {};
      }
      names += (names.empty() ? "'" : ", '") + f + "'";
    }
    return {{"@entity", "must set one of " + names + " when 'protocols' is " + when}};
  };
  return c;
}

// Stream routing's sources/destinations are not modelled yet: refused whenever given.
FieldReasons unmodelledRouteFields(const Json& r) {
  FieldReasons out;
  const std::vector<std::string_view> protocols = routeStrings(r["protocols"]);
  const bool http = protocols.empty() || protocols[0] == "http" || protocols[0] == "https";
  for (const char* key : {"sources", "destinations"}) {
    if (!r[key].is_null()) {
      out.emplace_back(key, http ? std::string("cannot set '") + key +
                                       "' when 'protocols' is 'http' or 'https'"
                                 : std::string("not supported yet"));
    }
  }
  return out;
}

EntityCheck fieldsCheck(std::vector<std::string> fields, FieldReasons (*fn)(const Json&)) {
  EntityCheck c;
  c.kind = EntityCheck::Kind::kCustomFields;
  c.fields = std::move(fields);
  c.field_fn = fn;
  return c;
}

}  // namespace

EntitySchema routesSchema() {
  EntitySchema s;
  s.name = "routes";
  s.endpoint_key = "name";
  s.fields = {
      idField(), timestampField("created_at"), timestampField("updated_at"),
      utf8NameField("name").isUnique(),
      Field::set("protocols", Field::string("p").oneOf(allProtocols()))
          .req()
          .lenMin(1)
          .def(Json::array({"http", "https"}))
          .validator(protocolFamilies),
      Field::set("methods", Field::string("m").matches("[A-Z]+")).emptyAsNull(),
      Field::array("hosts", Field::string("h").validator([](Json& v) {
        return checkWildcardHost(v.get<std::string>());
      })).emptyAsNull(),
      Field::array("paths", Field::string("p").lenMax(kMaxPathLength).validator([](Json& v) {
        return checkRouterPath(v.get<std::string>());
      })).emptyAsNull(),
      Field::map("headers", Field::string("k").lenMax(kMaxNameLength).validator(routeHeaderName),
                 Field::array("v", Field::string("v")).wrapScalar())
          .keyedValueErrors()
          .emptyAsNull(),
      Field::integer("https_redirect_status_code").req().def(426).oneOf({426, 301, 302, 307, 308}),
      Field::integer("regex_priority").def(0).nullAsDefault().validator(saturateInt32),
      Field::boolean("strip_path").req().def(true).defaultFrom([](const Json& in) {
        auto p = in.find("protocols");
        const std::vector<std::string_view> protocols =
            p == in.end() ? std::vector<std::string_view>() : routeStrings(*p);
        return Json(protocols.empty() || !isGrpc(protocols[0]));
      }),
      Field::string("path_handling").def("v0").nullAsDefault().oneOf(jsonList({"v0", "v1"})),
      Field::boolean("preserve_host").req().def(false),
      Field::boolean("request_buffering").req().def(true),
      Field::boolean("response_buffering").req().def(true),
      Field::set("snis", Field::string("sni").validator([](Json& v) {
        return checkSni(v.get<std::string>());
      })).emptyAsNull(),
      Field::set("sources", Field::json("s")), Field::set("destinations", Field::json("d")),
      tagsField().emptyAsNull(), Field::foreign("service", "services")};
  using Protocols = const std::vector<std::string_view>&;
  s.checks = {
      fieldsCheck({"protocols"}, routeSubschemaRules),
      fieldsCheck({"protocols", "snis"}, routeSnisRule),
      atLeastOneWhen([](Protocols p) { return hasProtocol(p, "https"); }, "'https'",
                     {"methods", "hosts", "headers", "paths", "snis"}),
      atLeastOneWhen([](Protocols p) { return !hasProtocol(p, "https") && hasProtocol(p, "http"); },
                     "'http'", {"methods", "hosts", "headers", "paths"}),
      atLeastOneWhen([](Protocols p) { return hasProtocol(p, "grpcs"); }, "'grpcs'",
                     {"hosts", "headers", "paths", "snis"}),
      atLeastOneWhen([](Protocols p) { return !hasProtocol(p, "grpcs") && hasProtocol(p, "grpc"); },
                     "'grpc'", {"hosts", "headers", "paths"}),
      fieldsCheck({"protocols", "snis"}, routePassthroughSnis),
      // TODO(portico): model sources/destinations for stream routes; snis is the only way now.
      atLeastOneWhen([](Protocols p) { return isStream(p[0]) && p[0] != "tls_passthrough"; },
                     "'tcp', 'tls' or 'udp'", {"sources", "destinations", "snis"}),
      fieldsCheck({}, unmodelledRouteFields)};
  return s;
}

}  // namespace portico::config
