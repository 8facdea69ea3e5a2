#include "data_plane/plugins/request_transformer/template.h"

namespace portico::dp::plugins::request_transformer {
namespace {

bool isSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool isIdentStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool isIdent(char c) { return isIdentStart(c) || (c >= '0' && c <= '9'); }

std::string_view trim(std::string_view s) {
  while (!s.empty() && isSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && isSpace(s.back())) s.remove_suffix(1);
  return s;
}

constexpr std::string_view kSupported =
    "only $(headers.<name>), $(query_params.<name>), $(uri_captures.<name>), "
    "$(uri_captures[<n>]) and $(shared.<name>) (or ['<name>']) are supported by this data plane";

// One reference expression: `source.name`, `source['name']`, `source["name"]`, `source[n]`.
bool parseExpression(std::string_view expr, TemplatePart* out) {
  expr = trim(expr);
  size_t i = 0;
  while (i < expr.size() && isIdent(expr[i])) ++i;
  const std::string_view ident = expr.substr(0, i);
  if (ident == "headers") {
    out->source = Source::kHeaders;
  } else if (ident == "query_params") {
    out->source = Source::kQueryParams;
  } else if (ident == "uri_captures") {
    out->source = Source::kUriCaptures;
  } else if (ident == "shared") {
    out->source = Source::kShared;
  } else {
    return false;
  }
  std::string_view rest = trim(expr.substr(i));
  if (rest.empty()) {
    return false;
  }
  out->literal = false;
  if (rest.front() == '.') {
    rest = trim(rest.substr(1));
    if (rest.empty() || !isIdentStart(rest.front())) {
      return false;
    }
    for (char c : rest) {
      if (!isIdent(c)) return false;
    }
    out->text.assign(rest);
    return true;
  }
  if (rest.front() != '[' || rest.back() != ']') {
    return false;
  }
  std::string_view key = trim(rest.substr(1, rest.size() - 2));
  if (key.size() >= 2 && (key.front() == '\'' || key.front() == '"') && key.back() == key.front()) {
    key = key.substr(1, key.size() - 2);
    for (char c : key) {
      if (c == '\\' || c == '\'' || c == '"' || c == '\n') return false;  // no escapes
    }
    out->text.assign(key);
    return true;
  }
  if (key.empty() || key.size() > 9) {
    return false;
  }
  for (char c : key) {
    if (c < '0' || c > '9') return false;
  }
  out->numeric = true;
  out->text.assign(key);
  return true;
}

}  // namespace

std::string parseTemplate(std::string_view value, Template* out) {
  out->parts.clear();
  std::string literal;
  size_t pos = 0;
  while (pos < value.size()) {
    const size_t dollar = value.find("$(", pos);
    if (dollar == std::string_view::npos) {
      break;
    }
    // Lua's %b(): the parenthesis opened after '$' and its balanced close.
    int depth = 0;
    size_t end = std::string_view::npos;
    for (size_t i = dollar + 1; i < value.size(); ++i) {
      if (value[i] == '(') {
        ++depth;
      } else if (value[i] == ')' && --depth == 0) {
        end = i;
        break;
      }
    }
    if (end == std::string_view::npos) {
      break;  // unbalanced: the rest is literal text
    }
    literal.append(value.substr(pos, dollar - pos));
    TemplatePart ref;
    if (!parseExpression(value.substr(dollar + 2, end - dollar - 2), &ref)) {
      return std::string(kSupported);
    }
    if (!literal.empty()) {
      out->parts.push_back(TemplatePart{true, std::move(literal), Source::kHeaders, false});
      literal.clear();
    }
    out->parts.push_back(std::move(ref));
    pos = end + 1;
  }
  literal.append(value.substr(pos));
  if (!literal.empty() || out->parts.empty()) {
    out->parts.push_back(TemplatePart{true, std::move(literal), Source::kHeaders, false});
  }
  return "";
}

std::string templateCheck(std::string_view value) {
  Template t;
  std::string why = parseTemplate(value, &t);
  if (why.empty()) {
    return "";
  }
  std::string msg = "value '";
  msg.append(value).append("' is not in supported format, error:").append(why);
  return msg;
}

}  // namespace portico::dp::plugins::request_transformer
