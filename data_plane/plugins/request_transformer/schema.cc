// request-transformer's config schema (Kong 3.10, PRIORITY 801). Every array defaults to []
// and is required; entries are Kong's "name:value" strings with Kong's checks and messages.
// Values are $(...) templates: an expression this data plane cannot render is refused here
// (Kong would render it with Lua), see template.h.
#include <string>

#include "common/config/entities.h"
#include "data_plane/plugins/request_transformer/template.h"

namespace portico::dp::plugins::request_transformer {
namespace {

using config::Field;
using config::Json;

std::string notAHeader(std::string_view name) {
  std::string msg = "'";
  msg.append(name).append("' is not a valid header");
  return msg;
}

// Kong's validate_headers(pair, validate_value): the name (and for rename the new name) must
// be a header name. A missing name reads as Lua's tostring(nil).
config::CustomValidator headerEntry(bool value_is_header, bool value_is_template) {
  return [value_is_header, value_is_template](Json& v) -> std::string {
    const std::string s = v.get<std::string>();
    std::string_view name, value;
    if (!config::splitNameValue(s, &name, &value)) {
      return notAHeader("nil");
    }
    if (!config::isHeaderName(name)) {
      return notAHeader(name);
    }
    if (value_is_header && !config::isHeaderName(value)) {
      return notAHeader(value);
    }
    return value_is_template ? templateCheck(value) : "";
  };
}

// Kong's check_for_value: "name:value" with a non-empty value that compiles as a template.
std::string checkForValue(Json& v) {
  const std::string s = v.get<std::string>();
  std::string_view name, value;
  if (!config::splitNameValue(s, &name, &value)) {
    return "key 'nil' has no value";
  }
  if (value.empty()) {
    std::string msg = "key '";
    msg.append(name).append("' has no value");
    return msg;
  }
  return templateCheck(value);
}

Field list(const std::string& name, Field element) {
  return Field::array(name, std::move(element)).req().def(Json::array());
}

// remove: names only (headers must be header names).
Field namesRecord() {
  return Field::record(
             "remove",
             {list("body", Field::string("body")),
              list("headers", Field::string("headers").validator(headerEntry(false, false))),
              list("querystring", Field::string("querystring"))})
      .req();
}

// rename/replace/add/append: "name:value" entries.
Field pairsRecord(const std::string& name, bool rename, bool with_uri) {
  std::vector<Field> fields = {
      list("body", Field::string("body").validator(checkForValue)),
      list("headers", Field::string("headers")
                          .matches("[^:]+:.*")
                          .validator(headerEntry(rename, !rename))),
      list("querystring", Field::string("querystring").validator(checkForValue))};
  if (with_uri) {
    fields.push_back(Field::string("uri").validator([](Json& v) {
      return templateCheck(v.get<std::string>());
    }));
  }
  return Field::record(name, std::move(fields)).req();
}

}  // namespace

config::PluginSchema schema() {
  config::PluginSchema p = config::httpPluginSchema(
      "request-transformer", 801,
      {Field::string("http_method").matches("[A-Z]+"), namesRecord(),
       pairsRecord("rename", /*rename=*/true, false), pairsRecord("replace", false, true),
       pairsRecord("add", false, false), pairsRecord("append", false, false)});
  // Kong's typedefs.protocols has the same default; it also accepts the stream protocols,
  // which this data plane does not proxy, so they are left out of the allowed set.
  return p;
}

}  // namespace portico::dp::plugins::request_transformer
