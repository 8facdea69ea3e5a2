// Kong's trusted_ips: the peers whose X-Forwarded-* and real-IP headers are believed. Parsed
// once from the flag; checked once per client connection (the peer never changes).
#pragma once

#include <utility>  // Boost 1.74 asio headers use std::exchange without it

#include <boost/asio/ip/address.hpp>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace portico::dp {

class TrustedIps {
 public:
  // Comma-separated IPs and CIDRs ("10.0.0.0/8, ::1, 0.0.0.0/0"); "" = trust nobody.
  static absl::StatusOr<TrustedIps> parse(std::string_view list);
  bool empty() const { return nets_.empty(); }
  bool contains(const boost::asio::ip::address& addr) const;
  bool contains(std::string_view addr) const;  // false for anything not an IP literal

 private:
  struct Net {
    bool v6 = false;
    std::array<uint8_t, 16> bytes{};
    uint32_t prefix = 0;
  };
  std::vector<Net> nets_;
};

}  // namespace portico::dp
