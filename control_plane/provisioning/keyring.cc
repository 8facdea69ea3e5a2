#include "control_plane/provisioning/keyring.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "control_plane/provisioning/pki.h"

namespace portico::cp::pki {
namespace {

constexpr size_t kKeySize = 32;
constexpr size_t kNonceSize = 12;
constexpr size_t kTagSize = 16;
constexpr char kSealedPrefix[] = "v1:";
constexpr size_t kSealedPrefixSize = sizeof(kSealedPrefix) - 1;
constexpr char kCannotDecrypt[] = "cannot decrypt: wrong --keyring or corrupted data";

struct CipherCtxFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using CipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree>;

// Wipes a buffer that held key material when it goes out of scope.
struct Wipe {
  std::string& s;
  ~Wipe() { OPENSSL_cleanse(s.data(), s.size()); }
};

std::string toHex(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 0xf]);
  }
  return out;
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

absl::Status malformed(const std::string& path) {
  return absl::InvalidArgumentError(
      absl::StrCat("keyring ", path, " is malformed (expected 64 lower-case hex characters)"));
}

// Reads an existing keyring file; `fd` is open for reading.
absl::StatusOr<std::string> readKey(const std::string& path, int fd) {
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot stat keyring ", path, ": ", std::strerror(errno)));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat("keyring ", path, " is not a regular file"));
  }
  // Checked on the open descriptor, so a chmod between check and read cannot slip through.
  if ((st.st_mode & 077) != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("keyring %s has mode %04o: it must not be accessible by group or others "
                        "(chmod 600 %s)",
                        path, st.st_mode & 07777, path));
  }
  // 64 hex + "\n" is 65 bytes; reading one more tells a longer file from a valid one.
  std::string text(kKeySize * 2 + 2, '\0');
  Wipe wipe_text{text};
  size_t len = 0;
  while (len < text.size()) {
    const ssize_t n = ::read(fd, text.data() + len, text.size() - len);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot read keyring ", path, ": ", std::strerror(errno)));
    }
    if (n == 0) {
      break;
    }
    len += static_cast<size_t>(n);
  }
  if (len == kKeySize * 2 + 1 && text[kKeySize * 2] == '\n') {
    --len;
  }
  if (len != kKeySize * 2) {
    return malformed(path);
  }
  std::string key(kKeySize, '\0');
  for (size_t i = 0; i < kKeySize; ++i) {
    const int hi = hexValue(text[2 * i]);
    const int lo = hexValue(text[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      OPENSSL_cleanse(key.data(), key.size());
      return malformed(path);
    }
    key[i] = static_cast<char>(hi << 4 | lo);
  }
  return key;
}

// Creates the keyring file with a fresh key. kAlreadyExists if another process created it
// first (the caller then reads that one, so concurrent first starts agree on one key).
absl::StatusOr<std::string> createKey(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST) {
      return absl::AlreadyExistsError(path);
    }
    return absl::InvalidArgumentError(
        absl::StrCat("cannot create keyring ", path, ": ", std::strerror(errno)));
  }
  std::string key(kKeySize, '\0');
  randomBytes(reinterpret_cast<unsigned char*>(key.data()), key.size());
  std::string text = toHex(key) + "\n";
  Wipe wipe_text{text};
  // open() applied the umask, which can only remove bits; fchmod makes the mode exactly 0600.
  bool ok = ::fchmod(fd, 0600) == 0;
  size_t written = 0;
  while (ok && written < text.size()) {
    const ssize_t n = ::write(fd, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    ok = n > 0;
    written += ok ? static_cast<size_t>(n) : 0;
  }
  // A key lost in a crash would make every sealed secret unreadable: flush before using it.
  ok = ok && ::fsync(fd) == 0;
  const int saved_errno = errno;
  ::close(fd);
  if (!ok) {
    ::unlink(path.c_str());  // never leave a half-written key for the next start to refuse
    OPENSSL_cleanse(key.data(), key.size());
    return absl::InvalidArgumentError(
        absl::StrCat("cannot write keyring ", path, ": ", std::strerror(saved_errno)));
  }
  return key;
}

}  // namespace

absl::StatusOr<Keyring> Keyring::loadOrCreate(const std::string& path) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    // O_NONBLOCK: a FIFO at `path` must not hang startup; fstat then refuses it.
    const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0) {
      auto key = readKey(path, fd);
      ::close(fd);
      if (!key.ok()) {
        return key.status();
      }
      return Keyring(std::move(*key));
    }
    if (errno != ENOENT) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot open keyring ", path, ": ", std::strerror(errno)));
    }
    auto created = createKey(path);
    if (created.ok()) {
      return Keyring(std::move(*created));
    }
    if (created.status().code() != absl::StatusCode::kAlreadyExists) {
      return created.status();
    }
    // Lost a creation race: read the winner's key.
  }
  return absl::InvalidArgumentError(absl::StrCat("cannot open keyring ", path));
}

