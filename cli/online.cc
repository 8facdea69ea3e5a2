#include "cli/online.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>

#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/http_client.h"
#include "cli/online_state.h"
#include "cli/yaml_writer.h"

namespace portico::cli {
namespace {

using namespace online;  // NOLINT: this file is the one user of online_state.h

void printSummary(FILE* out, size_t created, size_t updated, size_t deleted) {
  std::fprintf(out, "Summary:\n  Created: %zu\n  Updated: %zu\n  Deleted: %zu\n", created,
               updated, deleted);
}

// The collection an entity is created in (POST) and, with its id, its own path.
std::string collectionPath(const Admin& admin, const Op& op) {
  const TypeInfo& ti = kTypes[op.type];
  if (std::string_view(ti.type) == "targets") {
    return admin.prefix() + "/upstreams/" + uriEscape(op.parent_id) + "/targets";
  }
  return admin.prefix() + "/" + ti.path;
}

std::string entityPath(const Admin& admin, const Op& op) {
  return collectionPath(admin, op) + "/" + uriEscape(op.id);
}

// Applies the plan phase by phase (a phase's ops run concurrently); stops after a phase
// with a failure, since later phases depend on it. Returns the number of failures.
size_t applyPlan(Admin& admin, const Plan& plan, bool selected, FILE* out, FILE* err,
                 size_t* done_counts) {
  std::mutex mu;
  size_t failures = 0;
  size_t begin = 0;
  while (begin < plan.ops.size()) {
    const int phase = phaseOf(plan.ops[begin]);
    size_t end = begin;
    while (end < plan.ops.size() && phaseOf(plan.ops[end]) == phase) {
      ++end;
    }
    std::vector<uint8_t> outcome(end - begin, 0);  // 0 running, 1 done, 2 failed
    std::vector<std::string> problems(end - begin);
    size_t printed = 0;
    admin.parallelFor(end - begin, [&](HttpClient& c, size_t k) {
      const Op& op = plan.ops[begin + k];
      // Creates POST with the planned id (the Admin API then skips PUT's lookup of an
      // existing entity; a replayed POST with the same id is recognised by the CP); updates
      // PUT the whole entity.
      absl::StatusOr<HttpResponse> r;
      if (op.kind == Op::kDelete) {
        r = c.request("DELETE", entityPath(admin, op));
      } else if (op.kind == Op::kCreate) {
        r = c.request("POST", collectionPath(admin, op), op.body.dump());
      } else {
        r = c.request("PUT", entityPath(admin, op), op.body.dump());
      }
      std::string problem;
      if (!r.ok()) {
        problem = std::string(r.status().message());
      } else if (op.kind == Op::kDelete ? (r->status != 204 && r->status != 404 &&
                                           r->status != 200)
                                        : (r->status != 200 && r->status != 201)) {
        problem = describeAnswer(*r);
        if (selected && op.kind == Op::kCreate &&
            problem.find("violation") != std::string::npos) {
          problem += " (an entity with this id or name exists without the select tags: "
                     "another team's, or one to tag first)";
        }
      }
      std::lock_guard<std::mutex> lock(mu);
      outcome[k] = problem.empty() ? 1 : 2;
      if (!problem.empty()) {
        problems[k] = std::move(problem);
      }
      // Lines come out in plan order (stable output), each as soon as every op before it in
      // the phase finished.
      for (; printed < outcome.size() && outcome[printed] != 0; ++printed) {
        const Op& p = plan.ops[begin + printed];
        if (outcome[printed] == 1) {
          ++done_counts[p.kind];
          std::fprintf(out, "%s\n", opLine(p).c_str());
        } else {
          ++failures;
          std::fprintf(err, "Error: %s: %s\n", opLine(p).c_str(), problems[printed].c_str());
        }
      }
    });
    std::fflush(out);
    if (failures > 0) {
      return failures;
    }
    begin = end;
  }
  return failures;
}

// ---------------------------------------------------------------------------------------------
// Commands

std::optional<Admin> connect(const OnlineOptions& o, FILE* err) {
  absl::StatusOr<HttpEndpoint> ep = parseHttpUrl(o.kong_addr);
  if (!ep.ok()) {
    std::fprintf(err, "porticoctl: --kong-addr %s\n", std::string(ep.status().message()).c_str());
    return std::nullopt;
  }
  HttpOptions ho;
  ho.headers = o.headers;
  ho.io_timeout_ms = o.timeout_s * 1000;
  ho.connect_timeout_ms = std::min(ho.io_timeout_ms, 10000);
  std::string prefix;
  if (!o.control_plane.empty()) {
    prefix = "/control-planes/" + uriEscape(o.control_plane);
  }
  return std::optional<Admin>(std::in_place, *ep, ho, prefix, o.parallelism);
}

// GET / (and the control plane when one is named): the error line for an unreachable or
// refusing Admin API, or "" and the root answer in *root.
std::string checkReachable(Admin& admin, const OnlineOptions& o, Json* root) {
  absl::StatusOr<HttpResponse> r = admin.client(0).request("GET", "/");
  if (!r.ok()) {
    return absl::StrCat("cannot reach the Admin API at ", o.kong_addr, ": ",
                        r.status().message());
  }
  if (r->status != 200) {
    return absl::StrCat("GET ", o.kong_addr, "/: ", describeAnswer(*r));
  }
  *root = Json::parse(r->body, nullptr, false);
  if (!root->is_object()) {
    return absl::StrCat(o.kong_addr, " did not answer GET / as Kong's Admin API does");
  }
  if (!o.control_plane.empty()) {
    absl::StatusOr<HttpResponse> g = admin.client(0).request("GET", admin.prefix());
    if (!g.ok()) {
      return std::string(g.status().message());
    }
    if (g->status == 404) {
      return "control plane '" + o.control_plane + "' not found";
    }
    if (g->status != 200) {
      return absl::StrCat("GET ", admin.prefix(), ": ", describeAnswer(*g));
    }
  }
  return "";
}

// Loads the desired state and the current one and compares them.
std::optional<Plan> planFor(const OnlineOptions& o, Admin& admin, FILE* err) {
  StepTimer timer;
  if (o.states.empty()) {
    std::fprintf(err, "porticoctl: give the desired state with -s/--state FILE\n");
    return std::nullopt;
  }
  // The current state is read while the files load: the fetch mostly waits for the CP.
  std::thread fetcher;
  std::optional<absl::StatusOr<EntitySet>> current;
  std::string unreachable;
  std::optional<Desired> desired =
      loadDesired(o, err, [&](const std::vector<std::string>& tags) {
        fetcher = std::thread([&admin, &o, &current, &unreachable, tags] {
          Json root;
          unreachable = checkReachable(admin, o, &root);
          if (unreachable.empty()) {
            current = fetchCurrent(admin, tags);
          }
        });
      });
  if (fetcher.joinable()) {
    fetcher.join();
  }
  if (!desired) {
    return std::nullopt;
  }
  timer.step("load files and fetch current");
  if (!unreachable.empty()) {
    std::fprintf(err, "Error: %s\n", unreachable.c_str());
    return std::nullopt;
  }
  if (!current->ok()) {
    std::fprintf(err, "Error: reading the current configuration: %s\n",
                 std::string(current->status().message()).c_str());
    return std::nullopt;
  }
  Plan plan = makePlan(*desired, **current);
  plan.select_tags = desired->select_tags;
  sortPlan(&plan);
  timer.step("plan");
  // Left allocated on purpose: the command ends right after, and freeing some 20,000 JSON
  // trees took 80 ms of a 10,000-route diff's 640.
  (void)new std::optional<Desired>(std::move(desired));
  (void)new std::optional<absl::StatusOr<EntitySet>>(std::move(current));
  return plan;
}

// Removes null fields (recursively in records) for a readable dump.
void dropNulls(Json& j) {
  if (!j.is_object()) {
    return;
  }
  for (auto it = j.begin(); it != j.end();) {
    if (it->is_null()) {
      it = j.erase(it);
    } else {
      dropNulls(*it);
      ++it;
    }
  }
}

}  // namespace

std::string parseOnlineArgs(std::string_view command, const std::vector<std::string_view>& args,
                            OnlineOptions* o) {
  if (const char* env = std::getenv("PORTICO_ADDR"); env != nullptr && *env != '\0') {
    o->kong_addr = env;
  } else {
    o->kong_addr = kDefaultKongAddr;
  }
  const bool takes_state = command == "diff" || command == "sync";
  for (size_t i = 0; i < args.size(); ++i) {
    std::string_view a = args[i];
    std::string_view value;
    bool has_value = false;
    if (a.rfind("--", 0) == 0) {
      if (const size_t eq = a.find('='); eq != std::string_view::npos) {
        value = a.substr(eq + 1);
        a = a.substr(0, eq);
        has_value = true;
      }
    }
    const auto need = [&](std::string* err) -> bool {
      if (has_value) {
        return true;
      }
      if (i + 1 == args.size()) {
        *err = std::string(a) + " needs a value";
        return false;
      }
      value = args[++i];
      return true;
    };
    std::string err;
    if (takes_state && (a == "-s" || a == "--state")) {
      if (!need(&err)) {
        return err;
      }
      o->states.emplace_back(value);
    } else if (a == "--kong-addr") {
      if (!need(&err)) {
        return err;
      }
      o->kong_addr = std::string(value);
    } else if (a == "--headers" || a == "-H") {
      if (!need(&err)) {
        return err;
      }
      const size_t colon = value.find(':');
      if (colon == std::string_view::npos || colon == 0) {
        return "--headers '" + std::string(value) + "': expected 'Name:value'";
      }
      std::string_view v = value.substr(colon + 1);
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) {
        v.remove_prefix(1);
      }
      if (value.find_first_of("\r\n") != std::string_view::npos) {
        return "--headers: no line breaks allowed";
      }
      o->headers.emplace_back(std::string(value.substr(0, colon)), std::string(v));
    } else if (command != "ping" && a == "--select-tag") {
      if (!need(&err)) {
        return err;
      }
      if (value.empty()) {
        return "--select-tag needs a non-empty tag";
      }
      o->select_tags.emplace_back(value);
    } else if (a == "--control-plane") {
      if (!need(&err)) {
        return err;
      }
      o->control_plane = std::string(value);
    } else if (command == "dump" && (a == "-o" || a == "--output-file")) {
      if (!need(&err)) {
        return err;
      }
      o->output = std::string(value);
    } else if (command == "diff" && a == "--non-zero-exit-code") {
      o->non_zero_exit_code = true;
    } else if (command == "reset" && (a == "--force" || a == "-f")) {
      o->force = true;
    } else if (command != "ping" && a == "--parallelism") {
      if (!need(&err)) {
        return err;
      }
      int n = 0;
      if (!absl::SimpleAtoi(absl::string_view(value.data(), value.size()), &n) || n < 1 ||
          n > 256) {
        return "--parallelism needs a number from 1 to 256";
      }
      o->parallelism = n;
    } else if (a == "--timeout") {
      if (!need(&err)) {
        return err;
      }
      int n = 0;
      if (!absl::SimpleAtoi(absl::string_view(value.data(), value.size()), &n) || n < 1) {
        return "--timeout needs a number of seconds";
      }
      o->timeout_s = n;
    } else {
      return std::string(command) + ": unknown option '" + std::string(args[i]) + "'";
    }
  }
  return "";
}

