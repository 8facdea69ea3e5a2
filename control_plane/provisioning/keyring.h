// The control plane's keyring: one AES-256 key, kept in a file next to the CP (--keyring).
// The key seals secrets the CP keeps in PostgreSQL (such as the cluster CA's private key), so a
// database dump alone does not reveal them.
#pragma once

#include <string>
#include <string_view>
#include <utility>

#include "absl/status/statusor.h"

namespace portico::cp::pki {

class Keyring {
 public:
  // Reads the 32-byte key from `path` (64 lower-case hex characters, optional trailing
  // newline). If the file does not exist, creates it (mode 0600; the parent folder must exist)
  // with a fresh random key. kInvalidArgument, one line naming the path, for a file that exists
  // but is malformed or is accessible by group or others (mode & 077): refused like ssh does
  // with a private key. Called once at startup; blocking file I/O.
  static absl::StatusOr<Keyring> loadOrCreate(const std::string& path);

  // For tests. `key32` must be exactly 32 bytes; anything else aborts (a programming error).
  static Keyring fromKey(std::string key32);

  Keyring(const Keyring&) = default;
  Keyring(Keyring&&) = default;
  Keyring& operator=(const Keyring&) = default;
  Keyring& operator=(Keyring&&) = default;
  ~Keyring();  // wipes the key

  // AES-256-GCM with a fresh random nonce. Output: "v1:" + base64(12-byte nonce || ciphertext
  // || 16-byte tag). `associated_data` is authenticated but not stored; open() must be given
  // the same bytes (bind a sealed value to where it is stored, e.g. "ca_key:<ca id>", so it
  // cannot be moved to another row). Thread-safe.
  std::string seal(std::string_view plaintext, std::string_view associated_data) const;

  // The plaintext, or kInvalidArgument "cannot decrypt: wrong --keyring or corrupted data" for
  // any tampering, wrong key, wrong associated data or bad format. Thread-safe.
  absl::StatusOr<std::string> open(std::string_view sealed, std::string_view associated_data) const;

 private:
  explicit Keyring(std::string key) : key_(std::move(key)) {}

  std::string key_;  // exactly 32 bytes
};

}  // namespace portico::cp::pki
