#include "common/declarative/yaml_json.h"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <vector>

#include <yaml.h>

namespace portico::declarative {
namespace {

struct Mark {
  int line;    // 0-based
  int column;  // 0-based
};

struct Failure {
  std::string message;
  int line;
  int column;
};

bool isDigits(std::string_view s, size_t from, const char* set) {
  if (from >= s.size()) {
    return false;
  }
  for (size_t i = from; i < s.size(); ++i) {
    if (std::string_view(set).find(s[i]) == std::string_view::npos) {
      return false;
    }
  }
  return true;
}

// YAML 1.2 core schema resolution of a plain scalar.
Json resolvePlain(const std::string& s) {
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") {
    return nullptr;
  }
  if (s == "true" || s == "True" || s == "TRUE") {
    return true;
  }
  if (s == "false" || s == "False" || s == "FALSE") {
    return false;
  }
  const size_t sign = (s[0] == '-' || s[0] == '+') ? 1 : 0;
  if (isDigits(s, sign, "0123456789")) {
    errno = 0;
    char* end = nullptr;
    const long long v = std::strtoll(s.c_str(), &end, 10);
    if (errno == 0 && *end == '\0') {
      return static_cast<int64_t>(v);
    }
    return std::strtod(s.c_str(), nullptr);  // past int64: a float, as Lua would hold it
  }
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o')) {
    const bool hex = s[1] == 'x';
    if (isDigits(s, 2, hex ? "0123456789abcdefABCDEF" : "01234567")) {
      errno = 0;
      const unsigned long long v = std::strtoull(s.c_str() + 2, nullptr, hex ? 16 : 8);
      if (errno == 0 && v <= static_cast<unsigned long long>(std::numeric_limits<int64_t>::max())) {
        return static_cast<int64_t>(v);
      }
    }
    return s;
  }
  const std::string_view body = std::string_view(s).substr(sign);
  if (body == ".inf" || body == ".Inf" || body == ".INF") {
    // JSON cannot hold infinity; keep the text so a schema reports a type error on it.
    return s;
  }
  if (body == ".nan" || body == ".NaN" || body == ".NAN") {
    return s;
  }
  // [-+]? ( \.[0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
  size_t i = sign;
  size_t digits = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
    ++i;
    ++digits;
  }
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
      ++i;
      ++digits;
    }
  }
  if (digits == 0) {
    return s;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) {
      ++i;
    }
    size_t exp = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
      ++i;
      ++exp;
    }
    if (exp == 0) {
      return s;
    }
  }
  if (i != s.size()) {
    return s;
  }
  const double d = std::strtod(s.c_str(), nullptr);
  if (!std::isfinite(d)) {
    return s;
  }
  return d;
}

// Builds the JSON value from libyaml's events.
class Builder {
 public:
  Builder(const YamlLimits& limits, LineMap* lines) : limits_(limits), lines_(lines) {}

  Json& root() { return root_; }

