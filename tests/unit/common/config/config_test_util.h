// Helpers for the config tests: an entity through its schema (as the Admin API, the
// declarative loader and the DP check it) and Kong's schema-violation message for the errors.
#pragma once

#include <string>

#include <catch2/catch.hpp>

#include "common/config/entities.h"

namespace portico::config::testing {

// "schema violation (f: reason)" or "N schema violations (a; b)", as the Admin API answers.
inline std::string violation(const FieldErrors& errors) {
  if (errors.empty()) {
    return "ok";
  }
  if (errors.size() == 1) {
    return "schema violation (" + errorSummary(errors) + ")";
  }
  return std::to_string(errors.size()) + " schema violations (" + errorSummary(errors) + ")";
}

// Processes `json` as `entity`; on success also maps it onto `proto` (what the DP receives).
inline FieldErrors process(const std::string& entity, const Json& in, Json* out,
                           google::protobuf::Message* proto = nullptr) {
  FieldErrors errors = processEntityJson(entity, in, out);
  if (errors.empty() && proto != nullptr) {
    REQUIRE(jsonToProto(*out, proto));
  }
  return errors;
}

inline std::string message(const std::string& entity, const char* json) {
  Json out;
  return violation(processEntityJson(entity, Json::parse(json), &out));
}

}  // namespace portico::config::testing
