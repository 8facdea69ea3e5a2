#include "data_plane/router/router.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "data_plane/router/path.h"
#include "common/config/regex.h"
#include "re2/re2.h"

namespace portico::dp::router {

struct Router::Entry {
  struct Host {
    enum class Kind : uint8_t { kExact, kSuffix, kPrefix } kind = Kind::kExact;
    std::string text;   // exact host, ".x" for "*.x", or "x." for "x.*"
    uint32_t port = 0;  // 0 = any port
  };
  struct HeaderRule {
    std::string name;                  // lower-case, '-' replaced by '_'
    std::vector<std::string> values;   // lower-case
    std::vector<std::shared_ptr<const re2::RE2>> regexes;  // "~*" values, case-insensitive
  };

  uint64_t priority = 0;
  std::string uuid;
  const config::v1::Route* route = nullptr;
  int32_t route_index = -1;
  const config::v1::Service* service = nullptr;
  int32_t service_index = -1;
  bool strip_path = false;
  bool https_only = false;  // protocols contain https but not http
  std::vector<std::string> methods;
  std::vector<Host> hosts;
  std::vector<HeaderRule> headers;
  std::vector<std::string> snis;
  std::vector<std::string> prefixes;
  std::vector<std::shared_ptr<const re2::RE2>> regexes;  // shared with other snapshots
  std::vector<std::string> regex_literals;  // literal prefix every match starts with (prefilter)
};

namespace {

// The literal text every match of the (start-anchored) regex `re` begins with, or "" when
// unsure. Conservative: stops at the first metacharacter or escape, drops a literal that a
// quantifier makes optional, and gives up on alternation anywhere in the pattern.
std::string literalPrefix(std::string_view re) {
  if (re.find('|') != std::string_view::npos) {
    return "";
  }
  std::string out;
  for (size_t i = 0; i < re.size(); ++i) {
    const char c = re[i];
    if (std::string_view(".[]()*+?{}|\\^$").find(c) != std::string_view::npos) {
      if ((c == '*' || c == '?' || c == '{') && !out.empty()) {
        out.pop_back();
      }
      break;
    }
    out.push_back(c);
  }
  return out;
}

inline char lowerChar(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

// Header names compare lower-cased with '-' == '_' (Kong normalizes both sides that way).
inline char headerNameChar(char c) { return c == '-' ? '_' : lowerChar(c); }

bool headerNameEquals(std::string_view request_name, std::string_view rule_name) {
  if (request_name.size() != rule_name.size()) {
    return false;
  }
  for (size_t i = 0; i < rule_name.size(); ++i) {
    if (headerNameChar(request_name[i]) != rule_name[i]) {
      return false;
    }
  }
  return true;
}

bool equalsLower(std::string_view request_value, std::string_view lower_value) {
  if (request_value.size() != lower_value.size()) {
    return false;
  }
  for (size_t i = 0; i < lower_value.size(); ++i) {
    if (lowerChar(request_value[i]) != lower_value[i]) {
      return false;
    }
  }
  return true;
}

re2::StringPiece piece(std::string_view s) { return re2::StringPiece(s.data(), s.size()); }

// Compiled regexes by (case sensitivity, pattern), shared by every router that uses them: a
// new snapshot reuses the programs of the one it replaces instead of recompiling (~2.5 us
// each; 1,000 regex routes = ~2.5 ms of every apply) and both share one copy during the swap.
// Entries die with the last router holding them; dead ones are swept as the map grows.
class RegexCache {
 public:
  static RegexCache& instance() {
    static auto* const kCache = new RegexCache();
    return *kCache;
  }

  // Any thread (config threads; tests build routers concurrently). Never null; check ok().
  std::shared_ptr<const re2::RE2> get(const std::string& pattern, bool case_sensitive) {
    std::string key;
    key.reserve(pattern.size() + 1);
    key.push_back(case_sensitive ? 's' : 'i');
    key.append(pattern);
    absl::MutexLock lock(&mu_);
    std::weak_ptr<const re2::RE2>& slot = by_pattern_[key];
    if (std::shared_ptr<const re2::RE2> re = slot.lock()) {
      return re;
    }
    RE2::Options opts;
    opts.set_case_sensitive(case_sensitive);
    opts.set_log_errors(false);
    auto re = std::make_shared<const re2::RE2>(piece(pattern), opts);
    slot = re;
    if (by_pattern_.size() >= sweep_at_) {
      absl::erase_if(by_pattern_, [](const auto& kv) { return kv.second.expired(); });
      sweep_at_ = std::max<size_t>(1024, by_pattern_.size() * 2);
    }
    return re;
  }

 private:
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::weak_ptr<const re2::RE2>> by_pattern_
      ABSL_GUARDED_BY(mu_);
  size_t sweep_at_ ABSL_GUARDED_BY(mu_) = 1024;
};

// Splits "host", "host:port", "[v6]", "[v6]:port". port 0 = none given.
void splitHostPort(std::string_view in, std::string_view* host, uint32_t* port) {
  *port = 0;
  size_t colon = in.rfind(':');
  size_t bracket = in.rfind(']');
  if (colon != std::string_view::npos && (bracket == std::string_view::npos || colon > bracket)) {
    uint32_t p = 0;
    std::string_view digits = in.substr(colon + 1);
    bool ok = !digits.empty() && digits.size() <= 5;
    for (char c : digits) {
      ok = ok && c >= '0' && c <= '9';
      p = p * 10 + static_cast<uint32_t>(c - '0');
    }
    if (ok && p <= 65535) {
      *port = p;
      *host = in.substr(0, colon);
      return;
    }
  }
  *host = in;
}

bool isHttpRoute(const config::v1::Route& r) {
  if (r.protocols_size() == 0) {
    return true;
  }
  for (const std::string& p : r.protocols()) {
    if (p == "http" || p == "https") {
      return true;
    }
  }
  return false;
}

std::string lowerString(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = lowerChar(c);
  }
  return out;
}

}  // namespace

uint64_t computePriority(const config::v1::Route& route, size_t num_paths_in_group,
                         bool regex_group, size_t prefix_len) {
  uint64_t weight = 0;
  weight += route.methods_size() > 0;
  weight += route.hosts_size() > 0;
  weight += route.headers_size() > 0;
  weight += route.snis_size() > 0;
  weight += num_paths_in_group > 0;
  bool plain_hosts = route.hosts_size() > 0;
  for (const std::string& h : route.hosts()) {
    plain_hosts = plain_hosts && h.find('*') == std::string::npos;
  }
  uint64_t header_count = std::min<uint64_t>(static_cast<uint64_t>(route.headers_size()), 255);
  uint64_t p = weight << 61;
  p |= static_cast<uint64_t>(plain_hosts) << 60;
  p |= header_count << 52;
  if (regex_group) {
    p |= uint64_t{1} << 51;
    int64_t rp = route.regex_priority();
    rp = std::clamp<int64_t>(rp, 0, 0xffffffffLL);
    p |= static_cast<uint64_t>(rp) << 19;
  } else {
    p |= std::min<uint64_t>(prefix_len, (uint64_t{1} << 19) - 1);
  }
  return p;
}

std::string splitRouteUuid(std::string_view route_id, int index) {
  // Namespace 7f145bf9-0dce-4f91-98eb-debbce4b9f6b (Kong's transform.lua).
  static constexpr unsigned char kNs[16] = {0x7f, 0x14, 0x5b, 0xf9, 0x0d, 0xce, 0x4f, 0x91,
                                            0x98, 0xeb, 0xde, 0xbb, 0xce, 0x4b, 0x9f, 0x6b};
  std::string name = absl::StrCat(absl::string_view(route_id.data(), route_id.size()), "#", index);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha1(), nullptr);
  EVP_DigestUpdate(ctx, kNs, sizeof(kNs));
  EVP_DigestUpdate(ctx, name.data(), name.size());
  EVP_DigestFinal_ex(ctx, digest, &len);
  EVP_MD_CTX_free(ctx);
  digest[6] = static_cast<unsigned char>((digest[6] & 0x0f) | 0x50);
  digest[8] = static_cast<unsigned char>((digest[8] & 0x3f) | 0x80);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) {
      out.push_back('-');
    }
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 0xf]);
  }
  return out;
}

