// admin_load: a small load client for the Admin API over keep-alive HTTP/1.1 connections.
// One thread per connection, each request waits for its response (closed loop).
//
//   admin_load create <port> <conns> <count> [prefix]   POST /services {name:<prefix><n>}
//   admin_load routes <port> <conns> <count> [prefix]   POST /routes {name, paths}
//   admin_load read   <port> <conns> <seconds> <names>  GET /services/<prefix><n>, n < names
//   admin_load list   <port> <type> <size>              pages through /<type>?size=<size>
// Prints one line: "<mode> ops=<n> seconds=<s> rate=<ops/s> p50_ms=.. p99_ms=.. max_ms=.. errors=<n>".
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

class Conn {
 public:
  explicit Conn(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      std::perror("connect");
      std::exit(1);
    }
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  ~Conn() { close(fd_); }

  // Sends one request and reads the response; returns the status (0 on a broken connection).
  int request(const std::string& method, const std::string& target, const std::string& body,
              std::string* response_body = nullptr) {
    std::string req = method + " " + target + " HTTP/1.1\r\nHost: bench\r\n";
    if (!body.empty()) {
      req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
             "\r\n";
    }
    req += "\r\n" + body;
    for (size_t off = 0; off < req.size();) {
      const ssize_t n = send(fd_, req.data() + off, req.size() - off, MSG_NOSIGNAL);
      if (n <= 0) {
        return 0;
      }
      off += static_cast<size_t>(n);
    }
    size_t header_end;
    while ((header_end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill()) {
        return 0;
      }
    }
    const int status = std::atoi(buf_.c_str() + 9);
    size_t length = 0;
    std::string headers = buf_.substr(0, header_end);
    for (auto& c : headers) {
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    if (const size_t p = headers.find("content-length:"); p != std::string::npos) {
      length = std::strtoul(headers.c_str() + p + 15, nullptr, 10);
    }
    while (buf_.size() < header_end + 4 + length) {
      if (!fill()) {
        return 0;
      }
    }
    if (response_body != nullptr) {
      *response_body = buf_.substr(header_end + 4, length);
    }
    buf_.erase(0, header_end + 4 + length);
    return status;
  }

 private:
  bool fill() {
    char tmp[65536];
    const ssize_t n = recv(fd_, tmp, sizeof(tmp), 0);
    if (n <= 0) {
      return false;
    }
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }
  int fd_;
  std::string buf_;
};

struct Stats {
  std::mutex mu;
  std::vector<double> latencies_ms;
  std::atomic<long> errors{0};
  void add(const std::vector<double>& l) {
    std::lock_guard<std::mutex> lock(mu);
    latencies_ms.insert(latencies_ms.end(), l.begin(), l.end());
  }
};

void report(const char* mode, Stats& s, double seconds) {
  auto& l = s.latencies_ms;
  std::sort(l.begin(), l.end());
  auto pct = [&](double p) { return l.empty() ? 0.0 : l[static_cast<size_t>(p * (l.size() - 1))]; };
  std::printf("%s ops=%zu seconds=%.2f rate=%.0f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f errors=%ld\n",
              mode, l.size(), seconds, l.size() / seconds, pct(0.5), pct(0.99), pct(1.0),
              s.errors.load());
}

int usage() {
  std::fprintf(stderr,
               "usage: admin_load create|routes <port> <conns> <count> [prefix]\n"
               "       admin_load read <port> <conns> <seconds> <names>\n"
               "       admin_load list <port> <type> <size>\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    return usage();
  }
  const std::string mode = argv[1];
  const int port = std::atoi(argv[2]);
  Stats stats;
  if (mode == "create" || mode == "routes") {
    const int conns = std::atoi(argv[3]);
    const long count = std::atol(argv[4]);
    const std::string prefix = argc > 5 ? argv[5] : "svc";
    std::atomic<long> next{0};
    const auto t0 = Clock::now();
    std::vector<std::thread> threads;
    for (int c = 0; c < conns; ++c) {
      threads.emplace_back([&] {
        Conn conn(port);
        std::vector<double> lat;
        long i;
        while ((i = next++) < count) {
          const std::string name = prefix + std::to_string(i);
          const std::string body =
              mode == "create"
                  ? "{\"name\":\"" + name + "\",\"host\":\"" + name + ".test\"}"
                  : "{\"name\":\"" + name + "\",\"paths\":[\"/" + name + "\"]}";
          const auto s = Clock::now();
          const int st = conn.request("POST", mode == "create" ? "/services" : "/routes", body);
          lat.push_back(std::chrono::duration<double, std::milli>(Clock::now() - s).count());
          if (st != 201) {
            stats.errors++;
          }
        }
        stats.add(lat);
      });
    }
    for (auto& t : threads) {
      t.join();
    }
    report(mode.c_str(), stats, std::chrono::duration<double>(Clock::now() - t0).count());
    return stats.errors.load() == 0 ? 0 : 1;
  }
  if (mode == "read") {
    if (argc < 6) {
      return usage();
    }
    const int conns = std::atoi(argv[3]);
    const double seconds = std::atof(argv[4]);
    const long names = std::atol(argv[5]);
    const std::string prefix = argc > 6 ? argv[6] : "svc";
    const auto t0 = Clock::now();
    const auto until = t0 + std::chrono::duration_cast<Clock::duration>(
                                std::chrono::duration<double>(seconds));
    std::vector<std::thread> threads;
    for (int c = 0; c < conns; ++c) {
      threads.emplace_back([&, c] {
        Conn conn(port);
        std::vector<double> lat;
        unsigned long i = static_cast<unsigned long>(c) * 7919;
        while (Clock::now() < until) {
          const auto s = Clock::now();
          const int st = conn.request("GET", "/services/" + prefix + std::to_string(i++ % names), "");
          lat.push_back(std::chrono::duration<double, std::milli>(Clock::now() - s).count());
          if (st != 200) {
            stats.errors++;
          }
        }
        stats.add(lat);
      });
    }
    for (auto& t : threads) {
      t.join();
    }
    report("read", stats, std::chrono::duration<double>(Clock::now() - t0).count());
    return stats.errors.load() == 0 ? 0 : 1;
  }
  if (mode == "list") {
    const std::string type = argv[3];
    const int size = std::atoi(argv[4]);
    Conn conn(port);
    std::string next = "/" + type + "?size=" + std::to_string(size);
    long items = 0;
    std::vector<double> lat;
    const auto t0 = Clock::now();
    while (!next.empty()) {
      std::string body;
      const auto s = Clock::now();
      const int st = conn.request("GET", next, "", &body);
      lat.push_back(std::chrono::duration<double, std::milli>(Clock::now() - s).count());
      if (st != 200) {
        stats.errors++;
        break;
      }
      // Count objects in "data" by their "id" keys; follow "next" (a JSON string or null).
      for (size_t p = 0; (p = body.find("\"id\":", p)) != std::string::npos; p += 5) {
        ++items;
      }
      const size_t n = body.rfind("\"next\":");
      next.clear();
      if (n != std::string::npos && body.compare(n + 7, 1, "\"") == 0) {
        const size_t end = body.find('"', n + 8);
        next = body.substr(n + 8, end - n - 8);
      }
    }
    stats.add(lat);
    std::printf("list items~=%ld pages=%zu ", items, lat.size());
    report(("list " + type).c_str(), stats,
           std::chrono::duration<double>(Clock::now() - t0).count());
    return stats.errors.load() == 0 ? 0 : 1;
  }
  return usage();
}
