#include "data_plane/plugins/logging/log_files.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>

namespace portico::dp::plugins::logging {
namespace {

std::atomic<uint64_t> g_generation{1};

std::mutex g_files_mu;
std::map<std::string, std::weak_ptr<LogFile>>& files() {
  static auto* const kMap = new std::map<std::string, std::weak_ptr<LogFile>>();
  return *kMap;
}

int openPath(const std::string& path) {
  return ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

bool writeAll(int fd, std::string_view data, std::string* err) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      *err = std::strerror(errno);
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

}  // namespace

// Closed when the last writer using it lets go (a reopen never closes under a write).
struct LogFile::Fd {
  explicit Fd(int f) : fd(f) {}
  ~Fd() { ::close(fd); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  const int fd;
};

std::shared_ptr<LogFile> LogFile::get(const std::string& path) {
  std::lock_guard<std::mutex> lock(g_files_mu);
  auto& map = files();
  for (auto it = map.begin(); it != map.end();) {
    it = it->second.expired() ? map.erase(it) : std::next(it);
  }
  if (auto it = map.find(path); it != map.end()) {
    if (auto f = it->second.lock()) {
      return f;
    }
  }
  auto f = std::make_shared<LogFile>(path);
  map[path] = f;
  return f;
}

bool LogFile::append(std::string_view line, bool reopen, std::string* err) {
  if (reopen) {
    const int fd = openPath(path_);
    if (fd < 0) {
      *err = std::string("failed to open the file: ") + std::strerror(errno);
      return false;
    }
    const Fd closer(fd);
    return writeAll(fd, line, err);
  }
  std::shared_ptr<Fd> fd;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const uint64_t gen = g_generation.load(std::memory_order_acquire);
    if (fd_ == nullptr || generation_ != gen) {
      const int f = openPath(path_);
      if (f < 0) {
        *err = std::string("failed to open the file: ") + std::strerror(errno);
        fd_.reset();  // tried again on the next write
        return false;
      }
      fd_ = std::make_shared<Fd>(f);
      generation_ = gen;
    }
    fd = fd_;
  }
  return writeAll(fd->fd, line, err);
}

void reopenLogFiles() { g_generation.fetch_add(1, std::memory_order_acq_rel); }

}  // namespace portico::dp::plugins::logging