Router::~Router() = default;

size_t Router::size() const { return entries_.size(); }

absl::StatusOr<std::unique_ptr<const Router>> Router::build(const config::v1::Snapshot& config) {
  std::unique_ptr<Router> router(new Router());
  absl::flat_hash_map<std::string, int32_t> service_by_id;
  service_by_id.reserve(static_cast<size_t>(config.services_size()));
  for (int i = 0; i < config.services_size(); ++i) {
    service_by_id[config.services(i).id()] = i;
  }
  // Usually one entry per route: sized up front rather than doubled (10k routes: ~1.5 MiB of
  // spare capacity kept for the snapshot's life otherwise).
  router->entries_.reserve(static_cast<size_t>(config.routes_size()));
  int32_t route_index = -1;
  for (const config::v1::Route& route : config.routes()) {
    ++route_index;
    if (!isHttpRoute(route)) {
      continue;  // TODO(portico): grpc/stream routes get their own router.
    }
    const config::v1::Service* service = nullptr;
    int32_t service_index = -1;
    if (route.has_service_id()) {
      auto it = service_by_id.find(route.service_id());
      if (it == service_by_id.end()) {
        return absl::InvalidArgumentError(
            absl::StrCat("route ", route.id(), ": service ", route.service_id(), " not found"));
      }
      service_index = it->second;
      service = &config.services(service_index);
      if (!service->enabled()) {
        continue;  // Kong leaves routes of disabled services out of the router.
      }
    }

    // Group paths: one group per distinct prefix length (first-appearance order), then one
    // group for all regexes (Kong's split_routes_and_services_by_path).
    std::vector<std::vector<std::string_view>> groups;
    std::vector<std::string_view> regex_paths;
    for (const std::string& p : route.paths()) {
      if (!p.empty() && p[0] == '~') {
        regex_paths.push_back(std::string_view(p).substr(1));
        continue;
      }
      auto g = std::find_if(groups.begin(), groups.end(),
                            [&](const auto& grp) { return grp.front().size() == p.size(); });
      if (g == groups.end()) {
        groups.push_back({p});
      } else {
        g->push_back(p);
      }
    }
    const size_t num_prefix_groups = groups.size();
    if (!regex_paths.empty()) {
      groups.push_back(regex_paths);
    }
    if (groups.empty()) {
      groups.emplace_back();  // a route without paths is one group with no path condition
    }
    const bool split = route.paths_size() > 1;

    for (size_t gi = 0; gi < groups.size(); ++gi) {
      Entry e;
      e.route = &route;
      e.route_index = route_index;
      e.service = service;
      e.service_index = service_index;
      e.strip_path = route.strip_path();
      {
        bool has_http = route.protocols_size() == 0;
        bool has_https = false;
        for (const std::string& p : route.protocols()) {
          has_http |= p == "http";
          has_https |= p == "https";
        }
        e.https_only = has_https && !has_http;
      }
      const bool regex_group = gi >= num_prefix_groups && !regex_paths.empty();
      const size_t prefix_len = (!regex_group && !groups[gi].empty()) ? groups[gi][0].size() : 0;
      e.priority = computePriority(route, groups[gi].size(), regex_group, prefix_len);
      e.uuid = split ? splitRouteUuid(route.id(), static_cast<int>(gi) + 1) : route.id();
      e.methods.assign(route.methods().begin(), route.methods().end());
      for (const std::string& h : route.hosts()) {
        Entry::Host host;
        std::string_view name;
        splitHostPort(h, &name, &host.port);
        if (name.size() >= 2 && name.substr(0, 2) == "*.") {
          host.kind = Entry::Host::Kind::kSuffix;
          host.text = std::string(name.substr(1));
        } else if (name.size() >= 2 && name.substr(name.size() - 2) == ".*") {
          host.kind = Entry::Host::Kind::kPrefix;
          host.text = std::string(name.substr(0, name.size() - 1));
        } else {
          host.text = std::string(name);
        }
        e.hosts.push_back(std::move(host));
      }
      for (const config::v1::HeaderMatch& hm : route.headers()) {
        Entry::HeaderRule rule;
        for (char c : hm.name()) {
          rule.name.push_back(headerNameChar(c));
        }
        for (const std::string& v : hm.values()) {
          if (v.size() >= 2 && v.compare(0, 2, "~*") == 0) {
            std::shared_ptr<const re2::RE2> re = RegexCache::instance().get(v.substr(2), false);
            if (!re->ok()) {
              return absl::InvalidArgumentError(absl::StrCat("route ", route.id(), ": headers.",
                                                             hm.name(), ": invalid regex: ",
                                                             re->error()));
            }
            rule.regexes.push_back(std::move(re));
          } else {
            rule.values.push_back(lowerString(v));
          }
        }
        e.headers.push_back(std::move(rule));
      }
      for (const std::string& s : route.snis()) {
        e.snis.push_back(s);
      }
      for (std::string_view p : groups[gi]) {
        if (regex_group) {
          std::shared_ptr<const re2::RE2> re =
              RegexCache::instance().get(config::translateRouteRegex(p), true);
          if (!re->ok()) {
            return absl::InvalidArgumentError(absl::StrCat(
                "route ", route.id(), ": invalid regex: '", absl::string_view(p.data(), p.size()),
                "': ", re->error()));
          }
          e.regexes.push_back(std::move(re));
          e.regex_literals.push_back(literalPrefix(p));
        } else {
          e.prefixes.emplace_back(p);
        }
      }
      router->entries_.push_back(std::move(e));
    }
  }

  router->entries_.shrink_to_fit();  // routes split by path length, or non-HTTP routes skipped
  std::stable_sort(router->entries_.begin(), router->entries_.end(),
                   [](const Entry& a, const Entry& b) {
                     if (a.priority != b.priority) {
                       return a.priority > b.priority;
                     }
                     return a.uuid > b.uuid;
                   });
  for (uint32_t i = 0; i < router->entries_.size(); ++i) {
    const Entry& e = router->entries_[i];
    bool any = e.hosts.empty();
    for (const Entry::Host& h : e.hosts) {
      if (h.kind != Entry::Host::Kind::kExact) {
        any = true;
        continue;
      }
      std::vector<uint32_t>& list = router->by_host_[h.text];
      if (list.empty() || list.back() != i) {
        list.push_back(i);
      }
    }
    if (!any) {
      continue;
    }
    // First path segments this entry's paths pin down; any unknown one makes it generic.
    std::vector<std::string_view> segments;
    bool known = !e.prefixes.empty() || !e.regexes.empty();
    auto addSegment = [&](std::string_view literal) {
      size_t slash = literal.size() > 1 ? literal.find('/', 1) : std::string_view::npos;
      if (literal.empty() || literal[0] != '/' || slash == std::string_view::npos) {
        known = false;
        return;
      }
      segments.push_back(literal.substr(1, slash - 1));
    };
    for (const std::string& p : e.prefixes) {
      addSegment(p);
    }
    for (const std::string& lit : e.regex_literals) {
      addSegment(lit);
    }
    if (!known) {
      router->any_host_.push_back(i);
      continue;
    }
    for (std::string_view seg : segments) {
      std::vector<uint32_t>& list = router->by_segment_[absl::string_view(seg.data(), seg.size())];
      if (list.empty() || list.back() != i) {
        list.push_back(i);
      }
    }
  }
  return std::unique_ptr<const Router>(std::move(router));
}

