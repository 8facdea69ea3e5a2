#include "data_plane/proxy/trusted_ips.h"

#include "absl/strings/str_cat.h"
#include "common/http/http_parser.h"

namespace portico::dp {
namespace {

bool prefixMatches(const uint8_t* a, const uint8_t* b, uint32_t bits) {
  uint32_t i = 0;
  for (; bits >= 8; bits -= 8, ++i) {
    if (a[i] != b[i]) {
      return false;
    }
  }
  if (bits == 0) {
    return true;
  }
  const uint8_t mask = static_cast<uint8_t>(0xff << (8 - bits));
  return (a[i] & mask) == (b[i] & mask);
}

}  // namespace

absl::StatusOr<TrustedIps> TrustedIps::parse(std::string_view list) {
  TrustedIps out;
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view item = http::trimOws(list.substr(0, comma));
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    if (item.empty()) {
      continue;
    }
    std::string_view ip = item;
    int64_t prefix = -1;
    if (size_t slash = item.find('/'); slash != std::string_view::npos) {
      ip = item.substr(0, slash);
      std::string_view digits = item.substr(slash + 1);
      prefix = 0;
      if (digits.empty() || digits.size() > 3) {
        return absl::InvalidArgumentError(absl::StrCat("invalid CIDR: ", std::string(item)));
      }
      for (char c : digits) {
        if (c < '0' || c > '9') {
          return absl::InvalidArgumentError(absl::StrCat("invalid CIDR: ", std::string(item)));
        }
        prefix = prefix * 10 + (c - '0');
      }
    }
    boost::system::error_code ec;
    boost::asio::ip::address addr = boost::asio::ip::make_address(std::string(ip), ec);
    if (ec) {
      return absl::InvalidArgumentError(absl::StrCat("invalid IP address: ", std::string(item)));
    }
    Net n;
    n.v6 = addr.is_v6();
    const int64_t max = n.v6 ? 128 : 32;
    if (prefix > max) {
      return absl::InvalidArgumentError(absl::StrCat("invalid CIDR: ", std::string(item)));
    }
    n.prefix = static_cast<uint32_t>(prefix < 0 ? max : prefix);
    if (n.v6) {
      auto b = addr.to_v6().to_bytes();
      std::copy(b.begin(), b.end(), n.bytes.begin());
    } else {
      auto b = addr.to_v4().to_bytes();
      std::copy(b.begin(), b.end(), n.bytes.begin());
    }
    out.nets_.push_back(n);
  }
  return out;
}

bool TrustedIps::contains(const boost::asio::ip::address& in) const {
  boost::asio::ip::address addr = in;
  if (addr.is_v6() && addr.to_v6().is_v4_mapped()) {
    addr = boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, addr.to_v6());
  }
  for (const Net& n : nets_) {
    if (n.v6 != addr.is_v6()) {
      continue;
    }
    if (n.v6) {
      auto b = addr.to_v6().to_bytes();
      if (prefixMatches(b.data(), n.bytes.data(), n.prefix)) {
        return true;
      }
    } else {
      auto b = addr.to_v4().to_bytes();
      if (prefixMatches(b.data(), n.bytes.data(), n.prefix)) {
        return true;
      }
    }
  }
  return false;
}

bool TrustedIps::contains(std::string_view text) const {
  boost::system::error_code ec;
  boost::asio::ip::address addr = boost::asio::ip::make_address(std::string(text), ec);
  return !ec && contains(addr);
}

}  // namespace portico::dp
