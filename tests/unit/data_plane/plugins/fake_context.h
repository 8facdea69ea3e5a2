// A RequestContext without a proxy, for driving plugin phases directly (STYLE rule 12) in unit
// tests and benchmarks: the request is a parsed head; edits and replies are recorded.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "data_plane/plugins/consumers.h"
#include "data_plane/plugins/plugin.h"

namespace portico::dp::testing {

class FakeContext final : public RequestContext {
 public:
  // `raw_head` is a whole request head ("GET /p?q HTTP/1.1\r\n...\r\n\r\n"); it must outlive
  // the context. `consumers` too.
  FakeContext(const std::string& raw_head, const ConsumerIndex& consumers)
      : consumers_(consumers) {
    http::HeadParser parser;
    ok_ = parser.parseRequest(raw_head, &head_) == http::HeadParser::Status::kComplete;
  }
  bool parsed() const { return ok_; }
  // Back to the state before any phase ran (benchmarks reuse one context).
  void reset() {
    consumer_ = nullptr;
    credential_id_.clear();
    upstream_set.clear();
    upstream_removed.clear();
    query_override.reset();
    response_set.clear();
    local_status = 0;
    local_message.clear();
    shared_.clear();
  }

  // Interface
  std::string_view method() const override { return head_.method; }
  std::string_view path() const override { return head_.path; }
  std::string_view query() const override { return head_.query; }
  std::string_view scheme() const override { return "http"; }
  std::string_view host() const override { return head_.host; }
  std::string_view clientIp() const override { return client_ip; }
  const http::RequestHead& requestHead() const override { return head_; }
  bool bufferedBody(std::string_view* body) const override {
    if (!has_body) return false;
    *body = body_text;
    return true;
  }
  void limitRequestBody(uint64_t max_bytes) override { body_limit = max_bytes; }
  const config::v1::Route* route() const override { return route_; }
  const config::v1::Service* service() const override { return service_; }
  void setRoute(const config::v1::Route* route, const config::v1::Service* service) {
    route_ = route;
    service_ = service;
  }
  const ConsumerIndex& consumers() const override { return consumers_; }
  const Consumer* consumer() const override { return consumer_; }
  std::string_view credentialId() const override { return credential_id_; }
  void authenticate(const Consumer* consumer, std::string_view credential_id) override {
    consumer_ = consumer;
    credential_id_.assign(credential_id);
  }
  void setUpstreamHeader(std::string_view name, std::string_view value) override {
    upstream_set.emplace_back(std::string(name), std::string(value));
  }
  void addUpstreamHeader(std::string_view name, std::string_view value) override {
    upstream_set.emplace_back(std::string(name), std::string(value));
  }
  void removeUpstreamHeader(std::string_view name) override {
    upstream_removed.emplace_back(name);
  }
  void setUpstreamQuery(std::string query) override { query_override = std::move(query); }
  bool responseHeader(std::string_view, std::string_view*) const override { return false; }
  void setResponseHeader(std::string_view name, std::string_view value) override {
    response_set.emplace_back(std::string(name), std::string(value));
  }
  void addResponseHeader(std::string_view name, std::string_view value) override {
    response_set.emplace_back(std::string(name), std::string(value));
  }
  void removeResponseHeader(std::string_view) override {}
  void sendLocalReply(int status, std::string_view message) override {
    if (local_status == 0) {
      local_status = status;
      local_message.assign(message);
    }
  }
  void sendLocalBody(int status, std::string_view body, std::string_view) override {
    if (local_status == 0) {
      local_status = status;
      local_message.assign(body);
    }
  }
  int localStatus() const override { return local_status; }
  int responseStatus() const override { return local_status; }
  absl::flat_hash_map<std::string, std::string>& shared() override { return shared_; }
  const Latencies& latencies() const override { return latency; }
  Source responseSource() const override { return source; }
  uint64_t requestSize() const override { return request_size; }
  uint64_t responseSize() const override { return response_size; }

  std::string client_ip = "127.0.0.1";
  bool has_body = false;
  std::string body_text;
  std::vector<std::pair<std::string, std::string>> upstream_set;
  std::vector<std::string> upstream_removed;
  std::optional<std::string> query_override;
  std::vector<std::pair<std::string, std::string>> response_set;
  int local_status = 0;
  std::string local_message;
  uint64_t body_limit = 0;
  Latencies latency;
  Source source = Source::kNone;
  uint64_t request_size = 0;
  uint64_t response_size = 0;

 private:
  http::RequestHead head_;
  bool ok_ = false;
  const ConsumerIndex& consumers_;
  const config::v1::Route* route_ = nullptr;
  const config::v1::Service* service_ = nullptr;
  const Consumer* consumer_ = nullptr;
  std::string credential_id_;
  absl::flat_hash_map<std::string, std::string> shared_;
};

}  // namespace portico::dp::testing
