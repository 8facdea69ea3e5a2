// file-log's files. One descriptor per path for the whole process (Kong keeps one per worker
// and path), opened with O_WRONLY|O_CREAT|O_APPEND and mode 0644 as Kong does, shared by every
// worker and config naming that path. reopenLogFiles() (the DP's SIGUSR1) makes each file
// reopen its path before its next write, so a log rotated by renaming goes on in a new file.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <string_view>

namespace portico::dp::plugins::logging {

class LogFile {
 public:
  // The file for `path`, shared with every other holder.
  static std::shared_ptr<LogFile> get(const std::string& path);

  // Appends `line` with one write(2) on O_APPEND (a small line lands whole, never interleaved
  // with another writer's, on a local file system). The worker writes it itself, as Kong's
  // file-log does: a write of a few hundred bytes to the page cache does not wait for the
  // disk. With `reopen` the path is opened and closed around this write only (Kong's
  // reopen=true). False with the reason in `err` when the file cannot be opened or written.
  bool append(std::string_view line, bool reopen, std::string* err);

  explicit LogFile(std::string path) : path_(std::move(path)) {}

 private:
  struct Fd;
  const std::string path_;
  std::mutex mu_;
  std::shared_ptr<Fd> fd_;  // the cached descriptor; writers hold it while writing
  uint64_t generation_ = 0;
};

// Every file reopens its path before its next write (SIGUSR1; logrotate's postrotate).
void reopenLogFiles();

}  // namespace portico::dp::plugins::logging
