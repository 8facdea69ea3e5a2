#include "data_plane/plugins/ip_restriction/cidr.h"

#include <arpa/inet.h>

#include <cstring>
#include <string>

namespace portico::dp::plugins::ip_restriction {

std::optional<Address> parseAddress(std::string_view text) {
  char buf[64];
  if (text.empty() || text.size() >= sizeof(buf)) {
    return std::nullopt;
  }
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  Address a;
  if (inet_pton(AF_INET, buf, a.bytes.data()) == 1) {
    return a;
  }
  if (inet_pton(AF_INET6, buf, a.bytes.data()) == 1) {
    a.v6 = true;
    // An IPv4-mapped IPv6 address (::ffff:a.b.c.d) matches IPv4 ranges.
    static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(a.bytes.data(), kMapped, 12) == 0) {
      Address v4;
      std::memcpy(v4.bytes.data(), a.bytes.data() + 12, 4);
      return v4;
    }
    return a;
  }
  return std::nullopt;
}

std::optional<Cidr> parseCidr(std::string_view text) {
  const size_t slash = text.find('/');
  std::optional<Address> addr = parseAddress(text.substr(0, slash));
  if (!addr) {
    return std::nullopt;
  }
  Cidr c;
  c.v6 = addr->v6;
  const int bits = c.v6 ? 128 : 32;
  c.prefix = bits;
  if (slash != std::string_view::npos) {
    std::string_view p = text.substr(slash + 1);
    if (p.empty() || p.size() > 3 || p.find_first_not_of("0123456789") != std::string_view::npos) {
      return std::nullopt;
    }
    c.prefix = std::stoi(std::string(p));
    if (c.prefix > bits) {
      return std::nullopt;
    }
  }
  for (int i = 0; i < bits / 8; ++i) {
    const int keep = std::max(0, std::min(8, c.prefix - i * 8));
    const uint8_t mask = keep == 0 ? 0 : static_cast<uint8_t>(0xff << (8 - keep));
    c.net[static_cast<size_t>(i)] = addr->bytes[static_cast<size_t>(i)] & mask;
  }
  return c;
}

bool contains(const Cidr& cidr, const Address& addr) {
  if (cidr.v6 != addr.v6) {
    return false;
  }
  const int bits = cidr.v6 ? 128 : 32;
  for (int i = 0; i < bits / 8 && i * 8 < cidr.prefix; ++i) {
    const int keep = std::min(8, cidr.prefix - i * 8);
    const uint8_t mask = static_cast<uint8_t>(0xff << (8 - keep));
    if ((addr.bytes[static_cast<size_t>(i)] & mask) != cidr.net[static_cast<size_t>(i)]) {
      return false;
    }
  }
  return true;
}

bool containsAny(const std::vector<Cidr>& list, const Address& addr) {
  for (const Cidr& c : list) {
    if (contains(c, addr)) return true;
  }
  return false;
}

}  // namespace portico::dp::plugins::ip_restriction
