// response-transformer's config schema (Kong 3.10, PRIORITY 800): remove, rename, replace, add
// and append records of `json` and `headers` lists ("name" or "name:value" strings), with
// `json_types` (boolean, number or string, by position) for the three that write values.
#include <string>
#include <vector>

#include "common/config/entities.h"

namespace portico::dp::plugins::response_transformer {
namespace {

using config::Field;
using config::Json;

Field list(const std::string& name, Field element) {
  return Field::array(name, std::move(element)).req().def(Json::array());
}

// Kong's colon_string_array: every entry "name:value" (the value may be empty).
Field pairs(const std::string& name) {
  return list(name, Field::string(name).matches("^[^:]+:.*$"));
}

// Kong's validate_headers(pair, true) for rename.headers: both names must be header names.
std::string renameHeaders(Json& v) {
  const std::string s = v.get<std::string>();
  std::string_view name, value;
  config::splitNameValue(s, &name, &value);
  for (std::string_view n : {name, value}) {
    if (!config::isHeaderName(n)) {
      std::string msg = "'";  // appended: GCC 12 warns falsely (-Wrestrict) on operator+
      msg.append(n).append("' is not a valid header");
      return msg;
    }
  }
  return "";
}

Field typedRecord(const std::string& name) {
  return Field::record(
             name, {pairs("json"),
                    list("json_types", Field::string("json_types")
                                           .oneOf(config::jsonList({"boolean", "number", "string"}))),
                    pairs("headers")})
      .req();
}

}  // namespace

config::PluginSchema schema() {
  return config::httpPluginSchema(
      "response-transformer", 800,
      {Field::record("remove", {list("json", Field::string("json")),
                                list("headers", Field::string("headers"))})
           .req(),
       Field::record("rename",
                     {pairs("json"), list("headers", Field::string("headers")
                                                         .matches("^[^:]+:.*$")
                                                         .validator(renameHeaders))})
           .req(),
       typedRecord("replace"), typedRecord("add"), typedRecord("append")});
}

}  // namespace portico::dp::plugins::response_transformer
