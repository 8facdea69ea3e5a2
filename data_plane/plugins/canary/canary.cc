// canary: sends a share of a service's requests to another host, port or path (Kong
// Enterprise's canary release, PRIORITY 20, access phase).
//
// Which requests move: a fixed `percentage` of `steps` buckets, or a timed release that moves
// one more bucket every duration/steps seconds from `start`; a request's bucket is the CRC-32
// of its consumer id, client IP or `hash_header` value (each falling back to the next, then to
// a random bucket) modulo steps, so a consumer stays on one side. `hash: allow|deny` moves the
// consumers in (or not in) `groups` (their acl groups). `canary_by_header_name` lets a client
// force "always" or "never". `upstream_fallback` keeps requests on the service while the
// canary destination has no healthy address.
//
// The destination (upstream entity or host, and port) is announced to the snapshot, which
// builds its balancer, DNS watch and TLS with the config; moving a request costs one lookup.
#include <zlib.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/config/schema.h"
#include "data_plane/plugins/consumers.h"
#include "data_plane/plugins/plugin.h"

namespace portico::dp::plugins::canary {
namespace {

enum class Hash : uint8_t { kConsumer, kIp, kNone, kAllow, kDeny, kHeader };

class Config final : public PluginConfig {
 public:
  Hash hash = Hash::kConsumer;
  std::string hash_header;
  std::optional<double> percentage;
  double start = 0;
  double duration = 3600;
  double steps = 1000;
  UpstreamDestination destination;  // empty host and port 0: only the path moves
  bool moves_target = false;        // upstream_host or upstream_port set
  std::optional<std::string> upstream_uri;
  bool upstream_fallback = false;
  std::vector<std::string> groups;
  std::string canary_by_header_name;

