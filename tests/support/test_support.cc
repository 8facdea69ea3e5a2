#include "tests/support/test_support.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <thread>

#include "tests/support/wire_util.h"

namespace portico::testing {
namespace {

constexpr const char* kPgBin = "/usr/lib/postgresql/15/bin";


std::string shellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

// Runs a shell command, returns (exit status, combined output).
std::pair<int, std::string> run(const std::string& command) {
  std::string output;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) {
    return {-1, "popen failed"};
  }
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) {
    output.append(buf, n);
  }
  int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

std::string randomSuffix() {
  static std::atomic<int> counter{0};
  std::random_device rd;
  return std::to_string(getpid()) + "_" + std::to_string(counter++) + "_" +
         std::to_string(rd() % 100000);
}

std::string makeTempDir(const std::string& prefix) {
  std::string tmpl = (std::filesystem::temp_directory_path() / (prefix + "XXXXXX")).string();
  if (mkdtemp(tmpl.data()) == nullptr) {
    throw std::runtime_error("mkdtemp failed: " + std::string(std::strerror(errno)));
  }
  return tmpl;
}

std::string replaceDbname(const std::string& dsn, const std::string& dbname) {
  std::istringstream in(dsn);
  std::string part, out;
  bool replaced = false;
  while (in >> part) {
    if (part.rfind("dbname=", 0) == 0) {
      part = "dbname=" + dbname;
      replaced = true;
    }
    out += (out.empty() ? "" : " ") + part;
  }
  if (!replaced) {
    out += " dbname=" + dbname;
  }
  return out;
}

}  // namespace

// A port below Linux's ephemeral range (32768-60999) that binds now. A port from bind(0) is an
// ephemeral one, which any outgoing connection (a test's clients, PostgreSQL's) may take as its
// source port before the server we start binds it; below the range only listeners compete,
// and the bind check sees them.
int freePort() {
  static std::mutex mu;
  static std::mt19937 rng(static_cast<uint32_t>(std::random_device{}()) ^
                          static_cast<uint32_t>(::getpid()));
  for (int attempt = 0; attempt < 1000; ++attempt) {
    int port;
    {
      std::lock_guard<std::mutex> lock(mu);
      port = 20000 + static_cast<int>(rng() % 12000);
    }
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    ::close(fd);
    if (ok) {
      return port;
    }
  }
  throw std::runtime_error("freePort: no free port in 20000-31999");
}

std::string buildDir() {
  const char* dir = std::getenv("PORTICO_BUILD_DIR");
  return dir != nullptr ? dir : std::filesystem::current_path().string();
}

std::string sourceDir() {
  const char* dir = std::getenv("PORTICO_SOURCE_DIR");
  return dir != nullptr ? dir : std::filesystem::current_path().string();
}

std::string binaryPath(const std::string& name) { return buildDir() + "/bin/" + name; }

// ---------------------------------------------------------------------------------------------
// TestPostgres

struct TestPostgres::Server {
  std::string dir;
  int port = 0;
  bool as_postgres_user = false;

  std::string asUser(const std::string& cmd) const {
    return as_postgres_user ? "runuser -u postgres -- " + cmd : cmd;
  }

  Server() {
    dir = makeTempDir("portico-pg-");
    as_postgres_user = (geteuid() == 0);
    if (as_postgres_user) {
      run("chown postgres " + shellQuote(dir));
    }
    port = freePort();
    auto [rc, out] = run(asUser(std::string(kPgBin) + "/initdb -D " + shellQuote(dir + "/data") +
                                " -U postgres --auth=trust -E UTF8 --no-sync"));
    if (rc != 0) {
      throw std::runtime_error("initdb failed: " + out);
    }
    std::string opts = "-p " + std::to_string(port) + " -k " + dir +
                       " -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off"
                       " -c full_page_writes=off";
    auto [rc2, out2] = run(asUser(std::string(kPgBin) + "/pg_ctl -D " + shellQuote(dir + "/data") +
                                  " -o " + shellQuote(opts) + " -l " +
                                  shellQuote(dir + "/server.log") + " -w start"));
    if (rc2 != 0) {
      throw std::runtime_error("pg_ctl start failed: " + out2);
    }
  }