Keyring Keyring::fromKey(std::string key32) {
  if (key32.size() != kKeySize) {
    std::fputs("portico: Keyring::fromKey needs a 32-byte key\n", stderr);
    std::abort();
  }
  return Keyring(std::move(key32));
}

Keyring::~Keyring() { OPENSSL_cleanse(key_.data(), key_.size()); }

std::string Keyring::seal(std::string_view plaintext, std::string_view associated_data) const {
  if (plaintext.size() > INT_MAX / 2 || associated_data.size() > INT_MAX / 2) {
    std::fputs("portico: Keyring::seal input too large\n", stderr);  // secrets are small
    std::abort();
  }
  std::string raw(kNonceSize + plaintext.size() + kTagSize, '\0');
  auto* out = reinterpret_cast<unsigned char*>(raw.data());
  randomBytes(out, kNonceSize);
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  int final_len = 0;
  // A failure here is out of memory or a broken libcrypto, not bad input: there is no caller
  // that could recover, and returning unsealed data is not an option.
  const bool ok =
      ctx != nullptr &&
      EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr,
                         reinterpret_cast<const unsigned char*>(key_.data()), out) == 1 &&
      EVP_EncryptUpdate(ctx.get(), nullptr, &len,
                        reinterpret_cast<const unsigned char*>(associated_data.data()),
                        static_cast<int>(associated_data.size())) == 1 &&
      EVP_EncryptUpdate(ctx.get(), out + kNonceSize, &len,
                        reinterpret_cast<const unsigned char*>(plaintext.data()),
                        static_cast<int>(plaintext.size())) == 1 &&
      EVP_EncryptFinal_ex(ctx.get(), out + kNonceSize + len, &final_len) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(kTagSize),
                          out + kNonceSize + plaintext.size()) == 1;
  if (!ok) {
    std::fputs("portico: AES-256-GCM encryption failed\n", stderr);
    std::abort();
  }
  return absl::StrCat(kSealedPrefix, absl::Base64Escape(raw));
}

absl::StatusOr<std::string> Keyring::open(std::string_view sealed,
                                          std::string_view associated_data) const {
  if (sealed.substr(0, kSealedPrefixSize) != kSealedPrefix) {
    return absl::InvalidArgumentError(kCannotDecrypt);
  }
  // Abseil here is built with its own string_view, not std::string_view.
  const absl::string_view encoded(sealed.data() + kSealedPrefixSize,
                                  sealed.size() - kSealedPrefixSize);
  std::string raw;
  // Base64Unescape is lenient (padding, unused trailing bits); re-encoding rejects every
  // non-canonical spelling, so one sealed value has exactly one accepted text.
  if (associated_data.size() > INT_MAX / 2 || encoded.size() > INT_MAX / 2 ||
      !absl::Base64Unescape(encoded, &raw) || raw.size() < kNonceSize + kTagSize ||
      absl::Base64Escape(raw) != encoded) {
    return absl::InvalidArgumentError(kCannotDecrypt);
  }
  const auto* in = reinterpret_cast<const unsigned char*>(raw.data());
  const size_t text_size = raw.size() - kNonceSize - kTagSize;
  std::string plaintext(text_size, '\0');
  auto* out = reinterpret_cast<unsigned char*>(plaintext.data());
  // The tag is set before the data goes in; EVP only compares it in DecryptFinal.
  std::string tag(raw.substr(kNonceSize + text_size));
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  int final_len = 0;
  const bool ok =
      ctx != nullptr &&
      EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr,
                         reinterpret_cast<const unsigned char*>(key_.data()), in) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(kTagSize),
                          tag.data()) == 1 &&
      EVP_DecryptUpdate(ctx.get(), nullptr, &len,
                        reinterpret_cast<const unsigned char*>(associated_data.data()),
                        static_cast<int>(associated_data.size())) == 1 &&
      EVP_DecryptUpdate(ctx.get(), out, &len, in + kNonceSize, static_cast<int>(text_size)) == 1 &&
      EVP_DecryptFinal_ex(ctx.get(), out + len, &final_len) == 1;
  if (!ok) {
    // Decrypted bytes that failed authentication must not linger.
    OPENSSL_cleanse(plaintext.data(), plaintext.size());
    return absl::InvalidArgumentError(kCannotDecrypt);
  }
  return plaintext;
}

}  // namespace portico::cp::pki