  std::string_view name() const override { return "canary"; }
  int32_t priority() const override { return 20; }
  PluginPtr createPlugin() const override;
  void upstreamDestinations(std::vector<UpstreamDestination>* out) const override {
    if (moves_target) out->push_back(destination);
  }
};

uint32_t crc(std::string_view s) {
  return static_cast<uint32_t>(
      crc32(0L, reinterpret_cast<const Bytef*>(s.data()), static_cast<uInt>(s.size())));
}

// A random bucket in [0, steps) (Kong's math.random(steps) - 1): hash "none", or nothing
// else identified the request.
double randomBucket(double steps) {
  thread_local uint64_t state =
      0x9e3779b97f4a7c15ULL ^
      static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  state ^= state << 13;
  state ^= state >> 7;
  state ^= state << 17;
  const uint64_t n = steps >= 1 ? static_cast<uint64_t>(steps) : 1;
  return static_cast<double>(state % n);
}

double nowSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class Canary final : public Plugin {
 public:
  explicit Canary(const Config& config) : c_(config) {}

  PhaseResult onRequest(RequestContext& ctx) override {
    if (!c_.canary_by_header_name.empty()) {
      std::string_view v;
      if (ctx.requestHeader(c_.canary_by_header_name, &v)) {
        if (v == "always") {
          // Forced by the client: no health check and no bucket (as Kong).
          move(ctx, false);
          return PhaseResult::kContinue;
        }
        if (v == "never") {
          return PhaseResult::kContinue;
        }
      }
    }
    if (c_.hash == Hash::kAllow || c_.hash == Hash::kDeny) {
      if ((c_.hash == Hash::kAllow) == inGroups(ctx.consumer())) {
        move(ctx, c_.upstream_fallback);
      }
      return PhaseResult::kContinue;
    }
    double step;
    if (c_.percentage) {
      step = *c_.percentage * c_.steps / 100 - 1;  // the last bucket that moves, 0-based
    } else {
      const double now = nowSeconds();
      if (now < c_.start) {
        return PhaseResult::kContinue;  // not started yet
      }
      if (now > c_.start + c_.duration) {
        move(ctx, c_.upstream_fallback);  // done: every request moves
        return PhaseResult::kContinue;
      }
      step = std::floor((now - c_.start) / c_.duration * c_.steps);
    }
    if (bucket(ctx) <= step) {
      move(ctx, c_.upstream_fallback);
    }
    return PhaseResult::kContinue;
  }

 private:
  // The request's bucket: hash of the consumer id, the header or the client IP (falling back
  // in that order, as Kong), or random.
  double bucket(const RequestContext& ctx) const {
    std::string_view id;
    if (c_.hash == Hash::kConsumer) {
      if (const Consumer* consumer = ctx.consumer()) id = consumer->entity->id();
    } else if (c_.hash == Hash::kHeader) {
      ctx.requestHeader(c_.hash_header, &id);
    }
    if (id.empty() && c_.hash != Hash::kNone) {
      id = ctx.clientIp();
    }
    if (id.empty()) {
      return randomBucket(c_.steps);
    }
    return std::fmod(static_cast<double>(crc(id)), c_.steps);
  }

  bool inGroups(const Consumer* consumer) const {
    if (consumer == nullptr) return false;
    for (std::string_view g : consumer->groups) {
      for (const std::string& want : c_.groups) {
        if (g == want) return true;
      }
    }
    return false;
  }

  // Kong's switch_target: the host and port, then the path. With upstream_fallback, nothing
  // moves while the destination has no healthy address.
  void move(RequestContext& ctx, bool only_if_available) const {
    if (c_.moves_target && !ctx.setUpstreamDestination(c_.destination, only_if_available)) {
      return;
    }
    if (c_.upstream_uri) {
      ctx.setUpstreamPath(*c_.upstream_uri);
    }
  }

  const Config& c_;
};

PluginPtr Config::createPlugin() const { return std::make_unique<Canary>(*this); }

Hash parseHash(const std::string& s) {
  if (s == "ip") return Hash::kIp;
  if (s == "none") return Hash::kNone;
  if (s == "allow") return Hash::kAllow;
  if (s == "deny") return Hash::kDeny;
  if (s == "header") return Hash::kHeader;
  return Hash::kConsumer;
}

std::string stringOr(const config::Json& conf, const char* field, const char* dflt) {
  auto it = conf.find(field);
  return it != conf.end() && it->is_string() ? it->get<std::string>() : dflt;
}

double numberOr(const config::Json& conf, const char* field, double dflt) {
  auto it = conf.find(field);
  return it != conf.end() && it->is_number() ? it->get<double>() : dflt;
}

}  // namespace

absl::StatusOr<PluginConfigConstSharedPtr> build(const config::v1::Plugin& entity,
                                                 const config::Json& conf) {
  auto c = std::make_shared<Config>();
  c->hash = parseHash(stringOr(conf, "hash", "consumer"));
  if (auto it = conf.find("hash_header"); it != conf.end() && it->is_string()) {
    c->hash_header = it->get<std::string>();
  }
  if (auto it = conf.find("percentage"); it != conf.end() && it->is_number()) {
    c->percentage = it->get<double>();
  }
  // A timed release without `start` (a config written before the CP pinned it): from the
  // plugin's creation, the same on every data plane.
  c->start = numberOr(conf, "start", static_cast<double>(entity.created_at()));
  c->duration = numberOr(conf, "duration", 3600);
  c->steps = numberOr(conf, "steps", 1000);
  if (auto it = conf.find("upstream_host"); it != conf.end() && it->is_string()) {
    c->destination.host = it->get<std::string>();
    c->moves_target = true;
  }
  if (auto it = conf.find("upstream_port"); it != conf.end() && it->is_number_integer()) {
    c->destination.port = static_cast<uint16_t>(it->get<int64_t>());
    c->moves_target = c->moves_target || c->destination.port != 0;
  }
  if (auto it = conf.find("upstream_uri"); it != conf.end() && it->is_string()) {
    c->upstream_uri = it->get<std::string>();
  }
  if (!c->moves_target && !c->upstream_uri) {
    return absl::InvalidArgumentError(
        "at least one of upstream_uri, upstream_host, upstream_port must be set");
  }
  if (!(c->steps > 1) || !(c->duration > 0)) {
    return absl::InvalidArgumentError("steps must be greater than 1 and duration than 0");
  }
  if (c->hash == Hash::kHeader && c->hash_header.empty()) {
    return absl::InvalidArgumentError("hash_header is required with hash = header");
  }
  if (auto it = conf.find("upstream_fallback"); it != conf.end() && it->is_boolean()) {
    c->upstream_fallback = it->get<bool>();
  }
  if (auto it = conf.find("groups"); it != conf.end() && it->is_array()) {
    for (const auto& g : *it) {
      if (g.is_string()) c->groups.push_back(g.get<std::string>());
    }
  }
  if (auto it = conf.find("canary_by_header_name"); it != conf.end() && it->is_string()) {
    c->canary_by_header_name = it->get<std::string>();
  }
  return c;
}

}  // namespace portico::dp::plugins::canary
