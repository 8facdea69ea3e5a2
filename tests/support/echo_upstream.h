// EchoUpstream: the demo upstream of deploy/quickstart.sh (portico-echo) and the tests'
// upstream. A library of its own so that portico-echo builds without the test harness.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace portico::testing {

// A minimal HTTP/1.1 upstream on 127.0.0.1 for tests and the quickstart demo. It answers with
// Content-Type: application/json and {"method","path","uri","query","headers","body",
// "body_size"} describing what it received (header names lower-cased, a repeated header or
// query argument as a list), status 200, or NNN for /status/NNN; and records each request.
class EchoUpstream {
 public:
  // port 0 = a free port. `record` keeps every request for received(); a long-running upstream
  // (portico-echo under a benchmark: millions of requests) must not, or the list's growth
  // stalls every connection (a 0.5 s p99 under wrk) and memory grows without bound.
  explicit EchoUpstream(int port = 0, bool record = true);
  ~EchoUpstream();
  int port() const { return port_; }
  struct Received {
    std::string method, target;
    std::map<std::string, std::string> headers;  // lower-cased names
    std::string body;
    std::string echo;  // the JSON answered (see below)
  };
  std::vector<Received> received() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
};

}  // namespace portico::testing
