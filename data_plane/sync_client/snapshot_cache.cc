#include "data_plane/sync_client/snapshot_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace portico::dp {
namespace {

constexpr uint32_t kFormatVersion = 1;
// The cache holds at most the compressed form of the largest snapshot we accept, plus the
// envelope; refuse to read anything bigger.
constexpr uint64_t kEnvelopeSlack = 1 << 20;

absl::Status errnoError(const std::string& what, const std::string& path) {
  return absl::UnavailableError(absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

absl::Status writeAll(int fd, const std::string& data, const std::string& path) {
  size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return errnoError("cannot write", path);
    }
    off += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status saveSnapshotCache(const std::string& path, const sync::AssembledSnapshot& snapshot) {
  sync::v1::CachedSnapshot cached;
  cached.set_format_version(kFormatVersion);
  cached.set_generation(snapshot.generation);
  cached.set_config_hash(snapshot.config_hash);
  cached.set_encoding(snapshot.encoding);
  cached.set_payload_size(snapshot.payload_size);
  cached.set_payload(snapshot.encoded_payload);
  cached.set_saved_at_unix_ms(absl::ToUnixMillis(absl::Now()));
  std::string bytes;
  if (!cached.SerializeToString(&bytes)) {
    return absl::InternalError("cannot serialize the config cache");
  }

  const std::filesystem::path target(path);
  std::filesystem::path dir = target.parent_path();
  if (dir.empty()) {
    dir = ".";
  }
  const std::string tmp = absl::StrCat(path, ".tmp.", ::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    return errnoError("cannot create", tmp);
  }
  absl::Status st = writeAll(fd, bytes, tmp);
  if (st.ok() && ::fsync(fd) != 0) {
    st = errnoError("cannot fsync", tmp);
  }
  if (::close(fd) != 0 && st.ok()) {
    st = errnoError("cannot close", tmp);
  }
  if (st.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    st = errnoError("cannot rename to", path);
  }
  if (!st.ok()) {
    ::unlink(tmp.c_str());
    return st;
  }
  // The rename is durable only once the directory entry is.
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return absl::OkStatus();
}

absl::StatusOr<CachedConfig> loadSnapshotCache(const std::string& path,
                                               uint64_t max_snapshot_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      return absl::NotFoundError(absl::StrCat("no config cache at ", path));
    }
    return errnoError("cannot open", path);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return errnoError("cannot stat", path);
  }
  const uint64_t limit = max_snapshot_bytes + kEnvelopeSlack;
  if (static_cast<uint64_t>(st.st_size) > limit) {
    ::close(fd);
    return absl::ResourceExhaustedError(absl::StrCat("config cache ", path, " is too large"));
  }
  std::string bytes(static_cast<size_t>(st.st_size), '\0');
  size_t off = 0;
  while (off < bytes.size()) {
    const ssize_t n = ::read(fd, bytes.data() + off, bytes.size() - off);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      break;
    }
    off += static_cast<size_t>(n);
  }
  ::close(fd);
  if (off != bytes.size()) {
    return absl::DataLossError(absl::StrCat("short read of config cache ", path));
  }
  sync::v1::CachedSnapshot cached;
  if (!cached.ParseFromString(bytes)) {
    return absl::DataLossError(absl::StrCat("config cache ", path, " is corrupt"));
  }
  if (cached.format_version() != kFormatVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "config cache ", path, " has unknown format version ", cached.format_version()));
  }
  CachedConfig out;
  if (absl::Status st = sync::decodePayloadSplit(cached.encoding(), cached.payload(),
                                                 cached.config_hash(), max_snapshot_bytes,
                                                 &out.snapshot, &out.key_auth);
      !st.ok()) {
    return absl::Status(st.code(), absl::StrCat("config cache ", path, ": ", st.message()));
  }
  if (out.snapshot.generation() != cached.generation()) {
    return absl::DataLossError(absl::StrCat("config cache ", path, " generation mismatch"));
  }
  out.generation = cached.generation();
  out.config_hash = cached.config_hash();
  return out;
}

}  // namespace portico::dp
