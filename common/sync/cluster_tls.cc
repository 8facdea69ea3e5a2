#include "common/sync/cluster_tls.h"

#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <fstream>
#include <memory>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace portico::sync {
namespace {

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;

absl::StatusOr<X509Ptr> parse(const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(),
                                                                static_cast<int>(pem.size())),
                                                BIO_free);
  if (bio == nullptr) {
    return absl::InternalError("out of memory");
  }
  X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
  if (x == nullptr) {
    return absl::InvalidArgumentError("not a PEM certificate");
  }
  return X509Ptr(x);
}

// The SAN entries of type `type` (GEN_DNS, GEN_URI) as text.
std::vector<std::string> sans(X509* x, int type) {
  std::vector<std::string> out;
  auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x, NID_subject_alt_name, nullptr,
                                                             nullptr));
  if (names == nullptr) {
    return out;
  }
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
    if (n->type != type) {
      continue;
    }
    const ASN1_IA5STRING* s = type == GEN_DNS ? n->d.dNSName : n->d.uniformResourceIdentifier;
    out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                     static_cast<size_t>(ASN1_STRING_length(s)));
  }
  GENERAL_NAMES_free(names);
  return out;
}

}  // namespace

absl::StatusOr<ClusterMtls> parseClusterMtls(std::string_view mode, bool have_ca) {
  if (mode.empty()) {
    return have_ca ? ClusterMtls::kPki : ClusterMtls::kShared;
  }
  if (mode == "shared") return ClusterMtls::kShared;
  if (mode == "pki") return ClusterMtls::kPki;
  return absl::InvalidArgumentError(
      absl::StrCat("invalid --cluster_mtls '", std::string(mode), "' (expected shared or pki)"));
}

absl::StatusOr<std::string> readPemFile(const std::string& what, const std::string& path) {
  if (path.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("no ", what, " given"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read ", what, " ", path));
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::StatusOr<std::string> certificateSha256(const std::string& pem) {
  auto x = parse(pem);
  if (!x.ok()) {
    return x.status();
  }
  unsigned char* der = nullptr;
  const int len = i2d_X509(x->get(), &der);
  if (len <= 0) {
    return absl::InvalidArgumentError("cannot encode certificate");
  }
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(der, static_cast<size_t>(len), digest);
  OPENSSL_free(der);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : digest) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 0xf]);
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> certificateGroups(const std::string& pem) {
  auto x = parse(pem);
  if (!x.ok()) {
    return x.status();
  }
  std::vector<std::string> groups;
  const std::string prefix = kGroupUriPrefix;
  for (const std::string& uri : sans(x->get(), GEN_URI)) {
    if (uri.size() > prefix.size() && uri.compare(0, prefix.size(), prefix) == 0) {
      groups.push_back(uri.substr(prefix.size()));
    }
  }
  return groups;
}

absl::StatusOr<std::string> certificateName(const std::string& pem) {
  auto x = parse(pem);
  if (!x.ok()) {
    return x.status();
  }
  std::vector<std::string> dns = sans(x->get(), GEN_DNS);
  if (!dns.empty()) {
    return dns.front();
  }
  char cn[256] = {};
  if (X509_NAME_get_text_by_NID(X509_get_subject_name(x->get()), NID_commonName, cn,
                                sizeof(cn)) <= 0) {
    return absl::InvalidArgumentError("certificate has neither a DNS name nor a common name");
  }
  return std::string(cn);
}

}  // namespace portico::sync
