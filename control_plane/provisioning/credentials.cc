#include "control_plane/provisioning/credentials.h"

#include <algorithm>
#include <ctime>
#include <utility>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/logging.h"

namespace portico::cp::provisioning {
namespace {

using Json = nlohmann::json;

constexpr char kProvisioningLog[] = "provisioning";
constexpr char kCaName[] = "default";
constexpr int kCaDays = 3650;
// "pki_ca" in ASCII: the advisory lock that orders replicas creating the CA together.
constexpr int64_t kCaLockKey = 0x706b695f6361LL;
constexpr int64_t kDay = 24 * 3600;
constexpr size_t kMaxName = 128;

int64_t nowSeconds() { return static_cast<int64_t>(std::time(nullptr)); }

std::string rfc3339(int64_t unix_s) {
  return absl::FormatTime(absl::RFC3339_sec, absl::FromUnixSeconds(unix_s), absl::UTCTimeZone());
}


Credentials::Answer error(int status, const std::string& detail, const std::string& field = "") {
  static const std::map<int, std::string> kTitles = {
      {400, "Bad Request"}, {404, "Not Found"}, {405, "Method Not Allowed"},
      {503, "Service Unavailable"}};
  Json body{{"status", status},
            {"title", kTitles.count(status) ? kTitles.at(status) : "Error"},
            {"detail", detail}};
  if (!field.empty()) {
    body["invalid_parameters"] =
        Json::array({Json{{"field", field}, {"rule", "invalid"}, {"reason", detail}}});
  }
  return {status, body.dump()};
}

}  // namespace

absl::StatusOr<pki::KeyPair> ensureClusterCa(PgPool& pool, const pki::Keyring& keyring) {
  pki::KeyPair ca;
  std::string sealed;
  absl::Status st = pool.run([&](pqxx::connection& conn) -> absl::Status {
    pqxx::work txn(conn);
    txn.exec_params("SELECT pg_advisory_xact_lock($1)", kCaLockKey);
    const pqxx::result r =
        txn.exec_params("SELECT cert_pem, key_sealed FROM cluster_ca WHERE name = $1", kCaName);
    if (!r.empty()) {
      ca.cert_pem = r[0][0].as<std::string>();
      sealed = r[0][1].as<std::string>();
      return absl::OkStatus();
    }
    auto created = pki::createCa("Portico cluster CA", kCaDays);
    if (!created.ok()) return created.status();
    ca = *created;
    txn.exec_params(
        "INSERT INTO cluster_ca (name, cert_pem, key_sealed, created_at) VALUES ($1, $2, $3, $4)",
        kCaName, ca.cert_pem, keyring.seal(ca.key_pem, kCaName), nowSeconds());
    txn.commit();
    LOG_INFO(kProvisioningLog, "created the cluster CA (stored in PostgreSQL, its key sealed by --keyring)");
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  if (!sealed.empty()) {
    auto key = keyring.open(sealed, kCaName);
    if (!key.ok()) {
      return absl::InvalidArgumentError(
          "the cluster CA's key in PostgreSQL does not open with this --keyring (every control "
          "plane of a database needs the same keyring file)");
    }
    ca.key_pem = *key;
  }
  return ca;
}

Credentials::Credentials(PgPool& pool, pki::KeyPair ca, ProvisioningOptions options)
    : pool_(pool), ca_(std::move(ca)), options_(std::move(options)) {}

Credentials::~Credentials() { stop(); }

absl::Status Credentials::start() {
  if (absl::Status st = reload(); !st.ok()) return st;
  thread_ = std::thread([this] {
    for (;;) {
      {
        absl::MutexLock lock(&mu_);
        if (mu_.AwaitWithTimeout(absl::Condition(&stop_), options_.refresh)) return;
      }
      writeClaims();
      if (absl::Status st = reload(); !st.ok()) {
        LOG_WARN(kProvisioningLog, "cannot reload data plane credentials: %s", st.message());
      }
    }
  });
  return absl::OkStatus();
}

void Credentials::stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

absl::Status Credentials::reload() {
  absl::flat_hash_map<std::string, Entry> entries;
  absl::Status st = pool_.run([&](pqxx::connection& conn) -> absl::Status {
    pqxx::read_transaction txn(conn);
    for (const auto& r : txn.exec(
             "SELECT id::text, group_name, kind, fingerprint, name, serial, "
             "coalesce(used_by, ''), expires_at, created_at, revoked_at FROM dp_credentials")) {
      Entry e;
      e.id = r[0].as<std::string>();
      e.group = r[1].as<std::string>();
      e.kind = r[2].as<std::string>();
      e.fingerprint = r[3].as<std::string>();
      e.name = r[4].as<std::string>();
      e.serial = r[5].as<std::string>();
      e.used_by = r[6].as<std::string>();
      e.expires_at = r[7].as<int64_t>();
      e.created_at = r[8].as<int64_t>();
      if (!r[9].is_null()) e.revoked_at = r[9].as<int64_t>();
      entries.emplace(e.fingerprint, std::move(e));
    }
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  absl::MutexLock lock(&mu_);
  // A claim made here but not written yet wins over the table's empty used_by.
  for (auto& [fp, e] : entries) {
    if (auto it = claims_.find(e.id); it != claims_.end() && e.used_by.empty()) {
      e.used_by = it->second;
    }
  }
  by_fingerprint_ = std::move(entries);
  fingerprint_of_.clear();
  for (const auto& [fp, e] : by_fingerprint_) fingerprint_of_[e.id] = fp;
  return absl::OkStatus();
}

void Credentials::writeClaims() {
  std::map<std::string, std::string> claims;
  {
    absl::MutexLock lock(&mu_);
    claims = claims_;
  }
  for (const auto& [id, node] : claims) {
    absl::Status st = pool_.run([&](pqxx::connection& conn) -> absl::Status {
      pqxx::work txn(conn);
      txn.exec_params("UPDATE dp_credentials SET used_by = $2 WHERE id = $1::uuid AND "
                      "used_by IS NULL",
                      id, node);
      txn.commit();
      return absl::OkStatus();
    });
    if (st.ok()) {
      absl::MutexLock lock(&mu_);
      claims_.erase(id);
    }
  }
}

CredentialAuthority::Verdict Credentials::verdict(const Entry& e) const {
  Verdict v;
  v.known = true;
  v.group = e.group;
  v.id = e.id;
  const char* what = e.kind == "token" ? "join token" : "client certificate";
  if (e.revoked_at.has_value()) {
    v.refusal = absl::StrCat(what, " ", e.id, " was revoked at ", rfc3339(*e.revoked_at));
  } else if (e.expires_at <= nowSeconds()) {
    v.refusal = absl::StrCat(what, " ", e.id, " expired at ", rfc3339(e.expires_at));
  }
  return v;
}

CredentialAuthority::Verdict Credentials::certificate(const std::string& sha256) const {
  absl::MutexLock lock(&mu_);
  auto it = by_fingerprint_.find(sha256);
  if (it == by_fingerprint_.end() || it->second.kind != "certificate") return {};
  return verdict(it->second);
}

CredentialAuthority::Verdict Credentials::token(const std::string& token) const {
  const std::string fp = pki::sha256Hex(token);
  absl::MutexLock lock(&mu_);
  auto it = by_fingerprint_.find(fp);
  if (it == by_fingerprint_.end() || it->second.kind != "token") return {};
  return verdict(it->second);
}

std::string Credentials::claimToken(const std::string& id, const std::string& node_id) {
  absl::MutexLock lock(&mu_);
  auto f = fingerprint_of_.find(id);
  if (f == fingerprint_of_.end()) return "";
  Entry& e = by_fingerprint_[f->second];
  if (e.kind != "token") return "";
  if (e.used_by.empty()) {
    e.used_by = node_id;
    claims_[id] = node_id;  // written by the refresh thread
    return "";
  }
  if (e.used_by == node_id) return "";
  return absl::StrCat("join token ", id, " was already used by node ", e.used_by,
                      "; issue one token per data plane");
}

std::string Credentials::invalidated(const std::string& id) const {
  absl::MutexLock lock(&mu_);
  auto f = fingerprint_of_.find(id);
  if (f == fingerprint_of_.end()) return "";
  auto it = by_fingerprint_.find(f->second);
  return it == by_fingerprint_.end() ? "" : verdict(it->second).refusal;
}

std::string Credentials::runCommand(const std::string& group, bool token,
                                    const std::string& secret) const {
  std::string cmd = absl::StrCat("portico-dp --cp_address=", options_.cp_address,
                                 " --cluster_mtls=pki --cluster_server_name=",
                                 options_.server_name,
                                 " --cluster_ca=/etc/portico/cluster-ca.crt");
  if (token) {
    absl::StrAppend(&cmd, " --cluster_join_token=", secret);
  } else {
    absl::StrAppend(&cmd, " --cluster_cert=/etc/portico/cluster.crt",
                    " --cluster_key=/etc/portico/cluster.key");
  }
  absl::StrAppend(&cmd, " --control_plane=", group);
  return cmd;
}

Credentials::Answer Credentials::handle(const std::string& method, const std::string& group,
                                        const std::vector<std::string>& segments,
                                        const std::string& body) {
  const std::string kind = segments[0] == "data-plane-tokens" ? "token" : "certificate";
  if (segments.size() == 1) {
    if (method == "GET") return list(group, kind);
    if (method == "POST") return issue(group, kind, body);
    return error(405, "Method not allowed");
  }
  if (segments.size() == 2) {
    if (method == "DELETE") return revoke(group, kind, segments[1]);
    if (method == "GET") {
      Answer one = list(group, kind, segments[1]);
      if (one.status != 200) return one;
      const Json data = Json::parse(one.body)["data"];
      return data.empty() ? error(404, "Not found") : Answer{200, data[0].dump()};
    }
    return error(405, "Method not allowed");
  }
  return error(404, "Not found");
}

Credentials::Answer Credentials::issue(const std::string& group, const std::string& kind,
                                       const std::string& body) {
  const bool token = kind == "token";
  // Certificates: a year by default, 10 at most (the CA's life); tokens: a day, 30 at most.
  int64_t expires_in = token ? kDay : 365 * kDay;
  const int64_t max_expires_in = token ? 30 * kDay : 3650 * kDay;
  std::string name;
  if (!body.empty()) {
    Json j = Json::parse(body, nullptr, false);
    if (!j.is_object()) return error(400, "the body must be a JSON object");
    for (const auto& [key, value] : j.items()) {
      if (key == "name") {
        if (!value.is_string() || value.get<std::string>().size() > kMaxName) {
          return error(400, "must be a string of at most 128 characters", "name");
        }
        name = value.get<std::string>();
        for (unsigned char c : name) {
          if (c < 0x20 || c == 0x7f) return error(400, "must not contain control characters", "name");
        }
      } else if (key == "expires_in") {
        if (!value.is_number_integer() || value.get<int64_t>() < 60 ||
            value.get<int64_t>() > max_expires_in) {
          return error(400, absl::StrCat("must be a whole number of seconds from 60 to ",
                                         max_expires_in),
                       "expires_in");
        }
        expires_in = value.get<int64_t>();
      } else {
        return error(400, "unknown field", key);
      }
    }
  }
  const int64_t now = nowSeconds();
  const int64_t expires_at = now + expires_in;
  std::string secret, cert_pem, key_pem, fingerprint, serial;
  if (token) {
    secret = pki::randomToken();
    fingerprint = pki::sha256Hex(secret);
  } else {
    pki::IssueRequest req;
    req.common_name = name.empty() ? absl::StrCat("portico-dp ", group) : name;
    req.uris = {absl::StrCat(sync::kGroupUriPrefix, group)};
    req.server = false;
    req.not_after_unix = expires_at;
    auto issued = pki::issue(ca_, req);
    if (!issued.ok()) return error(400, std::string(issued.status().message()), "expires_in");
    cert_pem = issued->cert_pem;
    key_pem = issued->key_pem;
    fingerprint = issued->sha256;
    serial = issued->serial;
  }
  std::string id;
  absl::Status st = pool_.run([&](pqxx::connection& conn) -> absl::Status {
    pqxx::work txn(conn);
    id = txn.exec_params(
                "INSERT INTO dp_credentials (id, group_name, kind, name, fingerprint, serial, "
                "expires_at, created_at) VALUES (gen_random_uuid(), $1, $2, $3, $4, $5, $6, $7) "
                "RETURNING id::text",
                group, kind, name, fingerprint, serial, expires_at, now)[0][0]
             .as<std::string>();
    txn.commit();
    return absl::OkStatus();
  });
  if (!st.ok()) return error(503, std::string(st.message()));
  {
    // Known here at once (other replicas within their next refresh).
    absl::MutexLock lock(&mu_);
    Entry e{id, group, kind, fingerprint, name, serial, "", expires_at, now, std::nullopt};
    fingerprint_of_[id] = fingerprint;
    by_fingerprint_[fingerprint] = std::move(e);
  }
  const std::string command = runCommand(group, token, secret);
  const std::string unit = absl::StrCat(
      "[Unit]\nDescription=Portico data plane (control plane ", group,
      ")\nAfter=network-online.target\nWants=network-online.target\n\n[Service]\n"
      "User=portico\nExecStart=/usr/bin/",
      command, " --config_cache_path=/var/lib/portico/config.cache\n",
      "Restart=always\nNoNewPrivileges=yes\nProtectSystem=strict\nStateDirectory=portico\n"
      "AmbientCapabilities=CAP_NET_BIND_SERVICE\n\n[Install]\nWantedBy=multi-user.target\n");
  // Kubernetes: a Secret with the material, a Deployment mounting it at /etc/portico.
  const std::string app = absl::StrCat("portico-dp-", group);
  auto indent = [](const std::string& pem) {
    return absl::StrReplaceAll(pem.substr(0, pem.find_last_not_of('\n') + 1),
                               {{"\n", "\n    "}});
  };
  std::string secret_data = absl::StrCat("  cluster-ca.crt: |\n    ", indent(ca_.cert_pem), "\n");
  if (!token) {
    absl::StrAppend(&secret_data, "  cluster.crt: |\n    ", indent(cert_pem),
                    "\n  cluster.key: |\n    ", indent(key_pem), "\n");
  }
  const std::string k8s = absl::StrCat(
      "apiVersion: v1\nkind: Secret\nmetadata:\n  name: ", app, "-cluster\ntype: Opaque\n",
      "stringData:\n", secret_data, "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n",
      "  name: ", app, "\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: ", app,
      "\n  template:\n    metadata:\n      labels:\n        app: ", app,
      "\n    spec:\n      containers:\n        - name: portico-dp\n          image: ",
      options_.dp_image, "\n          args:\n", [&] {
        std::string args;
        for (absl::string_view part : absl::StrSplit(command, ' ')) {
          if (part == "portico-dp") continue;
          absl::StrAppend(&args, "            - \"", part, "\"\n");
        }
        return args;
      }(),
      "          ports:\n            - containerPort: 8000\n            - containerPort: 8100\n",
      "          readinessProbe:\n            httpGet: {path: /status/ready, port: 8100}\n",
      "          volumeMounts:\n            - {name: cluster, mountPath: /etc/portico, "
      "readOnly: true}\n      volumes:\n        - name: cluster\n          secret: {secretName: ",
      app, "-cluster}\n");
  Json out{{"id", id},
           {"name", name},
           {"ca_cert", ca_.cert_pem},
           {"expires_at", expires_at},
           {"run", {{"command", command}, {"systemd_unit", unit}, {"kubernetes", k8s}}}};
  if (token) {
    out["token"] = secret;
  } else {
    out["cert"] = cert_pem;
    out["key"] = key_pem;
    out["serial"] = serial;
    out["fingerprint"] = fingerprint;
  }
  LOG_INFO(kProvisioningLog, "issued a data plane %s %s for control plane %s (expires %s)", kind, id, group,
           rfc3339(expires_at));
  return {201, out.dump()};
}

Credentials::Answer Credentials::list(const std::string& group, const std::string& kind,
                                      const std::string& id) {
  Json data = Json::array();
  absl::Status st = pool_.run([&](pqxx::connection& conn) -> absl::Status {
    pqxx::read_transaction txn(conn);
    for (const auto& r : txn.exec_params(
             "SELECT id::text, name, fingerprint, serial, expires_at, created_at, revoked_at, "
             "used_by FROM dp_credentials WHERE group_name = $1 AND kind = $2 "
             "AND ($3 = '' OR id::text = $3) ORDER BY created_at, id",
             group, kind, id)) {
      Json item{{"id", r[0].as<std::string>()},
                {"name", r[1].as<std::string>()},
                {"expires_at", r[4].as<int64_t>()},
                {"created_at", r[5].as<int64_t>()},
                {"revoked_at", r[6].is_null() ? Json() : Json(r[6].as<int64_t>())}};
      if (kind == "certificate") {
        item["fingerprint"] = r[2].as<std::string>();
        item["serial"] = r[3].as<std::string>();
      } else {
        item["used_by"] = r[7].is_null() ? Json() : Json(r[7].as<std::string>());
      }
      data.push_back(std::move(item));
    }
    return absl::OkStatus();
  });
  if (!st.ok()) return error(503, std::string(st.message()));
  const size_t total = data.size();
  return {200, Json{{"data", std::move(data)},
                    {"meta", {{"page", {{"number", 1}, {"size", total}, {"total", total}}}}}}
                   .dump()};
}

Credentials::Answer Credentials::revoke(const std::string& group, const std::string& kind,
                                        const std::string& id) {
  bool found = false;
  const int64_t now = nowSeconds();
  absl::Status st = pool_.run([&](pqxx::connection& conn) -> absl::Status {
    pqxx::work txn(conn);
    // Ids are UUIDs: compare as text so a malformed one is simply not found.
    const pqxx::result r = txn.exec_params(
        "UPDATE dp_credentials SET revoked_at = coalesce(revoked_at, $4) WHERE id::text = $1 "
        "AND group_name = $2 AND kind = $3 RETURNING fingerprint",
        id, group, kind, now);
    found = !r.empty();
    txn.commit();
    return absl::OkStatus();
  });
  if (!st.ok()) return error(503, std::string(st.message()));
  if (!found) return error(404, "Not found");
  {
    absl::MutexLock lock(&mu_);
    if (auto f = fingerprint_of_.find(id); f != fingerprint_of_.end()) {
      auto& e = by_fingerprint_[f->second];
      if (!e.revoked_at) e.revoked_at = now;
    }
  }
  LOG_INFO(kProvisioningLog, "revoked data plane %s %s of control plane %s", kind, id, group);
  return {204, ""};
}

}  // namespace portico::cp::provisioning
