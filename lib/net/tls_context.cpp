#include "net/tls_context.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>

#include <cstring>
#include <functional>

#include "net/tls_errors.h"

// OpenSSL implements several SSL_* calls as macros with C casts (e.g. SSL_set_tlsext_host_name,
// SSL_CTX_add_extra_chain_cert); BoringSSL makes them functions.
#pragma GCC diagnostic ignored "-Wold-style-cast"

namespace kupstream::net {
namespace {

// Per-SSL data: which context and cache key a new session belongs to.
struct SslSessionSlot {
  TlsContext* context;
  std::string key;
};

void free_slot(void* /*parent*/, void* ptr, CRYPTO_EX_DATA* /*ad*/, int /*index*/, long /*argl*/,
               void* /*argp*/) {
  delete static_cast<SslSessionSlot*>(ptr);
}

int slot_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, free_slot);
  return index;
}

bool is_ip_literal(std::string_view host) {
  std::string h(host);
  unsigned char buf[16];
  return inet_pton(AF_INET, h.c_str(), buf) == 1 || inet_pton(AF_INET6, h.c_str(), buf) == 1;
}

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;

BioPtr mem_bio(const std::string& pem) {
  return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

Status load_ca_pem(SSL_CTX* ctx, const std::string& pem) {
  BioPtr bio = mem_bio(pem);
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  int count = 0;
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    int ok = X509_STORE_add_cert(store, cert);
    X509_free(cert);
    if (!ok) return Error{Errc::invalid_config, "tls.ca_pem: " + take_ssl_error("cannot add certificate")};
    ++count;
  }
  ERR_clear_error();  // the loop ends on a "no start line" error
  if (count == 0) return Error{Errc::invalid_config, "tls.ca_pem: no PEM certificate found"};
  return {};
}

Status load_cert_pem(SSL_CTX* ctx, const std::string& pem) {
  BioPtr bio = mem_bio(pem);
  X509* leaf = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
  if (leaf == nullptr) return Error{Errc::invalid_config, "tls.cert_pem: " + take_ssl_error("no PEM certificate")};
  int ok = SSL_CTX_use_certificate(ctx, leaf);
  X509_free(leaf);
  if (!ok) return Error{Errc::invalid_config, "tls.cert_pem: " + take_ssl_error("certificate rejected")};
  while (X509* extra = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    if (!SSL_CTX_add_extra_chain_cert(ctx, extra)) {  // takes ownership on success
      X509_free(extra);
      return Error{Errc::invalid_config, "tls.cert_pem: " + take_ssl_error("chain certificate rejected")};
    }
  }
  ERR_clear_error();
  return {};
}

Status load_key_pem(SSL_CTX* ctx, const std::string& pem) {
  BioPtr bio = mem_bio(pem);
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
  if (key == nullptr) return Error{Errc::invalid_config, "tls.key_pem: " + take_ssl_error("no PEM private key")};
  int ok = SSL_CTX_use_PrivateKey(ctx, key);
  EVP_PKEY_free(key);
  if (!ok) return Error{Errc::invalid_config, "tls.key_pem: " + take_ssl_error("private key rejected")};
  return {};
}

std::string alpn_wire(const std::vector<std::string>& protocols) {
  std::string wire;
  for (const auto& p : protocols) {
    if (p.empty() || p.size() > 255) continue;
    wire.push_back(static_cast<char>(p.size()));
    wire += p;
  }
  return wire;
}

}  // namespace

struct TlsContextAccess {
  static int on_new_session(SSL* ssl, SSL_SESSION* session) {
    auto* slot = static_cast<SslSessionSlot*>(SSL_get_ex_data(ssl, slot_index()));
    if (slot == nullptr || slot->context == nullptr) return 0;
    slot->context->store_session(slot->key, session);
    return 1;  // we keep the reference
  }
};

std::string TlsConfig::identity() const {
  std::hash<std::string> h;
  std::string id;
  id += "ca=" + ca_file + "|" + std::to_string(ca_pem.empty() ? 0 : h(ca_pem));
  id += ";cert=" + cert_file + "|" + std::to_string(cert_pem.empty() ? 0 : h(cert_pem));
  id += ";key=" + key_file + "|" + std::to_string(key_pem.empty() ? 0 : h(key_pem));
  id += ";sni=" + server_name;
  id += insecure_skip_verify ? ";INSECURE" : "";
  id += ";alpn=";
  for (const auto& a : alpn) id += a + ",";
  id += session_resumption ? ";resume" : "";
  return id;
}

