#include "cli/document.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "cli/yaml_writer.h"
#include "common/declarative/declarative.h"

namespace portico::cli {

absl::StatusOr<Document> parseDocument(std::string name, std::string_view text) {
  const declarative::LoadOptions limits;
  if (text.size() > limits.max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": the file is more than the limit of ",
                                                   limits.max_bytes, " bytes"));
  }
  declarative::YamlParse parsed = declarative::parseYaml(text, limits.yamlLimits());
  if (!parsed.ok) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ":", parsed.error_line, ": ", parsed.error));
  }
  Document doc;
  doc.name = std::move(name);
  doc.value = std::move(parsed.value);
  doc.lines = std::move(parsed.lines);
  return doc;
}

absl::StatusOr<Document> readDocument(const std::string& path) {
  const uint64_t limit = declarative::kMaxFileBytes;
  std::string text;
  if (path == "-") {
    char buf[1 << 16];
    size_t n;
    // Up to one byte past the limit, which parseDocument refuses.
    while (text.size() <= limit && (n = std::fread(buf, 1, sizeof(buf), stdin)) > 0) {
      text.append(buf, n);
    }
    return parseDocument("<stdin>", text);
  }
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return absl::NotFoundError("cannot read " + path);
  }
  if (S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) > limit) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": the file is ", st.st_size, " bytes, more than the limit of ", limit));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError("cannot read " + path);
  }
  char buf[1 << 16];
  while (text.size() <= limit && in.read(buf, sizeof(buf)).gcount() > 0) {
    text.append(buf, static_cast<size_t>(in.gcount()));
  }
  return parseDocument(path, text);
}

std::string placeError(const Document& doc, const std::string& pointer,
                       const std::string& message) {
  const int line = declarative::lineOf(doc.lines, pointer);
  return absl::StrCat(doc.name, ":", line, ": ", pointer.empty() ? "/" : pointer, ": ",
                      message);
}

OutputFormat outputFormatFor(const std::string& path) {
  return absl::EndsWithIgnoreCase(path, ".json") ? OutputFormat::kJson : OutputFormat::kYaml;
}

std::string render(const declarative::Json& value, OutputFormat format) {
  if (format == OutputFormat::kJson) {
    return value.dump(2, ' ', false, declarative::Json::error_handler_t::replace) + "\n";
  }
  return toYaml(value);
}

absl::Status writeOutput(const std::string& path, const std::string& text) {
  if (path == "-") {
    if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size()) {
      return absl::InternalError("cannot write to stdout");
    }
    return absl::OkStatus();
  }
  const std::string tmp = absl::StrCat(path, ".tmp-", ::getpid());
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) {
    return absl::InternalError("cannot write " + path);
  }
  const bool written = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  if (std::fclose(f) != 0 || !written || std::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return absl::InternalError("cannot write " + path);
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> takeFlag(const std::vector<std::string_view>& args, size_t* i,
                              std::initializer_list<std::string_view> names, std::string* value) {
  const std::string_view a = args[*i];
  for (std::string_view name : names) {
    if (a == name) {
      if (*i + 1 == args.size()) {
        return absl::InvalidArgumentError(std::string(name) + " needs a value");
      }
      *value = std::string(args[++*i]);
      return true;
    }
    if (a.size() > name.size() && a.substr(0, name.size()) == name && a[name.size()] == '=') {
      *value = std::string(a.substr(name.size() + 1));
      return true;
    }
  }
  return false;
}

}  // namespace portico::cli
