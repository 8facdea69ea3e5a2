// TLS on both sides, with certificates generated in the test by the openssl CLI: the HTTPS
// listener picks the certificate by SNI (exact, wildcard, default self-signed), speaks TLS 1.2
// and 1.3, swaps certificates with the snapshot; upstream TLS verifies against the service's
// ca_certificates (tls_verify) and presents its client_certificate.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <catch2/catch.hpp>

#include "data_plane/proxy/proxy_server.h"
#include "tests/unit/data_plane/proxy/wire.h"

namespace portico::dp {
namespace {

namespace fs = std::filesystem;

std::string readFile(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A CA and leaf certificates made with the openssl CLI in a fresh temp dir.
struct Pki {
  fs::path dir;
  Pki() {
    char tmpl[] = "/tmp/portico-tls-XXXXXX";
    dir = ::mkdtemp(tmpl);
    run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
        "-subj /CN=portico-test-ca -keyout ca.key -out ca.crt");
    run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
        "-subj /CN=other-ca -keyout other-ca.key -out other-ca.crt");
    leaf("exact", "exact.test", "DNS:exact.test");
    leaf("exact2", "exact.test-v2", "DNS:exact.test");
    leaf("wild", "*.wild.test", "DNS:*.wild.test");
    leaf("upstream", "upstream", "IP:127.0.0.1");
    leaf("client", "portico-client", "DNS:portico-client");
  }
  ~Pki() { fs::remove_all(dir); }
  void run(const std::string& cmd) {
    const std::string full = "cd " + dir.string() + " && " + cmd + " >/dev/null 2>&1";
    REQUIRE(std::system(full.c_str()) == 0);
  }
  void leaf(const std::string& name, const std::string& cn, const std::string& san) {
    run("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj '/CN=" + cn +
        "' -keyout " + name + ".key -out " + name + ".csr");
    run("printf 'subjectAltName=" + san + "\\n' > " + name + ".ext && openssl x509 -req -in " +
        name + ".csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile " + name +
        ".ext -out " + name + ".crt");
  }
  std::string cert(const std::string& name) const { return readFile(dir / (name + ".crt")); }
  std::string key(const std::string& name) const { return readFile(dir / (name + ".key")); }
};

std::string peerCn(SSL* ssl) {
  X509* cert = SSL_get1_peer_certificate(ssl);
  if (cert == nullptr) return "none";
  char buf[256] = {0};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, sizeof(buf));
  X509_free(cert);
  return buf;
}

int connectTcp(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  return fd;
}

struct TlsResult {
  bool handshake = false;
  std::string cn, version, response;
};

// One HTTPS request (Connection: close) to the proxy; reads the response to EOF.
TlsResult httpsGet(int port, const std::string& sni, const std::string& path,
                   int max_version = 0) {
  TlsResult out;
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (max_version != 0) SSL_CTX_set_max_proto_version(ctx, max_version);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  SSL* ssl = SSL_new(ctx);
  int fd = connectTcp(port);
  SSL_set_fd(ssl, fd);
  if (!sni.empty()) SSL_set_tlsext_host_name(ssl, sni.c_str());
  if (SSL_connect(ssl) == 1) {
    out.handshake = true;
    out.cn = peerCn(ssl);
    out.version = SSL_get_version(ssl);
    const std::string req = "GET " + path + " HTTP/1.1\r\nHost: " +
                            (sni.empty() ? std::string("h") : sni) + "\r\nConnection: close\r\n\r\n";
    SSL_write(ssl, req.data(), static_cast<int>(req.size()));
    char buf[4096];
    for (;;) {
      int n = SSL_read(ssl, buf, sizeof(buf));
      if (n <= 0) break;
      out.response.append(buf, static_cast<size_t>(n));
    }
  }
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  ::close(fd);
  return out;
}