bool Router::matchEntry(const Entry& e, const RequestView& req, std::string_view host,
                        uint32_t port, std::string_view path, Match* out) const {
  if (!e.methods.empty()) {
    bool ok = false;
    for (const std::string& m : e.methods) {
      if (m == req.method) {
        ok = true;
        break;
      }
    }
    if (!ok) {
      return false;
    }
  }
  if (!e.hosts.empty()) {
    if (host.empty()) {
      return false;
    }
    bool ok = false;
    for (const Entry::Host& h : e.hosts) {
      if (h.port != 0 && h.port != port) {
        continue;
      }
      switch (h.kind) {
        case Entry::Host::Kind::kExact:
          ok = host == h.text;
          break;
        case Entry::Host::Kind::kSuffix:
          ok = host.size() > h.text.size() &&
               host.substr(host.size() - h.text.size()) == h.text;
          break;
        case Entry::Host::Kind::kPrefix:
          ok = host.size() > h.text.size() && host.substr(0, h.text.size()) == h.text;
          break;
      }
      if (ok) {
        break;
      }
    }
    if (!ok) {
      return false;
    }
  }
  for (const Entry::HeaderRule& rule : e.headers) {
    bool ok = false;
    for (uint32_t i = 0; i < req.num_headers && !ok; ++i) {
      const http::Header& h = req.headers[i];
      if (!headerNameEquals(h.name, rule.name)) {
        continue;
      }
      for (const std::string& v : rule.values) {
        if (equalsLower(h.value, v)) {
          ok = true;
          break;
        }
      }
      for (size_t r = 0; r < rule.regexes.size() && !ok; ++r) {
        ok = RE2::PartialMatch(piece(h.value), *rule.regexes[r]);
      }
    }
    if (!ok) {
      return false;
    }
  }
  if (!e.snis.empty() && req.https) {
    std::string_view sni = req.sni;
    if (!sni.empty() && sni.back() == '.') {
      sni.remove_suffix(1);
    }
    bool ok = false;
    for (const std::string& s : e.snis) {
      if (s.size() >= 2 && s.compare(0, 2, "*.") == 0) {
        ok = sni.size() > s.size() - 1 &&
             sni.substr(sni.size() - (s.size() - 1)) == std::string_view(s).substr(1);
      } else if (s.size() >= 2 && s.compare(s.size() - 2, 2, ".*") == 0) {
        ok = sni.size() > s.size() - 1 &&
             sni.substr(0, s.size() - 1) == std::string_view(s).substr(0, s.size() - 1);
      } else {
        ok = sni == s;
      }
      if (ok) {
        break;
      }
    }
    if (!ok) {
      return false;
    }
  }
  size_t matched_len = 0;
  const re2::RE2* matched_re = nullptr;
  if (!e.prefixes.empty()) {
    bool ok = false;
    for (const std::string& p : e.prefixes) {
      if (path.size() >= p.size() && std::memcmp(path.data(), p.data(), p.size()) == 0) {
        ok = true;
        matched_len = p.size();
        break;
      }
    }
    if (!ok) {
      return false;
    }
  } else if (!e.regexes.empty()) {
    bool ok = false;
    for (size_t i = 0; i < e.regexes.size(); ++i) {
      const re2::RE2* re = e.regexes[i].get();
      const std::string& lit = e.regex_literals[i];
      if (path.size() < lit.size() || std::memcmp(path.data(), lit.data(), lit.size()) != 0) {
        continue;  // cannot match: skips RE2 for most routes of a large table
      }
      re2::StringPiece whole;
      if (re->Match(piece(path), 0, path.size(), RE2::ANCHOR_START, &whole, 1)) {
        ok = true;
        matched_len = whole.size();
        matched_re = re;
        break;
      }
    }
    if (!ok) {
      return false;
    }
  }
  out->route = e.route;
  out->route_index = e.route_index;
  out->service = e.service;
  out->service_index = e.service_index;
  out->normalized_path = path;
  out->regex = matched_re;
  // Stripping "/" strips nothing (Kong: strip on "/" never strips).
  out->strip_len = (e.strip_path && matched_len > 1) ? matched_len : 0;
  out->https_required = e.https_only && !req.https && !req.forwarded_https;
  return true;
}

