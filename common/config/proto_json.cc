#include "common/config/proto_json.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/reflection.h>

#include "portico/config/v1/config.pb.h"

namespace portico::config {

namespace pb = google::protobuf;

namespace {

// Services and routes predate the field-for-field protos: a foreign key is held as a plain id
// (a service's client_certificate, a route's service_id for `service`), a route's headers are
// HeaderMatch messages, and a route's stream sources/destinations are not modelled (null).
const char* foreignIdKey(const pb::FieldDescriptor* f) {
  if (f->containing_type() == v1::Service::descriptor() && f->name() == "client_certificate") {
    return "client_certificate";
  }
  if (f->containing_type() == v1::Route::descriptor() && f->name() == "service_id") {
    return "service";
  }
  return nullptr;
}

bool isHeaderMatches(const pb::FieldDescriptor* f) {
  return f->is_repeated() && f->message_type() == v1::HeaderMatch::descriptor();
}

bool headersToProto(const Json& headers, const pb::FieldDescriptor* f, pb::Message* out) {
  if (!headers.is_object()) {
    return false;
  }
  for (auto it = headers.begin(); it != headers.end(); ++it) {
    auto* m = static_cast<v1::HeaderMatch*>(out->GetReflection()->AddMessage(out, f));
    m->set_name(it.key());
    if (!it->is_array()) {
      return false;
    }
    for (const Json& value : *it) {
      if (!value.is_string()) {
        return false;
      }
      m->add_values(value.get<std::string>());
    }
  }
  return true;
}

}  // namespace

bool jsonToProto(const Json& entity, pb::Message* out) {
  const pb::Descriptor* d = out->GetDescriptor();
  const pb::Reflection* r = out->GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const pb::FieldDescriptor* f = d->field(i);
    const char* id_key = foreignIdKey(f);
    auto it = entity.find(id_key != nullptr ? id_key : f->name());
    if (it == entity.end() || it->is_null()) {
      continue;
    }
    const Json& v = *it;
    if (id_key != nullptr) {
      auto id = v.find("id");
      if (!v.is_object() || id == v.end() || !id->is_string()) {
        return false;
      }
      r->SetString(out, f, id->get<std::string>());
      continue;
    }
    if (isHeaderMatches(f)) {
      if (!headersToProto(v, f, out)) {
        return false;
      }
      continue;
    }
    if (f->is_repeated()) {
      if (!v.is_array()) {
        return false;
      }
      for (const auto& e : v) {
        if (f->cpp_type() != pb::FieldDescriptor::CPPTYPE_STRING || !e.is_string()) {
          return false;
        }
        r->AddString(out, f, e.get<std::string>());
      }
      continue;
    }
    switch (f->cpp_type()) {
      case pb::FieldDescriptor::CPPTYPE_STRING:
        r->SetString(out, f, v.is_string() ? v.get<std::string>() : v.dump());
        break;
      case pb::FieldDescriptor::CPPTYPE_INT32:
        if (!v.is_number()) return false;
        r->SetInt32(out, f, static_cast<int32_t>(v.get<double>()));
        break;
      case pb::FieldDescriptor::CPPTYPE_INT64:
        if (!v.is_number()) return false;
        r->SetInt64(out, f, static_cast<int64_t>(v.get<double>()));
        break;
      case pb::FieldDescriptor::CPPTYPE_DOUBLE:
        if (!v.is_number()) return false;
        r->SetDouble(out, f, v.get<double>());
        break;
      case pb::FieldDescriptor::CPPTYPE_BOOL:
        if (!v.is_boolean()) return false;
        r->SetBool(out, f, v.get<bool>());
        break;
      case pb::FieldDescriptor::CPPTYPE_MESSAGE:
        if (!jsonToProto(v, r->MutableMessage(out, f))) return false;
        break;
      default:
        return false;
    }
  }
  return true;
}

Json protoToJson(const pb::Message& message) {
  const pb::Descriptor* d = message.GetDescriptor();
  const pb::Reflection* r = message.GetReflection();
  Json out = Json::object();
  for (int i = 0; i < d->field_count(); ++i) {
    const pb::FieldDescriptor* f = d->field(i);
    if (const char* id_key = foreignIdKey(f)) {
      out[id_key] = r->HasField(message, f) ? Json{{"id", r->GetString(message, f)}} : Json();
      continue;
    }
    if (isHeaderMatches(f)) {
      const int n = r->FieldSize(message, f);
      Json headers = n == 0 ? Json() : Json::object();
      for (int k = 0; k < n; ++k) {
        const auto& m = static_cast<const v1::HeaderMatch&>(r->GetRepeatedMessage(message, f, k));
        headers[m.name()] = Json(std::vector<std::string>(m.values().begin(), m.values().end()));
      }
      out[f->name()] = std::move(headers);
      continue;
    }
    if (f->is_repeated()) {
      const int n = r->FieldSize(message, f);
      if (n == 0) {
        out[f->name()] = nullptr;
        continue;
      }
      Json arr = Json::array();
      for (int k = 0; k < n; ++k) {
        arr.push_back(r->GetRepeatedString(message, f, k));
      }
      out[f->name()] = std::move(arr);
      continue;
    }
    if (f->has_presence() && !r->HasField(message, f)) {
      out[f->name()] = nullptr;
      continue;
    }
    switch (f->cpp_type()) {
      case pb::FieldDescriptor::CPPTYPE_STRING: {
        const std::string s = r->GetString(message, f);
        // JSON-valued fields (a plugin's config and ordering, an upstream's healthchecks).
        if ((f->name() == "config" || f->name() == "healthchecks" || f->name() == "ordering") &&
            !s.empty()) {
          out[f->name()] = Json::parse(s, nullptr, false);
        } else {
          out[f->name()] = s;
        }
        break;
      }
      case pb::FieldDescriptor::CPPTYPE_INT32:
        out[f->name()] = r->GetInt32(message, f);
        break;
      case pb::FieldDescriptor::CPPTYPE_INT64:
        out[f->name()] = r->GetInt64(message, f);
        break;
      case pb::FieldDescriptor::CPPTYPE_DOUBLE:
        out[f->name()] = r->GetDouble(message, f);
        break;
      case pb::FieldDescriptor::CPPTYPE_BOOL:
        out[f->name()] = r->GetBool(message, f);
        break;
      case pb::FieldDescriptor::CPPTYPE_MESSAGE:
        out[f->name()] = protoToJson(r->GetMessage(message, f));
        break;
      default:
        break;
    }
  }
  if (d == v1::Route::descriptor()) {
    out["sources"] = nullptr;
    out["destinations"] = nullptr;
  }
  return out;
}

}  // namespace portico::config