Result<std::shared_ptr<TlsContext>> TlsContext::create(const TlsConfig& config) {
  if (config.cert_file.empty() && config.cert_pem.empty() && !(config.key_file.empty() && config.key_pem.empty()))
    return Error{Errc::invalid_config, "tls: a client key was given without a client certificate"};
  if (!(config.cert_file.empty() && config.cert_pem.empty()) && config.key_file.empty() && config.key_pem.empty())
    return Error{Errc::invalid_config, "tls: a client certificate was given without its key"};
  if (!config.cert_file.empty() && !config.cert_pem.empty())
    return Error{Errc::invalid_config, "tls: cert_file and cert_pem are both set"};
  if (!config.key_file.empty() && !config.key_pem.empty())
    return Error{Errc::invalid_config, "tls: key_file and key_pem are both set"};

  std::shared_ptr<TlsContext> self(new TlsContext());
  self->config_ = config;
  self->identity_ = config.identity();
  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) return Error{Errc::internal, take_ssl_error("SSL_CTX_new failed")};
  self->ctx_ = ctx;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);

  if (config.insecure_skip_verify) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    if (!config.ca_file.empty() && !SSL_CTX_load_verify_locations(ctx, config.ca_file.c_str(), nullptr))
      return Error{Errc::invalid_config, "tls.ca_file: " + config.ca_file + ": " + take_ssl_error("cannot load")};
    if (!config.ca_pem.empty()) {
      if (Status s = load_ca_pem(ctx, config.ca_pem); !s) return s.error();
    }
    if (config.ca_file.empty() && config.ca_pem.empty()) SSL_CTX_set_default_verify_paths(ctx);
  }
  if (!config.cert_file.empty() && !SSL_CTX_use_certificate_chain_file(ctx, config.cert_file.c_str()))
    return Error{Errc::invalid_config, "tls.cert_file: " + config.cert_file + ": " + take_ssl_error("cannot load")};
  if (!config.cert_pem.empty()) {
    if (Status s = load_cert_pem(ctx, config.cert_pem); !s) return s.error();
  }
  if (!config.key_file.empty() && !SSL_CTX_use_PrivateKey_file(ctx, config.key_file.c_str(), SSL_FILETYPE_PEM))
    return Error{Errc::invalid_config, "tls.key_file: " + config.key_file + ": " + take_ssl_error("cannot load")};
  if (!config.key_pem.empty()) {
    if (Status s = load_key_pem(ctx, config.key_pem); !s) return s.error();
  }
  if ((!config.cert_file.empty() || !config.cert_pem.empty()) && !SSL_CTX_check_private_key(ctx))
    return Error{Errc::invalid_config, "tls: client certificate and key do not match: " + take_ssl_error("")};

  std::string wire = alpn_wire(config.alpn);
  if (!wire.empty() &&
      SSL_CTX_set_alpn_protos(ctx, reinterpret_cast<const unsigned char*>(wire.data()),
                              static_cast<unsigned>(wire.size())) != 0)
    return Error{Errc::invalid_config, "tls.alpn: rejected"};

  if (config.session_resumption) {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, &TlsContextAccess::on_new_session);
  } else {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  }
  return self;
}

TlsContext::~TlsContext() {
  for (auto& [key, session] : sessions_) SSL_SESSION_free(session);
  if (ctx_ != nullptr) SSL_CTX_free(ctx_);
}

void TlsContext::store_session(const std::string& key, SSL_SESSION* session) {
  auto [it, inserted] = sessions_.try_emplace(key, session);
  if (!inserted) {
    SSL_SESSION_free(it->second);
    it->second = session;
  }
  ++sessions_cached_;
}

Result<SSL*> TlsContext::new_client_ssl(std::string_view host, std::uint16_t port) {
  ERR_clear_error();
  SSL* ssl = SSL_new(ctx_);
  if (ssl == nullptr) return Error{Errc::internal, take_ssl_error("SSL_new failed")};
  std::string name = config_.server_name.empty() ? std::string(host) : config_.server_name;
  bool ip = is_ip_literal(name);
  if (!ip && !name.empty()) SSL_set_tlsext_host_name(ssl, name.c_str());
  if (!config_.insecure_skip_verify) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str())
                : X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size());
    if (!ok) {
      SSL_free(ssl);
      return Error{Errc::invalid_argument, "tls: cannot verify against server name '" + name + "'"};
    }
  }
  if (config_.session_resumption) {
    std::string key = name + ":" + std::to_string(port);
    auto it = sessions_.find(key);
    if (it != sessions_.end()) SSL_set_session(ssl, it->second);
    SSL_set_ex_data(ssl, slot_index(), new SslSessionSlot{this, std::move(key)});
  }
  SSL_set_connect_state(ssl);
  return ssl;
}

}  // namespace kupstream::net