  ~Server() {
    run(asUser(std::string(kPgBin) + "/pg_ctl -D " + shellQuote(dir + "/data") +
               " -m immediate -w stop"));
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

TestPostgres::TestPostgres() {
  const char* shared = std::getenv("PORTICO_TEST_PG_DSN");
  if (shared != nullptr && *shared != '\0') {
    admin_dsn_ = shared;
  } else {
    own_server_ = std::make_unique<Server>();
    admin_dsn_ = "host=127.0.0.1 port=" + std::to_string(own_server_->port) +
                 " user=postgres dbname=postgres";
  }
  database_ = "portico_test_" + randomSuffix();
  auto [rc, out] = run("psql " + shellQuote(admin_dsn_) + " -v ON_ERROR_STOP=1 -qAt -c " +
                       shellQuote("CREATE DATABASE " + database_));
  if (rc != 0) {
    throw std::runtime_error("CREATE DATABASE failed: " + out);
  }
  dsn_ = replaceDbname(admin_dsn_, database_);
}

TestPostgres::~TestPostgres() {
  if (own_server_ == nullptr) {
    run("psql " + shellQuote(admin_dsn_) + " -qAt -c " +
        shellQuote("DROP DATABASE IF EXISTS " + database_ + " WITH (FORCE)"));
  }
}

std::string TestPostgres::psql(const std::string& sql) const {
  auto [rc, out] =
      run("psql " + shellQuote(dsn_) + " -v ON_ERROR_STOP=1 -qAt -c " + shellQuote(sql));
  if (rc != 0) {
    throw std::runtime_error("psql failed: " + out);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Process

Process::Process(std::string binary, std::vector<std::string> args,
                 std::map<std::string, std::string> env) {
  static std::atomic<int> counter{0};
  log_path_ = (std::filesystem::temp_directory_path() /
               ("portico-proc-" + std::to_string(getpid()) + "-" +
                std::to_string(counter++) + ".log"))
                  .string();
  std::vector<std::string> argv_storage;
  argv_storage.push_back(binary);
  for (auto& a : args) {
    argv_storage.push_back(a);
  }
  // Signals stay blocked across fork until the child has reset the handlers it inherited
  // (e.g. Catch2's), so an early SIGTERM kills the child instead of running a test handler.
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_ = ::fork();
  if (pid_ != 0) {
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }
  if (pid_ < 0) {
    throw std::runtime_error("fork failed");
  }
  if (pid_ == 0) {
    for (int sig = 1; sig < NSIG; ++sig) {
      ::signal(sig, SIG_DFL);
    }
    sigset_t none;
    sigemptyset(&none);
    ::pthread_sigmask(SIG_SETMASK, &none, nullptr);
    int fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::close(fd);
    }
    for (auto& [k, v] : env) {
      ::setenv(k.c_str(), v.c_str(), 1);
    }
    std::vector<char*> argv;
    for (auto& a : argv_storage) {
      argv.push_back(a.data());
    }
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    std::fprintf(stderr, "exec %s failed: %s\n", argv[0], std::strerror(errno));
    ::_exit(127);
  }
}

Process::~Process() {
  if (running()) {
    stop(std::chrono::seconds(5));
  }
  std::error_code ec;
  if (std::getenv("PORTICO_KEEP_LOGS") == nullptr) {
    std::filesystem::remove(log_path_, ec);
  }
}

bool Process::running() {
  if (pid_ <= 0 || exit_status_ != -1000) {
    return false;
  }
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    return false;
  }
  return r == 0;
}

int Process::wait(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (running()) {
    if (std::chrono::steady_clock::now() > deadline) {
      return -1000;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return exit_status_;
}

int Process::stop(std::chrono::milliseconds timeout) {
  if (!running()) {
    return exit_status_;
  }
  ::kill(pid_, SIGTERM);
  if (wait(timeout) == -1000) {
    ::kill(pid_, SIGKILL);
    wait(std::chrono::seconds(5));
  }
  return exit_status_;
}

std::string Process::log() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// ---------------------------------------------------------------------------------------------
// HTTP client

int connectLoopback(int port, int recv_timeout_s) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) {
    return -1;
  }
  timeval tv{recv_timeout_s, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

int64_t rssKb(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}

HttpResponse httpRequest(const std::string& host, int port, const std::string& method,
                         const std::string& target, const std::string& body,
                         std::map<std::string, std::string> headers) {
  HttpResponse response;
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) {
    return response;
  }
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, host.c_str(), &addr.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return response;
  }
  bool has_host = false, has_ct = false;
  for (auto& [k, v] : headers) {
    has_host |= lower(k) == "host";
    has_ct |= lower(k) == "content-type";
  }
  std::string req = method + " " + target + " HTTP/1.1\r\n";
  if (!has_host) {
    req += "Host: " + host + ":" + std::to_string(port) + "\r\n";
  }
  if (!body.empty() && !has_ct) {
    req += "Content-Type: application/json\r\n";
  }
  for (auto& [k, v] : headers) {
    req += k + ": " + v + "\r\n";
  }
  if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
    req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  req += "Connection: close\r\n\r\n" + body;
  if (!writeAll(fd, req)) {
    ::close(fd);
    return response;
  }
  std::string raw;
  char buf[16384];
  ssize_t n;
  // EINTR: a socket with SO_RCVTIMEO is never restarted after a signal, not even one with
  // no handler: a SIGCHLD that another thread blocks (std::system) still wakes this one.
  while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0 || (n < 0 && errno == EINTR)) {
    if (n > 0) {
      raw.append(buf, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  size_t head_end = raw.find("\r\n\r\n");
  if (head_end == std::string::npos || raw.size() < 12) {
    return response;
  }
  response.status = std::atoi(raw.substr(9, 3).c_str());
  std::istringstream head(raw.substr(0, head_end));
  std::string line;
  std::getline(head, line);
  while (std::getline(head, line)) {
    if (auto field = headerField(std::move(line))) {
      response.headers[field->first] = std::move(field->second);
    }
  }
  std::string rest = raw.substr(head_end + 4);
  if (lower(response.headers["transfer-encoding"]) == "chunked") {
    dechunk(rest, &response.body);
  } else {
    response.body = rest;
  }
  return response;
}

bool waitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (condition()) {
      return true;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace portico::testing
