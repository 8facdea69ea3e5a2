// The Dev Portal's scrypt password hashes, random tokens and login/sign-up rate limiter.
#include <chrono>
#include <set>
#include <string>
#include <thread>

#include <catch2/catch.hpp>

#include "control_plane/portal/portal_crypto.h"
#include "control_plane/portal/rate_limiter.h"

namespace portico::cp::portal {
namespace {

// Cheap parameters where the cost is not what is tested.
constexpr ScryptCost kFast{1024, 8, 1};

TEST_CASE("portal passwords: scrypt with a salt per hash, parameters kept with it") {
  const std::string a = hashPassword("correct horse battery", kFast);
  const std::string b = hashPassword("correct horse battery", kFast);
  CHECK(a.rfind("scrypt$1024$8$1$", 0) == 0);
  CHECK(a != b);  // different salts
  CHECK(verifyPassword("correct horse battery", a));
  CHECK(verifyPassword("correct horse battery", b));
  CHECK_FALSE(verifyPassword("correct horse batterY", a));
  CHECK_FALSE(verifyPassword("", a));
  // The default cost, as stored for developers.
  const std::string strong = hashPassword("pw");
  CHECK(strong.rfind("scrypt$32768$8$1$", 0) == 0);
  CHECK(verifyPassword("pw", strong));
}

TEST_CASE("portal passwords: a malformed or tampered hash never verifies") {
  const std::string good = hashPassword("pw", kFast);
  CHECK_FALSE(verifyPassword("pw", ""));
  CHECK_FALSE(verifyPassword("pw", "pw"));
  CHECK_FALSE(verifyPassword("pw", "bcrypt$1024$8$1$AAAA$AAAA"));
  std::string other_n = good;
  other_n.replace(7, 4, "2048");  // another cost: another hash
  CHECK_FALSE(verifyPassword("pw", other_n));
  // Costs a stored row could use to burn memory or time are refused before hashing.
  CHECK_FALSE(verifyPassword("pw", "scrypt$4294967296$8$1$AAAAAAAAAAAAAAAAAAAAAA==$" +
                                       std::string(44, 'A')));
  CHECK_FALSE(verifyPassword("pw", "scrypt$1000$8$1$AAAAAAAAAAAAAAAAAAAAAA==$" +
                                       std::string(44, 'A')));  // not a power of two
  CHECK_FALSE(verifyPassword("pw", "scrypt$1024$9999$1$AAAAAAAAAAAAAAAAAAAAAA==$" +
                                       std::string(44, 'A')));
  CHECK_FALSE(verifyPassword("pw", good.substr(0, good.size() - 4)));  // short hash
}

TEST_CASE("portal tokens: random hex, UUIDs, SHA-256, constant-time comparison") {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    const std::string t = randomHex(32);
    CHECK(t.size() == 64);
    CHECK(t.find_first_not_of("0123456789abcdef") == std::string::npos);
    seen.insert(t);
  }
  CHECK(seen.size() == 100);
  const std::string u = randomUuid();
  REQUIRE(u.size() == 36);
  CHECK(u[14] == '4');
  CHECK(std::string("89ab").find(u[19]) != std::string::npos);
  CHECK(sha256Hex("abc") ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(constantTimeEquals("abc", "abc"));
  CHECK_FALSE(constantTimeEquals("abc", "abd"));
  CHECK_FALSE(constantTimeEquals("abc", "abcd"));
}

TEST_CASE("portal rate limiter: a limit per key over a window from its first hit") {
  RateLimiter limiter(3, std::chrono::seconds(60));
  for (int i = 0; i < 3; ++i) {
    CHECK(limiter.allow("ip:1"));
  }
  CHECK_FALSE(limiter.allow("ip:1"));
  CHECK_FALSE(limiter.allow("ip:1"));
  CHECK(limiter.allow("ip:2"));  // keys are independent
  RateLimiter off(0, std::chrono::seconds(60));
  for (int i = 0; i < 100; ++i) {
    CHECK(off.allow("k"));
  }
}

TEST_CASE("portal rate limiter: the window restarts once it has passed") {
  RateLimiter limiter(1, std::chrono::seconds(1));
  CHECK(limiter.allow("k"));
  CHECK_FALSE(limiter.allow("k"));
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  CHECK(limiter.allow("k"));
  CHECK_FALSE(limiter.allow("k"));
}

TEST_CASE("portal rate limiter: a flood of distinct keys cannot grow it past max_keys") {
  RateLimiter limiter(5, std::chrono::seconds(60), /*max_keys=*/100);
  for (int i = 0; i < 100; ++i) {
    CHECK(limiter.allow("k" + std::to_string(i)));
  }
  CHECK_FALSE(limiter.allow("new"));  // full: new keys are refused
  CHECK(limiter.allow("k7"));         // known keys keep their budget
}

}  // namespace
}  // namespace portico::cp::portal
