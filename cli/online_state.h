// The machinery behind porticoctl's online commands (cli/online.h): the entity types in
// dependency order, a pool of keep-alive Admin API clients, the current state (paginated
// GETs), the desired state (declarative files through the loader, in the Admin API's stored
// form) and the plan that turns one into the other. Used by cli/online.cc only.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "cli/http_client.h"
#include "cli/online.h"

namespace portico::cli::online {

using Json = nlohmann::json;

// ---------------------------------------------------------------------------------------------
// Entity types

struct TypeInfo {
  const char* type;      // schema / snapshot / declarative key
  const char* singular;  // for messages, as decK names them
  const char* path;      // Admin API collection ("" for targets: only under an upstream)
  int level;             // 0: no foreign keys; 1: references level 0; 2: plugins
};

// Parents before children; sync creates in this order and deletes in reverse.
inline constexpr TypeInfo kTypes[] = {
    {"services", "service", "services", 0},
    {"upstreams", "upstream", "upstreams", 0},
    {"consumers", "consumer", "consumers", 0},
    {"certificates", "certificate", "certificates", 0},
    {"ca_certificates", "ca_certificate", "ca_certificates", 0},
    {"routes", "route", "routes", 1},
    {"targets", "target", "", 1},
    {"snis", "sni", "snis", 1},
    {"keyauth_credentials", "key-auth", "key-auths", 1},
    {"basicauth_credentials", "basic-auth", "basic-auths", 1},
    {"jwt_secrets", "jwt", "jwts", 1},
    {"hmacauth_credentials", "hmac-auth", "hmac-auths", 1},
    {"acls", "acl", "acls", 1},
    {"plugins", "plugin", "plugins", 2},
};
inline constexpr size_t kNumTypes = sizeof(kTypes) / sizeof(kTypes[0]);
inline constexpr int kMaxLevel = 2;

// The index of `type` in kTypes, -1 if none.
int typeIndex(std::string_view type);
// j[key] when it is a string, else "".
std::string str(const Json& j, const char* key);
// The id inside a foreign key ({"id": ...}), or "".
std::string foreignId(const Json& j, const char* key);

using EntitySet = std::array<std::vector<Json>, kNumTypes>;

// Whether entity `e` carries every one of `tags`.
bool hasAllTags(const Json& e, const std::vector<std::string>& tags);

// ---------------------------------------------------------------------------------------------
// The Admin API: a pool of keep-alive clients, one per worker.

class Admin {
 public:
  Admin(HttpEndpoint endpoint, HttpOptions options, std::string prefix, int parallelism)
      : prefix_(std::move(prefix)) {
    for (int i = 0; i < std::max(1, parallelism); ++i) {
      clients_.push_back(std::make_unique<HttpClient>(endpoint, options));
    }
  }
  const std::string& prefix() const { return prefix_; }
  HttpClient& client(size_t worker) { return *clients_[worker]; }
  size_t workers() const { return clients_.size(); }

  // Runs fn(client, i) for i in [0, n) on up to workers() threads.
  template <class Fn>
  void parallelFor(size_t n, Fn&& fn) {
    const size_t threads = std::min(n, clients_.size());
    if (threads <= 1) {
      for (size_t i = 0; i < n; ++i) {
        fn(*clients_[0], i);
      }
      return;
    }
    std::atomic<size_t> next{0};
    std::vector<std::thread> pool;
    pool.reserve(threads);
    for (size_t w = 0; w < threads; ++w) {
      pool.emplace_back([&, w] {
        for (size_t i = next++; i < n; i = next++) {
          fn(*clients_[w], i);
        }
      });
    }
    for (auto& t : pool) {
      t.join();
    }
  }

 private:
  std::string prefix_;
  std::vector<std::unique_ptr<HttpClient>> clients_;
};

// "%XX"-escapes everything but RFC 3986's unreserved characters.
std::string uriEscape(std::string_view s);
// "HTTP 400: <message>" from an error answer.
std::string describeAnswer(const HttpResponse& r);
// The entities on the control plane (admin.prefix()) that carry every select tag, by type.
absl::StatusOr<EntitySet> fetchCurrent(Admin& admin, const std::vector<std::string>& tags);

// PORTICOCTL_TIMING=1 prints how long each step took to stderr (benchmarks).
class StepTimer {
 public:
  StepTimer() : on_(std::getenv("PORTICOCTL_TIMING") != nullptr), last_(now()) {}
  void step(const char* what) {
    if (on_) {
      const int64_t t = now();
      std::fprintf(stderr, "timing: %s %lld ms\n", what, static_cast<long long>(t - last_));
      last_ = t;
    }
  }

 private:
  static int64_t now() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  bool on_;
  int64_t last_;
};

struct Desired {
  EntitySet entities;              // stored form, ids Kong's deterministic ones when not given
  bool transform = true;           // basic-auth passwords in the file are plain text
  std::vector<std::string> select_tags;
};

// Sorted, without duplicates.
std::vector<std::string> sortedTags(std::vector<std::string> v);
// Loads every state file, merged as decK merges them, through the declarative loader. Errors
// are printed to `err`; returns nullopt then. `on_tags` is called once the select tags are
// known, before the loader runs (the caller starts reading the current state meanwhile).
std::optional<Desired> loadDesired(
    const OnlineOptions& options, FILE* err,
    const std::function<void(const std::vector<std::string>&)>& on_tags);

// The form two entities are compared in: no timestamps, nothing the API adds on reads
// (a certificate's SNI names, which are entities of their own here), tags as a set.
Json compareForm(const std::string& type, Json e);

struct Op {
  enum Kind { kCreate, kUpdate, kDelete };
  Kind kind = kCreate;
  size_t type = 0;
  std::string id;
  std::string parent_id;  // targets: the upstream
  std::string display;    // "foo", "rate-limiting for service foo"
  Json body;              // create/update
  std::vector<std::string> changes;
  std::string error;      // refused at plan time
};

struct Plan {
  std::vector<Op> ops;
  std::vector<std::string> select_tags;
  size_t creates = 0, updates = 0, deletes = 0;
};

// What turns `current` into `desired`: matched by id, else by natural key (foreign keys and
// ids of `desired` are rewritten to the matched entities' ids). Unsorted.
Plan makePlan(Desired& desired, const EntitySet& current);
// Execution order, which is also the printed order: creates and updates parents first,
// then deletes children first; within a level by type, then name.
int phaseOf(const Op& op);
void sortPlan(Plan* plan);
// "creating service foo".
std::string opLine(const Op& op);

}  // namespace portico::cli::online
