#include "common/config/json_limits.h"

namespace portico::config {

int jsonDepth(std::string_view text, int stop_at) {
  int depth = 0;
  int deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped character cannot end the string
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > deepest) {
        deepest = depth;
        if (deepest >= stop_at) {
          return deepest;
        }
      }
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

std::optional<nlohmann::json> parseUntrustedJson(std::string_view text, int max_depth,
                                                 bool* too_deep) {
  const bool deep = jsonDepth(text, max_depth + 1) > max_depth;
  if (too_deep != nullptr) {
    *too_deep = deep;
  }
  if (deep) {
    return std::nullopt;
  }
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return std::nullopt;
  }
  return j;
}

}  // namespace portico::config
