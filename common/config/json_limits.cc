#include "common/config/json_limits.h"

#include "common/config/validate.h"

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

namespace {

// The reason `text` cannot be stored, or nullptr.
const char* badText(const std::string& text) {
  if (text.find('\0') != std::string::npos) {
    return "must not contain NUL bytes";
  }
  return isValidUtf8(text) ? nullptr : "invalid UTF-8";
}

bool findBad(const nlohmann::json& v, std::string* path, const char** reason) {
  const auto join = [](const std::string& base, const std::string& part) {
    return base.empty() ? part : base + "." + part;
  };
  if (v.is_string()) {
    *reason = badText(v.get_ref<const std::string&>());
    return *reason != nullptr;
  }
  if (v.is_array()) {
    for (size_t i = 0; i < v.size(); ++i) {
      std::string inner = join(*path, std::to_string(i + 1));
      if (findBad(v[i], &inner, reason)) {
        *path = std::move(inner);
        return true;
      }
    }
  } else if (v.is_object()) {
    for (const auto& [key, item] : v.items()) {
      if ((*reason = badText(key)) != nullptr) {
        // The key itself cannot be shown as it is: the path ends at its parent.
        *path = join(*path, "@key");
        return true;
      }
      std::string inner = join(*path, key);
      if (findBad(item, &inner, reason)) {
        *path = std::move(inner);
        return true;
      }
    }
  }
  return false;
}

}  // namespace

std::optional<BadText> findBadText(const nlohmann::json& value) {
  std::string path;
  const char* reason = nullptr;
  if (findBad(value, &path, &reason)) {
    return BadText{std::move(path), reason};
  }
  return std::nullopt;
}

}  // namespace portico::config