  void onScalar(const Mark& mark, const char* tag, const char* anchor, std::string value,
                bool plain) {
    if (expectingKey()) {
      setKey(mark, value);
      if (anchor != nullptr) {
        anchors_[anchor] = {Json(std::move(value)), 1};
      }
      return;
    }
    Json v;
    const std::string_view t = tag != nullptr ? tag : "";
    if (t.empty() || t == "!") {
      v = plain && t.empty() ? resolvePlain(value) : Json(std::move(value));
    } else if (t == "tag:yaml.org,2002:str") {
      v = std::move(value);
    } else if (t == "tag:yaml.org,2002:int" || t == "tag:yaml.org,2002:float" ||
               t == "tag:yaml.org,2002:bool" || t == "tag:yaml.org,2002:null") {
      v = resolvePlain(value);
    } else {
      fail(mark, "unsupported tag '" + std::string(t) + "'");
    }
    place(mark, std::move(v), anchor, 1);
  }
  void onAlias(const Mark& mark, const char* anchor) {
    auto it = anchors_.find(anchor);
    if (it == anchors_.end()) {
      fail(mark, "unknown alias '" + std::string(anchor) + "'");
    }
    if (expectingKey()) {
      if (!it->second.value.is_string()) {
        fail(mark, "only scalar keys are supported");
      }
      setKey(mark, it->second.value.get<std::string>());
      return;
    }
    place(mark, it->second.value, nullptr, it->second.nodes);
    alias_nodes_ += it->second.nodes;
    const uint64_t own = nodes_ - alias_nodes_;
    if (limits_.max_alias_ratio != 0 && alias_nodes_ > kAliasValuesFloor &&
        alias_nodes_ / limits_.max_alias_ratio > own) {
      fail(mark, "aliases expand the document's " + std::to_string(own) + " values more than " +
                     std::to_string(limits_.max_alias_ratio) + " times (" +
                     std::to_string(nodes_) + " values (aliases included))");
    }
  }
  void onStart(const Mark& mark, const char* anchor, bool map) {
    if (static_cast<int>(stack_.size()) >= limits_.max_depth) {
      fail(mark, "nesting deeper than " + std::to_string(limits_.max_depth) + " levels");
    }
    Json* slot = place(mark, map ? Json::object() : Json::array(), nullptr, 1);
    stack_.push_back(Frame{slot, stack_.empty() ? 0 : path_.size(),
                           anchor != nullptr ? std::string(anchor) : std::string(), false, {},
                           nodes_});
  }
  void onEnd() {
    Frame& f = stack_.back();
    if (f.value->is_object() && f.value->contains("<<")) {
      applyMerge(f);
    }
    if (!f.anchor.empty()) {
      anchors_[f.anchor] = {*f.value, nodes_ - f.nodes_at_open + 1};
    }
    stack_.pop_back();
  }

 private:
  struct Frame {
    Json* value;
    size_t path_len;  // path_'s length for this container
    std::string anchor;
    bool have_key;
    std::string key;
    uint64_t nodes_at_open;
  };
  struct Anchored {
    Json value;
    uint64_t nodes;
  };

  [[noreturn]] void fail(const Mark& mark, const std::string& message) {
    throw Failure{message, mark.line + 1, mark.column + 1};
  }

  bool expectingKey() const {
    return !stack_.empty() && stack_.back().value->is_object() && !stack_.back().have_key;
  }

  void setKey(const Mark& mark, const std::string& key) {
    Frame& f = stack_.back();
    if (key != "<<" && f.value->contains(key)) {
      fail(mark, "duplicate key '" + key + "'");
    }
    f.key = key;
    f.have_key = true;
  }

  // Puts a finished value in its place; returns where it went.
  Json* place(const Mark& mark, Json v, const char* anchor, uint64_t nodes) {
    if (expectingKey()) {
      fail(mark, "only scalar keys are supported");
    }
    nodes_ += nodes;
    if (nodes_ > limits_.max_nodes) {
      fail(mark, "the document expands to more than " + std::to_string(limits_.max_nodes) +
                     " values (aliases included)");
    }
    if (anchor != nullptr) {
      anchors_[anchor] = {v, nodes};
    }
    if (stack_.empty()) {
      root_ = std::move(v);
      lines_->set("", mark.line + 1);
      return &root_;
    }
    Frame& f = stack_.back();
    path_.resize(f.path_len);
    path_ += '/';
    Json* slot;
    if (f.value->is_array()) {
      path_ += std::to_string(f.value->size());
      f.value->push_back(std::move(v));
      slot = &f.value->back();
    } else {
      path_ += pointerSegment(f.key);
      slot = &(*f.value)[f.key];
      *slot = std::move(v);
      f.have_key = false;
    }
    lines_->set(path_, mark.line + 1);
    return slot;
  }

  // YAML 1.1 merge keys: `<<: *base` or `<<: [*a, *b]`; keys already present win, and earlier
  // maps in a list win over later ones.
  void applyMerge(Frame& f) {
    Json merged = std::move((*f.value)["<<"]);
    f.value->erase("<<");
    std::vector<const Json*> sources;
    if (merged.is_object()) {
      sources.push_back(&merged);
    } else if (merged.is_array()) {
      for (const auto& m : merged) {
        if (m.is_object()) {
          sources.push_back(&m);
        }
      }
    }
    for (const Json* src : sources) {
      for (auto it = src->begin(); it != src->end(); ++it) {
        if (!f.value->contains(it.key())) {
          (*f.value)[it.key()] = it.value();
        }
      }
    }
  }