// Connects, checks that the CP answers, and reads its entities carrying `tags`; an error
// (printed to `err`) when any step fails.
absl::StatusOr<EntitySet> readCurrent(const OnlineOptions& o, const std::vector<std::string>& tags,
                                      FILE* err, std::optional<Admin>* admin) {
  *admin = connect(o, err);
  if (!*admin) {
    return absl::UnavailableError("cannot connect");
  }
  Json root;
  if (std::string problem = checkReachable(**admin, o, &root); !problem.empty()) {
    std::fprintf(err, "Error: %s\n", problem.c_str());
    return absl::UnavailableError(problem);
  }
  absl::StatusOr<EntitySet> current = fetchCurrent(**admin, tags);
  if (!current.ok()) {
    std::fprintf(err, "Error: reading the configuration: %s\n",
                 std::string(current.status().message()).c_str());
  }
  return current;
}

int runPing(const OnlineOptions& o, FILE* out, FILE* err) {
  std::optional<Admin> admin = connect(o, err);
  if (!admin) {
    return 1;
  }
  Json root;
  if (std::string problem = checkReachable(*admin, o, &root); !problem.empty()) {
    std::fprintf(err, "Error: %s\n", problem.c_str());
    return 1;
  }
  std::fprintf(out, "Successfully connected to the Admin API at %s\nKong version: %s\n",
               o.kong_addr.c_str(), str(root, "version").c_str());
  if (const std::string own = str(root, "portico_version"); !own.empty()) {
    std::fprintf(out, "Portico version: %s\n", own.c_str());
  }
  return 0;
}

