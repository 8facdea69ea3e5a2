#include "tests/support/wire_util.h"

#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>

namespace portico::testing {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

bool writeAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) {
        continue;
      }
      return false;
    }
    off += static_cast<size_t>(n);
  }
  return true;
}

bool dechunk(const std::string& in, std::string* out) {
  size_t pos = 0;
  while (true) {
    size_t eol = in.find("\r\n", pos);
    if (eol == std::string::npos) {
      return false;
    }
    size_t size = std::strtoul(in.substr(pos, eol - pos).c_str(), nullptr, 16);
    pos = eol + 2;
    if (size == 0) {
      return true;
    }
    if (pos + size > in.size()) {
      return false;
    }
    out->append(in, pos, size);
    pos += size + 2;
  }
}

std::optional<std::pair<std::string, std::string>> headerField(std::string line) {
  if (!line.empty() && line.back() == '\r') {
    line.pop_back();
  }
  const size_t colon = line.find(':');
  if (colon == std::string::npos) {
    return std::nullopt;
  }
  std::string value = line.substr(colon + 1);
  value.erase(0, value.find_first_not_of(" \t"));
  return std::make_pair(lower(line.substr(0, colon)), std::move(value));
}

}  // namespace portico::testing