// A TLS upstream that asks for (and does not require) a client certificate and answers
// "sni=<server name> client=<client cert CN>".
class TlsUpstream {
 public:
  TlsUpstream(const std::string& cert, const std::string& key, const std::string& ca) {
    ctx_ = SSL_CTX_new(TLS_server_method());
    BIO* b = BIO_new_mem_buf(cert.data(), static_cast<int>(cert.size()));
    X509* x = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
    BIO_free(b);
    b = BIO_new_mem_buf(key.data(), static_cast<int>(key.size()));
    EVP_PKEY* k = PEM_read_bio_PrivateKey(b, nullptr, nullptr, nullptr);
    BIO_free(b);
    SSL_CTX_use_certificate(ctx_, x);
    SSL_CTX_use_PrivateKey(ctx_, k);
    X509_free(x);
    EVP_PKEY_free(k);
    b = BIO_new_mem_buf(ca.data(), static_cast<int>(ca.size()));
    X509* cax = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
    BIO_free(b);
    X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx_), cax);
    X509_free(cax);
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, [](int, X509_STORE_CTX*) { return 1; });
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    ::listen(fd_, 16);
    socklen_t len = sizeof(a);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~TlsUpstream() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
    SSL_CTX_free(ctx_);
  }
  int port() const { return port_; }

 private:
  void serve() {
    for (;;) {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0 || stop_) {
        if (c >= 0) ::close(c);
        return;
      }
      SSL* ssl = SSL_new(ctx_);
      SSL_set_fd(ssl, c);
      if (SSL_accept(ssl) == 1) {
        std::string req;
        char buf[4096];
        while (req.find("\r\n\r\n") == std::string::npos) {
          int n = SSL_read(ssl, buf, sizeof(buf));
          if (n <= 0) break;
          req.append(buf, static_cast<size_t>(n));
        }
        const char* sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
        const std::string body =
            "sni=" + std::string(sni ? sni : "none") + " client=" + peerCn(ssl);
        const std::string resp = "HTTP/1.1 200 OK\r\nContent-Length: " +
                                 std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" +
                                 body;
        SSL_write(ssl, resp.data(), static_cast<int>(resp.size()));
        SSL_shutdown(ssl);
      }
      SSL_free(ssl);
      ::close(c);
    }
  }
  SSL_CTX* ctx_ = nullptr;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

config::v1::Snapshot baseConfig(const Pki& pki, int echo_port, int tls_port,
                                const std::string& exact_cert) {
  config::v1::Snapshot cfg;
  cfg.set_generation(1);
  auto* c1 = cfg.add_certificates();
  c1->set_id("cert-exact");
  c1->set_cert(pki.cert(exact_cert));
  c1->set_key(pki.key(exact_cert));
  auto* c2 = cfg.add_certificates();
  c2->set_id("cert-wild");
  c2->set_cert(pki.cert("wild"));
  c2->set_key(pki.key("wild"));
  auto* c3 = cfg.add_certificates();
  c3->set_id("cert-client");
  c3->set_cert(pki.cert("client"));
  c3->set_key(pki.key("client"));
  auto* s1 = cfg.add_snis();
  s1->set_name("exact.test");
  s1->mutable_certificate()->set_id("cert-exact");
  auto* s2 = cfg.add_snis();
  s2->set_name("*.wild.test");
  s2->mutable_certificate()->set_id("cert-wild");
  auto* ca = cfg.add_ca_certificates();
  ca->set_id("ca-good");
  ca->set_cert(pki.cert("ca"));
  auto* ca2 = cfg.add_ca_certificates();
  ca2->set_id("ca-other");
  ca2->set_cert(pki.cert("other-ca"));

  auto service = [&](const std::string& id, const std::string& protocol, int port) {
    auto* s = cfg.add_services();
    s->set_id(id);
    s->set_protocol(protocol);
    s->set_host("127.0.0.1");
    s->set_port(port);
    s->set_enabled(true);
    s->set_connect_timeout(2000);
    s->set_read_timeout(2000);
    s->set_write_timeout(2000);
    return s;
  };
  auto route = [&](const std::string& id, const std::string& path, const std::string& svc) {
    auto* r = cfg.add_routes();
    r->set_id(id);
    r->add_protocols("http");
    r->add_protocols("https");
    r->add_paths(path);
    r->set_strip_path(false);
    r->set_service_id(svc);
    return r;
  };
  service("echo", "http", echo_port);
  route("r-echo", "/", "echo");
  auto* secure = route("r-secure", "/secure", "echo");
  secure->clear_protocols();
  secure->add_protocols("https");
  auto* verified = service("tls-verified", "https", tls_port);
  verified->set_tls_verify(true);
  verified->add_ca_certificates("ca-good");
  route("r-verified", "/verified", "tls-verified");
  auto* wrong = service("tls-wrong-ca", "https", tls_port);
  wrong->set_tls_verify(true);
  wrong->set_tls_verify_depth(2);
  wrong->add_ca_certificates("ca-other");
  route("r-wrong", "/wrong-ca", "tls-wrong-ca");
  service("tls-noverify", "https", tls_port);
  route("r-noverify", "/noverify", "tls-noverify");
  auto* mtls = service("tls-mtls", "https", tls_port);
  mtls->set_tls_verify(true);
  mtls->add_ca_certificates("ca-good");
  mtls->set_client_certificate("cert-client");
  route("r-mtls", "/mtls", "tls-mtls");
  return cfg;
}