int runDump(const OnlineOptions& o, FILE* out, FILE* err) {
  std::optional<Admin> admin;
  const std::vector<std::string> tags = sortedTags(o.select_tags);
  absl::StatusOr<EntitySet> current = readCurrent(o, tags, err, &admin);
  if (!current.ok()) {
    return 1;
  }
  Json doc = Json::object();
  doc["_format_version"] = "3.0";
  if (!tags.empty()) {
    doc["_info"] = Json{{"select_tags", tags}};
  }
  // Basic-auth passwords are stored hashed: say so, as Kong's own export does.
  if (!(*current)[static_cast<size_t>(typeIndex("basicauth_credentials"))].empty()) {
    doc["_transform"] = false;
  }
  size_t total = 0;
  for (size_t t = 0; t < kNumTypes; ++t) {
    std::vector<Json>& list = (*current)[t];
    if (list.empty()) {
      continue;
    }
    std::sort(list.begin(), list.end(), [](const Json& a, const Json& b) {
      return str(a, "id") < str(b, "id");
    });
    Json arr = Json::array();
    for (Json& e : list) {
      e = compareForm(kTypes[t].type, std::move(e));
      dropNulls(e);
      arr.push_back(std::move(e));
    }
    total += list.size();
    doc[kTypes[t].type] = std::move(arr);
  }
  const bool json_out =
      o.output.size() >= 5 && o.output.compare(o.output.size() - 5, 5, ".json") == 0;
  std::string text;
  if (json_out) {
    text = doc.dump(2) + "\n";
  } else {
    text = toYaml(doc);
  }
  if (o.output == "-") {
    std::fwrite(text.data(), 1, text.size(), out);
    return 0;
  }
  const std::string tmp = o.output + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f.write(text.data(), static_cast<std::streamsize>(text.size()));
    f.close();
    if (!f) {
      std::fprintf(err, "Error: cannot write %s\n", tmp.c_str());
      std::remove(tmp.c_str());
      return 1;
    }
  }
  if (std::rename(tmp.c_str(), o.output.c_str()) != 0) {
    std::fprintf(err, "Error: cannot write %s: %s\n", o.output.c_str(), std::strerror(errno));
    std::remove(tmp.c_str());
    return 1;
  }
  std::fprintf(err, "Wrote %zu entities to %s\n", total, o.output.c_str());
  return 0;
}

