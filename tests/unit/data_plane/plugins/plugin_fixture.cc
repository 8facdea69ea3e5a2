#include "tests/unit/data_plane/plugins/plugin_fixture.h"

#include <ctime>
#include <optional>

#include "common/config/proto_json.h"
#include "data_plane/status/status_server.h"
#include <random>

namespace portico::dp::testing {
namespace {

std::string newUuid() {
  static std::mt19937_64 rng(std::random_device{}());
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < 32; ++i) {
    if (i == 8 || i == 12 || i == 16 || i == 20) out.push_back('-');
    int v = static_cast<int>(rng() & 15);
    if (i == 12) v = 4;
    if (i == 16) v = 8 + (v & 3);
    out.push_back(kHex[v]);
  }
  return out;
}

}  // namespace

PluginFixture::PluginFixture() {
  service_id_ = addService("svc");
  route_id_ = addRoute("r", "/", service_id_);
}

config::Json PluginFixture::add(const std::string& entity, config::Json input) {
  if (!input.contains("id")) {
    input["id"] = newUuid();
  }
  config::Json out;
  config::FieldErrors errors = config::processEntityJson(entity, input, &out);
  if (!errors.empty()) {
    FAIL("schema error on " << entity << ": " << errors.front().field << ": "
                            << errors.front().reason);
  }
  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  for (const char* ts : {"created_at", "updated_at"}) {
    if (out.contains(ts) && out[ts].is_null()) out[ts] = now;
  }
  if (entity == "basicauth_credentials") {
    out["password"] = config::basicAuthHash(out["password"].get<std::string>(),
                                            out["consumer"]["id"].get<std::string>());
  }
  const google::protobuf::FieldDescriptor* f = cfg_.GetDescriptor()->FindFieldByName(entity);
  REQUIRE(f != nullptr);
  google::protobuf::Message* msg = cfg_.GetReflection()->AddMessage(&cfg_, f);
  REQUIRE(config::jsonToProto(out, msg));
  return out;
}

std::string PluginFixture::addService(const std::string& name) {
  return add("services", {{"name", name},
                          {"url", "http://127.0.0.1:" + std::to_string(upstream_.port())},
                          {"connect_timeout", 2000},
                          {"read_timeout", 5000},
                          {"write_timeout", 5000}})["id"];
}

std::string PluginFixture::addRoute(const std::string& name, const std::string& path,
                                    const std::string& service_id) {
  config::Json route = {{"name", name}, {"paths", {path}}, {"strip_path", false}};
  if (!service_id.empty()) {
    route["service"] = {{"id", service_id}};
  }
  return add("routes", route)["id"];
}

absl::Status PluginFixture::apply() {
  cfg_.set_generation(++generation_);
  config::FieldErrors errors = config::validateSnapshot(cfg_);
  if (!errors.empty()) {
    const config::FieldError& e = errors.front();
    return absl::InvalidArgumentError(e.entity_type + " " + e.entity_id + ": " + e.field + ": " +
                                      e.reason);
  }
  std::string hash = "h";
  hash.append(std::to_string(generation_));
  auto snap = Snapshot::build(cfg_, hash);
  if (!snap.ok()) {
    return snap.status();
  }
  store_.set(*snap);
  if (!proxy_) {
    ProxyOptions opts;
    opts.listen_address = "127.0.0.1";
    opts.listen_port = 0;
    opts.workers = 1;
    auto started = ProxyServer::start(opts, store_);
    if (!started.ok()) {
      return started.status();
    }
    proxy_ = std::move(*started);
  }
  return absl::OkStatus();
}

WireResponse PluginFixture::get(const std::string& target, const std::string& head_extra) {
  return send("GET " + target + " HTTP/1.1\r\nHost: plugins.test\r\n" + head_extra + "\r\n");
}

WireResponse PluginFixture::send(const std::string& raw_request) {
  RawClient c(port());
  c.send(raw_request);
  const std::string method = raw_request.substr(0, raw_request.find(' '));
  return c.read(method);
}

std::string PluginFixture::metrics() const {
  return StatusServer::metricsText(store_, stats());
}

std::string PluginFixture::upstreamHeader(const WireResponse& r, const std::string& name) {
  // The echo writes "<name>: <value>\n" per header as received (names as the proxy sent them).
  size_t pos = 0;
  while (pos < r.body.size()) {
    size_t eol = r.body.find('\n', pos);
    if (eol == std::string::npos || eol == pos) break;
    const std::string line = r.body.substr(pos, eol - pos);
    size_t colon = line.find(": ");
    if (colon != std::string::npos && colon == name.size() &&
        std::equal(name.begin(), name.end(), line.begin(),
                   [](char a, char b) { return std::tolower(a) == std::tolower(b); })) {
      return line.substr(colon + 2);
    }
    pos = eol + 1;
  }
  return "";
}

std::string PluginFixture::upstreamRequestLine(const WireResponse& r) {
  return r.body.substr(0, r.body.find('\n'));
}

}  // namespace portico::dp::testing
