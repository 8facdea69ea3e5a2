// Kong JSON <-> an entity's config.proto message, by reflection (field names are identical;
// JSON-valued string fields such as a plugin's `config` hold JSON text). The DP receives
// protos and runs the same schema processing on their JSON; the store and the CLI turn
// snapshots back into Kong's JSON.
#pragma once

#include <google/protobuf/message.h>

#include <nlohmann/json.hpp>

namespace portico::config {

using Json = nlohmann::json;

// False when a value has the wrong type for its proto field.
bool jsonToProto(const Json& entity, google::protobuf::Message* out);
// Unset optional fields and empty repeated fields are null.
Json protoToJson(const google::protobuf::Message& message);

}  // namespace portico::config