int runDiff(const OnlineOptions& o, FILE* out, FILE* err) {
  std::optional<Admin> admin = connect(o, err);
  if (!admin) {
    return 1;
  }
  std::optional<Plan> plan = planFor(o, *admin, err);
  if (!plan) {
    return 1;
  }
  int refused = 0;
  for (const Op& op : plan->ops) {
    std::fprintf(out, "%s\n", opLine(op).c_str());
    for (const std::string& c : op.changes) {
      std::fprintf(out, "    %s\n", c.c_str());
    }
    if (!op.error.empty()) {
      std::fprintf(err, "Error: %s: %s\n", opLine(op).c_str(), op.error.c_str());
      ++refused;
    }
  }
  printSummary(out, plan->creates, plan->updates, plan->deletes);
  if (refused > 0) {
    return 1;
  }
  return o.non_zero_exit_code && !plan->ops.empty() ? 2 : 0;
}

int runSync(const OnlineOptions& o, FILE* out, FILE* err) {
  std::optional<Admin> admin = connect(o, err);
  if (!admin) {
    return 1;
  }
  std::optional<Plan> plan = planFor(o, *admin, err);
  if (!plan) {
    return 1;
  }
  bool refused = false;
  for (const Op& op : plan->ops) {
    if (!op.error.empty()) {
      std::fprintf(err, "Error: %s: %s\n", opLine(op).c_str(), op.error.c_str());
      refused = true;
    }
  }
  if (refused) {
    std::fprintf(err, "Nothing was changed.\n");
    return 1;
  }
  size_t done[3] = {0, 0, 0};
  StepTimer timer;
  const size_t failures =
      applyPlan(*admin, *plan, !plan->select_tags.empty(), out, err, done);
  timer.step("apply");
  printSummary(out, done[Op::kCreate], done[Op::kUpdate], done[Op::kDelete]);
  if (failures > 0) {
    std::fprintf(err, "Error: %zu of %zu changes failed; the later steps were not run\n",
                 failures, plan->ops.size());
    return 1;
  }
  return 0;
}

