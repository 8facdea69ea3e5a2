// Test support: real dependencies for integration and end-to-end tests. A throwaway
// PostgreSQL, free loopback ports, child processes for the real portico binaries, and a
// small blocking HTTP client. Everything started here is stopped and removed by destructors.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/echo_upstream.h"

namespace portico::testing {

// A free TCP port on 127.0.0.1 (bound to port 0, read back, closed).
int freePort();

// Where the build tree is (PORTICO_BUILD_DIR, set by CTest) and the source tree.
std::string buildDir();
std::string sourceDir();
// Path of one of our executables ("portico-cp", "portico-dp", "portico-echo"): <build>/bin/<name>.
std::string binaryPath(const std::string& name);

// A PostgreSQL database for one test. If PORTICO_TEST_PG_DSN names a running server (as
// tests/run.sh arranges), a fresh database is created on it and dropped afterwards; otherwise
// a private server is initdb'ed in a temporary folder on a free port (as the `postgres` user
// when running as root) and removed afterwards.
class TestPostgres {
 public:
  TestPostgres();
  ~TestPostgres();
  TestPostgres(const TestPostgres&) = delete;
  TestPostgres& operator=(const TestPostgres&) = delete;

  // libpq connection string (key=value form) of the test's own, empty database.
  const std::string& dsn() const { return dsn_; }
  // Runs SQL through psql against the test database; returns psql's stdout. Fails the test
  // (throws std::runtime_error) when psql fails.
  std::string psql(const std::string& sql) const;

 private:
  struct Server;
  std::unique_ptr<Server> own_server_;  // only when no shared server was given
  std::string admin_dsn_;               // the server's maintenance database
  std::string database_;
  std::string dsn_;
};

// A child process with its stdout and stderr captured to a log file. Killed (SIGTERM, then
// SIGKILL after 5 s) on destruction if still running.
class Process {
 public:
  Process(std::string binary, std::vector<std::string> args,
          std::map<std::string, std::string> env = {});
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  int pid() const { return pid_; }
  bool running();
  // Sends SIGTERM and waits up to `timeout`; returns the exit status (or -signal).
  int stop(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Waits for the process to exit on its own; returns its exit status, or nullopt-like -1000
  // on timeout.
  int wait(std::chrono::milliseconds timeout);
  std::string log() const;  // everything it printed so far
  const std::string& logPath() const { return log_path_; }

 private:
  int pid_ = -1;
  int exit_status_ = -1000;
  std::string log_path_;
};

struct HttpResponse {
  int status = 0;  // 0 = could not connect / no response
  std::map<std::string, std::string> headers;  // lower-cased names
  std::string body;
};

// A TCP connection to 127.0.0.1:port with a receive timeout; -1 if it cannot connect.
int connectLoopback(int port, int recv_timeout_s = 10);

// Resident memory of process `pid` in kB (VmRSS), -1 if unknown.
int64_t rssKb(int pid);

// One blocking HTTP/1.1 request on a fresh connection ("Connection: close").
HttpResponse httpRequest(const std::string& host, int port, const std::string& method,
                         const std::string& target, const std::string& body = "",
                         std::map<std::string, std::string> headers = {});

// Polls `condition` every 20 ms until it returns true or `timeout` passes.
bool waitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

}  // namespace portico::testing
