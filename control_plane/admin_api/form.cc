#include "control_plane/admin_api/form.h"

#include <algorithm>
#include <cctype>
#include <vector>

#include "common/config/json_limits.h"

namespace portico::cp {
namespace {

using config::Json;

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Sets `value` at a form key: dotted keys build records, `a[]` appends, `a[2]` indexes and a
// repeated plain key turns into an array (Kong's Admin API form handling).
bool setFormValue(Json& root, const std::string& key, const std::string& value) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    const size_t dot = key.find('.', start);
    parts.push_back(key.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) {
      break;
    }
    start = dot + 1;
  }
  Json* node = &root;
  for (size_t i = 0; i < parts.size(); ++i) {
    std::string part = parts[i];
    const bool last = i + 1 == parts.size();
    std::optional<size_t> index;
    bool append = false;
    if (const size_t br = part.find('['); br != std::string::npos && part.back() == ']') {
      const std::string inner = part.substr(br + 1, part.size() - br - 2);
      part = part.substr(0, br);
      if (inner.empty()) {
        append = true;
      } else if (std::all_of(inner.begin(), inner.end(), ::isdigit)) {
        if (inner.size() > 6 || std::stoul(inner) > kMaxFormIndex) {
          return false;
        }
        index = std::stoul(inner);
      }
    }
    if (!node->is_object()) {
      *node = Json::object();
    }
    Json& slot = (*node)[part];
    if (append || index) {
      if (!slot.is_array()) {
        slot = Json::array();
      }
      if (append) {
        slot.push_back(last ? Json(value) : Json::object());
        node = &slot.back();
      } else {
        const size_t idx = *index > 0 ? *index - 1 : 0;
        while (slot.size() <= idx) {
          slot.push_back(nullptr);
        }
        if (last) {
          slot[idx] = value;
        }
        node = &slot[idx];
      }
      continue;
    }
    if (last) {
      if (slot.is_null()) {
        slot = value;
      } else if (slot.is_array()) {
        slot.push_back(value);
      } else {
        slot = Json::array({slot, value});
      }
    }
    node = &slot;
  }
  return true;
}

}  // namespace

std::string urlDecode(std::string_view in, bool plus_is_space) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size() && hexValue(in[i + 1]) >= 0 &&
        hexValue(in[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hexValue(in[i + 1]) * 16 + hexValue(in[i + 2])));
      i += 2;
    } else if (plus_is_space && in[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(in[i]);
    }
  }
  return out;
}

std::optional<Json> parseKongForm(const std::string& body, std::string* error) {
  Json out = Json::object();
  size_t pos = 0;
  while (pos <= body.size()) {
    size_t amp = body.find('&', pos);
    if (amp == std::string::npos) {
      amp = body.size();
    }
    const std::string pair = body.substr(pos, amp - pos);
    if (!pair.empty()) {
      const size_t eq = pair.find('=');
      const std::string key = urlDecode(pair.substr(0, eq), true);
      // "a.b.c" and "a[1]" nest: the same depth limit as JSON bodies.
      if (std::count(key.begin(), key.end(), '.') + std::count(key.begin(), key.end(), '[') >=
          config::kMaxJsonDepth) {
        *error = "nested deeper than " + std::to_string(config::kMaxJsonDepth) + " levels";
        return std::nullopt;
      }
      if (!setFormValue(out, key,
                        eq == std::string::npos ? "" : urlDecode(pair.substr(eq + 1), true))) {
        *error = "array index above " + std::to_string(kMaxFormIndex);
        return std::nullopt;
      }
    }
    pos = amp + 1;
  }
  return out;
}

}  // namespace portico::cp
