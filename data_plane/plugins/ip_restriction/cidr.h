// IPv4/IPv6 addresses and CIDR ranges, parsed once (config) and matched without allocating
// (per request).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace portico::dp::plugins::ip_restriction {

struct Cidr {
  bool v6 = false;
  std::array<uint8_t, 16> net{};  // masked network address (4 bytes used for v4)
  int prefix = 0;
};

// "10.0.0.1", "10.0.0.0/8", "::1", "2001:db8::/32"; nullopt when invalid (bad address,
// prefix out of range).
std::optional<Cidr> parseCidr(std::string_view text);

// An address parsed for matching; nullopt when `text` is no IP literal.
struct Address {
  bool v6 = false;
  std::array<uint8_t, 16> bytes{};
};
std::optional<Address> parseAddress(std::string_view text);

bool contains(const Cidr& cidr, const Address& addr);
bool containsAny(const std::vector<Cidr>& list, const Address& addr);

}  // namespace portico::dp::plugins::ip_restriction