int runReset(const OnlineOptions& o, FILE* out, FILE* err) {
  std::optional<Admin> admin;
  const std::vector<std::string> tags = sortedTags(o.select_tags);
  absl::StatusOr<EntitySet> current = readCurrent(o, tags, err, &admin);
  if (!current.ok()) {
    return 1;
  }
  Desired empty;
  empty.select_tags = tags;
  Plan plan = makePlan(empty, *current);
  sortPlan(&plan);
  if (plan.ops.empty()) {
    printSummary(out, 0, 0, 0);
    return 0;
  }
  if (!o.force) {
    const std::string what =
        tags.empty() ? "every entity" : "every entity tagged " + absl::StrJoin(tags, ", ");
    if (!isatty(STDIN_FILENO)) {
      std::fprintf(err,
                   "Error: reset deletes %s (%zu entities) on %s%s; run it with --force when "
                   "not interactive\n",
                   what.c_str(), plan.ops.size(), o.kong_addr.c_str(), admin->prefix().c_str());
      return 1;
    }
    std::fprintf(out, "This deletes %s (%zu entities) on %s%s. Are you sure? [y/N] ",
                 what.c_str(), plan.ops.size(), o.kong_addr.c_str(), admin->prefix().c_str());
    std::fflush(out);
    char answer[16] = {0};
    if (std::fgets(answer, sizeof(answer), stdin) == nullptr ||
        (answer[0] != 'y' && answer[0] != 'Y')) {
      std::fprintf(out, "Nothing was deleted.\n");
      return 1;
    }
  }
  size_t done[3] = {0, 0, 0};
  const size_t failures = applyPlan(*admin, plan, false, out, err, done);
  printSummary(out, done[Op::kCreate], done[Op::kUpdate], done[Op::kDelete]);
  return failures > 0 ? 1 : 0;
}

}  // namespace portico::cli