  const YamlLimits& limits_;
  LineMap* lines_;
  Json root_;
  std::vector<Frame> stack_;
  std::string path_;
  absl::flat_hash_map<std::string, Anchored> anchors_;
  uint64_t nodes_ = 0;
  uint64_t alias_nodes_ = 0;  // of nodes_, the values aliases added
};

// libyaml's parser and its current event, released on every path out.
struct Parser {
  yaml_parser_t parser;
  yaml_event_t event;
  bool has_event = false;
  Parser() { yaml_parser_initialize(&parser); }
  ~Parser() {
    if (has_event) {
      yaml_event_delete(&event);
    }
    yaml_parser_delete(&parser);
  }
};

}  // namespace

std::string pointerSegment(std::string_view key) {
  std::string out;
  out.reserve(key.size());
  for (char c : key) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
  return out;
}

int lineOf(const LineMap& lines, std::string path) {
  while (true) {
    if (int line = lines.find(path); line > 0) {
      return line;
    }
    if (path.empty()) {
      return 0;
    }
    const size_t slash = path.rfind('/');
    path.resize(slash == std::string::npos ? 0 : slash);
  }
}

YamlParse parseYaml(std::string_view text, const YamlLimits& limits) {
  YamlParse out;
  out.lines.reserve(text.size() / 16);  // about one value per 10-20 bytes of YAML
  Builder builder(limits, &out.lines);
  Parser p;
  yaml_parser_set_input_string(&p.parser, reinterpret_cast<const unsigned char*>(text.data()),
                               text.size());
  int documents = 0;
  try {
    while (true) {
      if (!yaml_parser_parse(&p.parser, &p.event)) {
        const yaml_mark_t& m = p.parser.problem_mark;
        throw Failure{std::string(p.parser.problem != nullptr ? p.parser.problem : "invalid YAML") +
                          (p.parser.context != nullptr
                               ? std::string(" ") + p.parser.context
                               : std::string()),
                      static_cast<int>(m.line) + 1, static_cast<int>(m.column) + 1};
      }
      p.has_event = true;
      const yaml_event_t& e = p.event;
      const Mark mark{static_cast<int>(e.start_mark.line), static_cast<int>(e.start_mark.column)};
      bool done = false;
      switch (e.type) {
        case YAML_DOCUMENT_START_EVENT:
          if (++documents > 1) {
            throw Failure{"more than one YAML document", mark.line + 1, mark.column + 1};
          }
          break;
        case YAML_SCALAR_EVENT:
          builder.onScalar(mark, reinterpret_cast<const char*>(e.data.scalar.tag),
                           reinterpret_cast<const char*>(e.data.scalar.anchor),
                           std::string(reinterpret_cast<const char*>(e.data.scalar.value),
                                       e.data.scalar.length),
                           e.data.scalar.style == YAML_PLAIN_SCALAR_STYLE);
          break;
        case YAML_ALIAS_EVENT:
          builder.onAlias(mark, reinterpret_cast<const char*>(e.data.alias.anchor));
          break;
        case YAML_SEQUENCE_START_EVENT:
          builder.onStart(mark, reinterpret_cast<const char*>(e.data.sequence_start.anchor),
                          false);
          break;
        case YAML_MAPPING_START_EVENT:
          builder.onStart(mark, reinterpret_cast<const char*>(e.data.mapping_start.anchor), true);
          break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
          builder.onEnd();
          break;
        case YAML_STREAM_END_EVENT:
          done = true;
          break;
        default:
          break;
      }
      yaml_event_delete(&p.event);
      p.has_event = false;
      if (done) {
        break;
      }
    }
  } catch (const Failure& f) {
    out.error = "line " + std::to_string(f.line) + ", column " + std::to_string(f.column) +
                ": " + f.message;
    out.error_line = f.line;
    return out;
  }
  if (documents == 0) {
    out.error = "the file is empty";
    out.error_line = 1;
    return out;
  }
  out.value = std::move(builder.root());
  out.ok = true;
  return out;
}

}  // namespace portico::declarative
