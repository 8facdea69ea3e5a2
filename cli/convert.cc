#include "cli/convert.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/declarative/declarative.h"

namespace portico::cli {
namespace {

using Json = declarative::Json;

constexpr char kFrom[] = "kong-gateway-2.x";
constexpr char kTo[] = "kong-gateway-3.x";

absl::Status migrateRoutes(const Document& doc, Json* routes, const std::string& pointer,
                           ConvertReport* report) {
  if (routes == nullptr || routes->is_null()) {
    return absl::OkStatus();
  }
  if (!routes->is_array()) {
    return absl::InvalidArgumentError(placeError(doc, pointer, "expected a list of routes"));
  }
  for (size_t i = 0; i < routes->size(); ++i) {
    Json& route = (*routes)[i];
    if (!route.is_object() || !route.contains("paths") || !route["paths"].is_array()) {
      continue;
    }
    bool changed = false;
    for (Json& path : route["paths"]) {
      if (path.is_string()) {
        std::string& p = path.get_ref<std::string&>();
        if (p.rfind("~/", 0) != 0 && isRegexLikePath(p)) {
          p = "~" + p;
          changed = true;
        }
      }
    }
    if (changed) {
      const Json* key = route.contains("id") && route["id"].is_string()       ? &route["id"]
                        : route.contains("name") && route["name"].is_string() ? &route["name"]
                                                                              : nullptr;
      report->changed_routes.push_back(key ? key->get<std::string>()
                                           : absl::StrCat(pointer, "/", i));
    }
  }
  return absl::OkStatus();
}

}  // namespace

bool isRegexLikePath(std::string_view path) {
  for (char c : path) {
    const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       c == '.' || c == '_' || c == '~' || c == '/' || c == '%' || c == '-';
    if (!plain) {
      return true;
    }
  }
  return false;
}

absl::StatusOr<Json> convertKong2xTo3x(const Document& input, ConvertReport* report) {
  if (!input.value.is_object()) {
    return absl::InvalidArgumentError(placeError(input, "", "a declarative file is a map"));
  }
  Json out = input.value;
  if (const auto it = out.find("_format_version"); it != out.end()) {
    report->old_format_version = it->is_string() ? it->get<std::string>() : it->dump();
  }
  if (Json* services = out.contains("services") ? &out["services"] : nullptr;
      services != nullptr && !services->is_null()) {
    if (!services->is_array()) {
      return absl::InvalidArgumentError(
          placeError(input, "/services", "expected a list of services"));
    }
    for (size_t i = 0; i < services->size(); ++i) {
      Json& service = (*services)[i];
      if (service.is_object() && service.contains("routes")) {
        const absl::Status st = migrateRoutes(input, &service["routes"],
                                              absl::StrCat("/services/", i, "/routes"), report);
        if (!st.ok()) {
          return st;
        }
      }
    }
  }
  if (out.contains("routes")) {
    const absl::Status st = migrateRoutes(input, &out["routes"], "/routes", report);
    if (!st.ok()) {
      return st;
    }
  }
  out["_format_version"] = "3.0";
  return out;
}

absl::StatusOr<ConvertOptions> parseConvertArgs(const std::vector<std::string_view>& args) {
  ConvertOptions o;
  for (size_t i = 0; i < args.size(); ++i) {
    bool taken = false;
    for (auto [flag, field] : {std::pair{"--from", &o.from}, std::pair{"--to", &o.to},
                               std::pair{"--input-file", &o.input},
                               std::pair{"--output-file", &o.output},
                               std::pair{"--format", &o.format}}) {
      absl::StatusOr<bool> t = takeFlag(args, &i, {flag}, field);
      if (!t.ok()) {
        return absl::InvalidArgumentError("convert: " + std::string(t.status().message()));
      }
      if (*t) {
        taken = true;
        break;
      }
    }
    if (!taken) {
      return absl::InvalidArgumentError("convert: unknown option '" + std::string(args[i]) + "'");
    }
  }
  return o;
}

int runConvert(const ConvertOptions& options, FILE* err) {
  if (options.from != kFrom || options.to != kTo) {
    std::fprintf(err,
                 "porticoctl convert: cannot convert from '%s' to '%s' (porticoctl converts "
                 "--from %s --to %s)\n",
                 options.from.c_str(), options.to.c_str(), kFrom, kTo);
    return 1;
  }
  if (options.input.empty()) {
    std::fprintf(err, "porticoctl convert: give the file with --input-file (- for stdin)\n");
    return 1;
  }
  if (!options.format.empty() && options.format != "yaml" && options.format != "json") {
    std::fprintf(err, "porticoctl convert: --format is yaml or json, not '%s'\n",
                 options.format.c_str());
    return 1;
  }
  absl::StatusOr<Document> doc = readDocument(options.input);
  if (!doc.ok()) {
    std::fprintf(err, "porticoctl convert: %s\n", std::string(doc.status().message()).c_str());
    return 1;
  }
  ConvertReport report;
  absl::StatusOr<Json> out = convertKong2xTo3x(*doc, &report);
  if (!out.ok()) {
    std::fprintf(err, "porticoctl convert: %s\n", std::string(out.status().message()).c_str());
    return 1;
  }
  if (!report.changed_routes.empty()) {
    const size_t total = report.changed_routes.size();
    std::vector<std::string> sample(report.changed_routes.begin(),
                                    report.changed_routes.begin() +
                                        static_cast<std::ptrdiff_t>(std::min<size_t>(total, 10)));
    std::fprintf(err,
                 "%s: %zu route(s) had regex paths without the '~' prefix Kong 3.x requires; "
                 "it was added. Among them:\n  %s\n",
                 doc->name.c_str(), total, absl::StrJoin(sample, "\n  ").c_str());
  }
  std::fprintf(err, "%s: _format_version '%s' -> '3.0'\n", doc->name.c_str(),
               report.old_format_version.c_str());
  std::fprintf(err,
               "These automatic changes may not be all the upgrade needs: review the file "
               "before applying it.\n");
  const OutputFormat format = options.format == "json"   ? OutputFormat::kJson
                              : options.format == "yaml" ? OutputFormat::kYaml
                                                         : outputFormatFor(options.output);
  const std::string text = render(*out, format);
  const declarative::LoadResult check = declarative::loadDeclarative(text);
  if (!check.ok()) {
    std::fprintf(err, "porticoctl convert: warning: Portico does not load the converted file:\n%s",
                 check.describe(options.output == "-" ? "<output>" : options.output, 20).c_str());
  }
  if (absl::Status st = writeOutput(options.output, text); !st.ok()) {
    std::fprintf(err, "porticoctl convert: %s\n", std::string(st.message()).c_str());
    return 1;
  }
  return 0;
}

}  // namespace portico::cli
