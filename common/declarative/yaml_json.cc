#include "common/declarative/yaml_json.h"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <istream>
#include <limits>
#include <streambuf>
#include <vector>

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/parser.h>

namespace portico::declarative {
namespace {

// Reads the caller's buffer in place (no copy of a large file into a stringstream).
class MemoryBuf : public std::streambuf {
 public:
  MemoryBuf(const char* data, size_t size) {
    char* p = const_cast<char*>(data);  // read-only: the get area is never written
    setg(p, p, p + size);
  }
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

uint64_t countNodes(const Json& v) {
  uint64_t n = 1;
  if (v.is_structured()) {
    for (const auto& e : v) {
      n += countNodes(e);
    }
  }
  return n;
}

class Builder final : public YAML::EventHandler {
 public:
  Builder(const YamlLimits& limits, LineMap* lines) : limits_(limits), lines_(lines) {}

  Json& root() { return root_; }
  int documents() const { return documents_; }

  // Interface
  void OnDocumentStart(const YAML::Mark&) override { ++documents_; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    place(mark, Json(nullptr), anchor, 1);
  }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    auto it = anchors_.find(anchor);
    if (it == anchors_.end()) {
      fail(mark, "unknown alias");
    }
    place(mark, it->second.value, 0, it->second.nodes);
  }
  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    Json v;
    if (tag == "?") {
      v = resolvePlain(value);
    } else if (tag == "!" || tag == "tag:yaml.org,2002:str") {
      v = value;
    } else if (tag == "tag:yaml.org,2002:int" || tag == "tag:yaml.org,2002:float" ||
               tag == "tag:yaml.org,2002:bool" || tag == "tag:yaml.org,2002:null") {
      v = resolvePlain(value);
    } else {
      fail(mark, "unsupported tag '" + tag + "'");
    }
    if (expecting_key()) {
      setKey(mark, value);
      if (anchor != 0) {
        anchors_[anchor] = {Json(value), 1};
      }
      return;
    }
    place(mark, std::move(v), anchor, 1);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    open(mark, Json::array(), anchor);
  }
  void OnSequenceEnd() override { close(); }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    open(mark, Json::object(), anchor);
  }
  void OnMapEnd() override {
    Frame& f = stack_.back();
    if (f.value->contains("<<")) {
      applyMerge(f);
    }
    close();
  }

 private:
  struct Frame {
    Json* value;
    size_t path_len;      // path_ length of this container
    YAML::anchor_t anchor;
    bool have_key = false;
    std::string key;
    uint64_t nodes_at_open;
  };
  struct Anchored {
    Json value;
    uint64_t nodes;
  };

  [[noreturn]] void fail(const YAML::Mark& mark, const std::string& message) {
    throw Failure{message, mark.line + 1, mark.column + 1};
  }

  bool expecting_key() const {
    return !stack_.empty() && stack_.back().value->is_object() && !stack_.back().have_key;
  }

  void setKey(const YAML::Mark& mark, const std::string& key) {
    Frame& f = stack_.back();
    if (f.value->contains(key)) {
      fail(mark, "duplicate key '" + key + "'");
    }
    f.key = key;
    f.have_key = true;
  }

  void count(const YAML::Mark& mark, uint64_t n) {
    nodes_ += n;
    if (nodes_ > limits_.max_nodes) {
      fail(mark, "the document expands to more than " + std::to_string(limits_.max_nodes) +
                     " values (aliases included)");
    }
  }

  // Puts a finished value in its place; returns where it went.
  Json* place(const YAML::Mark& mark, Json v, YAML::anchor_t anchor, uint64_t nodes) {
    if (expecting_key()) {
      fail(mark, "only scalar keys are supported");
    }
    count(mark, nodes);
    if (anchor != 0) {
      anchors_[anchor] = {v, nodes};
    }
    if (stack_.empty()) {
      root_ = std::move(v);
      (*lines_)[""] = mark.line + 1;
      return &root_;
    }
    Frame& f = stack_.back();
    path_.resize(f.path_len);
    Json* slot;
    if (f.value->is_array()) {
      path_ += '/';
      path_ += std::to_string(f.value->size());
      f.value->push_back(std::move(v));
      slot = &f.value->back();
    } else {
      path_ += '/';
      path_ += pointerSegment(f.key);
      slot = &(*f.value)[f.key];
      *slot = std::move(v);
      f.have_key = false;
    }
    (*lines_)[path_] = mark.line + 1;
    return slot;
  }

  void open(const YAML::Mark& mark, Json empty, YAML::anchor_t anchor) {
    if (static_cast<int>(stack_.size()) >= limits_.max_depth) {
      fail(mark, "nesting deeper than " + std::to_string(limits_.max_depth) + " levels");
    }
    Json* slot = place(mark, std::move(empty), 0, 1);
    stack_.push_back(Frame{slot, stack_.empty() ? 0 : path_.size(), anchor, false, {}, nodes_});
    if (stack_.size() == 1) {
      path_.clear();
      stack_.back().path_len = 0;
    }
  }

  void close() {
    Frame f = std::move(stack_.back());
    stack_.pop_back();
    if (f.anchor != 0) {
      anchors_[f.anchor] = {*f.value, nodes_ - f.nodes_at_open + 1};
    }
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
  absl::flat_hash_map<YAML::anchor_t, Anchored> anchors_;
  uint64_t nodes_ = 0;
  int documents_ = 0;
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
    auto it = lines.find(path);
    if (it != lines.end()) {
      return it->second;
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
  MemoryBuf buf(text.data(), text.size());
  std::istream in(&buf);
  Builder builder(limits, &out.lines);
  try {
    YAML::Parser parser(in);
    if (!parser.HandleNextDocument(builder)) {
      out.error = "the file is empty";
      out.error_line = 1;
      return out;
    }
    Builder second(limits, &out.lines);
    if (parser.HandleNextDocument(second)) {
      out.error = "more than one YAML document";
      out.error_line = 1;
      return out;
    }
  } catch (const Failure& f) {
    out.error = "line " + std::to_string(f.line) + ", column " + std::to_string(f.column) +
                ": " + f.message;
    out.error_line = f.line;
    return out;
  } catch (const YAML::Exception& e) {
    out.error = "line " + std::to_string(e.mark.line + 1) + ", column " +
                std::to_string(e.mark.column + 1) + ": " + e.msg;
    out.error_line = e.mark.line + 1;
    return out;
  }
  out.value = std::move(builder.root());
  out.ok = true;
  return out;
}

}  // namespace portico::declarative
