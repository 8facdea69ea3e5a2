// http-log's config schema (Kong 3.10, PRIORITY 12), with Kong's `queue` record
// (kong/tools/queue_schema.lua) and the deprecated retry_count, queue_size and flush_timeout.
#include "common/config/entities.h"
#include "data_plane/plugins/logging/log_schema.h"

namespace portico::dp::plugins::http_log {
namespace {

using config::Field;
using config::Json;

Field queueRecord() {
  return Field::record(
             "queue",
             {Field::integer("max_batch_size").def(1).range(1, 1000000),
              Field::number("max_coalescing_delay").def(1).range(0, 3600),
              Field::integer("max_entries").def(10000).range(1, 1000000),
              Field::integer("max_bytes"),
              Field::number("max_retry_time").def(60),
              Field::number("initial_retry_delay").def(0.01).range(0.001, 1000000),
              Field::number("max_retry_delay").def(60).range(0.001, 1000000),
              Field::integer("concurrency_limit").def(1).oneOf({Json(-1), Json(1)})})
      .req();
}

// typedefs.header_name, then Kong's match_none on http-log's header keys.
std::string headerKeyCheck(Json& v) {
  const std::string name = v.get<std::string>();
  if (std::string r = config::headerNameCheck(name); !r.empty()) {
    return r;
  }
  std::string lower;
  for (char c : name) lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  if (lower == "host") return "cannot contain 'Host' header";
  if (lower == "content-length") return "cannot contain 'Content-Length' header";
  if (lower == "content-type") return "cannot contain 'Content-Type' header";
  return "";
}

}  // namespace

config::PluginSchema schema() {
  config::PluginSchema p = logging::logPluginSchema(
      "http-log", 12,
      {Field::string("http_endpoint").req().validator([](Json& v) -> std::string {
         logging::Url url;
         return logging::parseUrl(v.get<std::string>(), &url);
       }),
       Field::string("method").def("POST").oneOf(config::jsonList({"POST", "PUT", "PATCH"})),
       Field::string("content_type")
           .def("application/json")
           .oneOf(config::jsonList({"application/json", "application/json; charset=utf-8"})),
       Field::number("timeout").def(10000), Field::number("keepalive").def(60000),
       Field::integer("retry_count"), Field::integer("queue_size"),
       Field::number("flush_timeout"),
       Field::map("headers", Field::string("key").validator(headerKeyCheck),
                  Field::string("value")),
       queueRecord(), logging::luaCodeField()});
  p.config = p.config.validator([](Json& c) -> std::string {
    // Kong's custom_validator: user info and an Authorization header would both set it.
    if (!c.contains("http_endpoint") || !c["http_endpoint"].is_string() ||
        !c.contains("headers") || !c["headers"].is_object()) {
      return "";
    }
    logging::Url url;
    if (!logging::parseUrl(c["http_endpoint"].get<std::string>(), &url).empty() ||
        url.userinfo.empty()) {
      return "";
    }
    for (const auto& [name, value] : c["headers"].items()) {
      std::string lower;
      for (char ch : name) {
        lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(ch))));
      }
      if (lower == "authorization") {
        return "specifying both an 'Authorization' header and user info in 'http_endpoint' "
               "is not allowed";
      }
    }
    return "";
  });
  return p;
}

}  // namespace portico::dp::plugins::http_log
