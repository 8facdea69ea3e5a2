#include "control_plane/admin_api/endpoint_table.h"

#include "control_plane/admin_api/admin_util.h"

namespace portico::cp::admin {

Methods methodBit(std::string_view method) {
  if (method == "GET") return kGet;
  if (method == "POST") return kPost;
  if (method == "PUT") return kPut;
  if (method == "PATCH") return kPatch;
  if (method == "DELETE") return kDelete;
  return 0;
}

std::string allowHeader(Methods methods) {
  // Alphabetical, as Kong sorts its list (OPTIONS falls between GET and PATCH).
  static constexpr std::pair<Methods, const char*> kOrder[] = {
      {kDelete, "DELETE"}, {kGet, "GET"}, {0, "OPTIONS"}, {kPatch, "PATCH"},
      {kPost, "POST"},     {kPut, "PUT"}};
  std::string out;
  for (const auto& [bit, name] : kOrder) {
    if (bit == 0 || (methods & bit) != 0) {
      out += out.empty() ? "" : ", ";
      out += name;
    }
  }
  return out;
}

void EndpointTable::add(Methods methods, std::string_view pattern, EndpointHandler handler,
                        Scope scope, MethodCheck check) {
  Endpoint e;
  e.methods = methods;
  e.handler = std::move(handler);
  e.scope = scope;
  e.method_check = check;
  size_t start = 0;
  while (start < pattern.size()) {
    size_t slash = pattern.find('/', start);
    if (slash == std::string_view::npos) {
      slash = pattern.size();
    }
    const std::string_view seg = pattern.substr(start, slash - start);
    const bool variable = seg.size() >= 2 && seg.front() == '{' && seg.back() == '}';
    e.pattern.emplace_back(variable ? std::string_view() : seg);
    start = slash + 1;
  }
  endpoints_.push_back(std::move(e));
}

const Endpoint* EndpointTable::find(const std::vector<std::string>& segments, bool root,
                                    std::vector<std::string>* params) const {
  for (const Endpoint& e : endpoints_) {
    if (e.pattern.size() != segments.size() || (!root && e.scope == Scope::kRootOnly)) {
      continue;
    }
    params->clear();
    bool matches = true;
    for (size_t i = 0; matches && i < segments.size(); ++i) {
      if (e.pattern[i].empty()) {
        params->push_back(segments[i]);
      } else {
        matches = e.pattern[i] == segments[i];
      }
    }
    if (matches) {
      return &e;
    }
  }
  params->clear();
  return nullptr;
}

ApiResponse dispatch(const Endpoint& endpoint, const EndpointCall& call) {
  if (endpoint.method_check == MethodCheck::kTable &&
      (methodBit(call.method()) & endpoint.methods) == 0) {
    return message(405, kMethodNotAllowed);
  }
  return endpoint.handler(call);
}

}  // namespace portico::cp::admin