struct Fixture {
  Pki pki;
  testing::ScriptedUpstream echo;
  TlsUpstream tls_upstream{pki.cert("upstream"), pki.key("upstream"), pki.cert("ca")};
  SnapshotStore store;
  std::unique_ptr<ProxyServer> proxy;
  Fixture() {
    auto snap = Snapshot::build(baseConfig(pki, echo.port(), tls_upstream.port(), "exact"), "h");
    REQUIRE(snap.ok());
    store.set(*snap);
    ProxyOptions opts;
    opts.listen_address = "127.0.0.1";
    opts.listen_port = 0;
    opts.ssl_enabled = true;
    opts.ssl_listen_address = "127.0.0.1";
    opts.ssl_listen_port = 0;
    opts.workers = 2;
    auto started = ProxyServer::start(opts, store);
    REQUIRE(started.ok());
    proxy = std::move(*started);
  }
};

TEST_CASE("tls: the certificate is chosen by SNI: exact, wildcard, default self-signed") {
  Fixture f;
  const int port = f.proxy->tlsPort();
  REQUIRE(port != 0);
  CHECK(httpsGet(port, "exact.test", "/").cn == "exact.test");
  CHECK(httpsGet(port, "a.wild.test", "/").cn == "*.wild.test");
  CHECK(httpsGet(port, "a.b.wild.test", "/").cn == "*.wild.test");
  CHECK(httpsGet(port, "EXACT.test", "/").cn == "exact.test");  // SNI is case-insensitive
  CHECK(httpsGet(port, "unknown.test", "/").cn == "localhost");
  CHECK(httpsGet(port, "", "/").cn == "localhost");
}

TEST_CASE("tls: TLS 1.2 and TLS 1.3 both work; requests are proxied as https") {
  Fixture f;
  const int port = f.proxy->tlsPort();
  TlsResult r12 = httpsGet(port, "exact.test", "/hello", TLS1_2_VERSION);
  REQUIRE(r12.handshake);
  CHECK(r12.version == "TLSv1.2");
  CHECK(r12.response.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  TlsResult r13 = httpsGet(port, "exact.test", "/hello");
  CHECK(r13.version == "TLSv1.3");
  INFO(r13.response);
  CHECK(r13.response.find("X-Forwarded-Proto: https\n") != std::string::npos);
  CHECK(r13.response.find("X-Forwarded-Port: " + std::to_string(port) + "\n") !=
        std::string::npos);
  // An https-only route: served over TLS, 426 over plain http.
  CHECK(httpsGet(port, "exact.test", "/secure").response.rfind("HTTP/1.1 200", 0) == 0);
  testing::RawClient plain(f.proxy->port());
  plain.send("GET /secure HTTP/1.1\r\nHost: h\r\n\r\n");
  CHECK(plain.read().status == 426);
}

TEST_CASE("tls: upstream TLS verification, depth, client certificate") {
  Fixture f;
  const int port = f.proxy->tlsPort();
  auto body = [](const TlsResult& r) { return r.response.substr(r.response.find("\r\n\r\n") + 4); };
  TlsResult ok = httpsGet(port, "exact.test", "/verified");
  CHECK(ok.response.rfind("HTTP/1.1 200", 0) == 0);
  CHECK(body(ok) == "sni=none client=none");  // IP literal host: no SNI, verified by IP SAN
  TlsResult wrong = httpsGet(port, "exact.test", "/wrong-ca");
  CHECK(wrong.response.rfind("HTTP/1.1 502", 0) == 0);
  CHECK(f.proxy->stats().totals().upstream_tls_errors_total >= 1);
  TlsResult noverify = httpsGet(port, "exact.test", "/noverify");
  CHECK(noverify.response.rfind("HTTP/1.1 200", 0) == 0);
  TlsResult mtls = httpsGet(port, "exact.test", "/mtls");
  CHECK(body(mtls) == "sni=none client=portico-client");
  // Plain-http clients reach TLS upstreams too.
  testing::RawClient plain(f.proxy->port());
  plain.send("GET /verified HTTP/1.1\r\nHost: h\r\n\r\n");
  CHECK(plain.read().body == "sni=none client=none");
}

TEST_CASE("tls: a new snapshot swaps certificates for new handshakes") {
  Fixture f;
  const int port = f.proxy->tlsPort();
  CHECK(httpsGet(port, "exact.test", "/").cn == "exact.test");
  auto snap = Snapshot::build(
      baseConfig(f.pki, f.echo.port(), f.tls_upstream.port(), "exact2"), "h2");
  REQUIRE(snap.ok());
  f.store.set(*snap);
  CHECK(httpsGet(port, "exact.test", "/").cn == "exact.test-v2");
}

TEST_CASE("tls: a bad certificate in the config fails the snapshot build") {
  Pki pki;
  config::v1::Snapshot cfg;
  auto* c = cfg.add_certificates();
  c->set_id("bad");
  c->set_cert(pki.cert("exact"));
  c->set_key(pki.key("wild"));  // does not match
  auto snap = Snapshot::build(cfg, "h");
  REQUIRE_FALSE(snap.ok());
  CHECK(std::string(snap.status().message()) == "certificate bad: certificate does not match key");
}

}  // namespace
}  // namespace portico::dp