bool Router::match(const RequestView& req, MatchScratch* scratch, Match* out) const {
  if (!normalizePath(req.path, &scratch->normalized)) {
    return false;
  }
  std::string_view path = scratch->normalized;
  std::string_view host;
  uint32_t port = 0;
  splitHostPort(req.host, &host, &port);
  if (port == 0) {
    port = req.server_port;
  }
  static const std::vector<uint32_t> kEmpty;
  const std::vector<uint32_t>* exact = &kEmpty;
  if (!host.empty() && !by_host_.empty()) {
    auto it = by_host_.find(absl::string_view(host.data(), host.size()));
    if (it != by_host_.end()) {
      exact = &it->second;
    }
  }
  const std::vector<uint32_t>* by_seg = &kEmpty;
  if (!by_segment_.empty() && path.size() > 1) {
    size_t slash = path.find('/', 1);
    std::string_view seg = path.substr(1, slash == std::string_view::npos ? path.size() - 1
                                                                           : slash - 1);
    auto it = by_segment_.find(absl::string_view(seg.data(), seg.size()));
    if (it != by_segment_.end()) {
      by_seg = &it->second;
    }
  }
  // Walk the three ascending index lists in merged order, so Kong's global order is kept.
  const std::vector<uint32_t>* lists[3] = {exact, by_seg, &any_host_};
  size_t pos[3] = {0, 0, 0};
  constexpr uint32_t kDone = UINT32_MAX;
  for (;;) {
    uint32_t idx = kDone;
    int from = -1;
    for (int l = 0; l < 3; ++l) {
      if (pos[l] < lists[l]->size() && (*lists[l])[pos[l]] < idx) {
        idx = (*lists[l])[pos[l]];
        from = l;
      }
    }
    if (from < 0) {
      return false;
    }
    ++pos[from];
    if (matchEntry(entries_[idx], req, host, port, path, out)) {
      return true;
    }
  }
}

}  // namespace portico::dp::router
