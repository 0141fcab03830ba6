// The TLS contexts of both ends, the master's generated certificate, and
// the checks of certificates (tls.hpp).
#include <cerrno>
#include <functional>
#include <cstring>
#include <filesystem>
#include <memory>

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include "common/tls.hpp"
#include "common/tls_api.hpp"

namespace by::tls {

namespace {

// The free functions are entries of tls_api(), not constants, so one
// deleter picks them by type.
struct Free {
    void operator()(X509* p) const noexcept { X509_free(p); }
    void operator()(EVP_PKEY* p) const noexcept { EVP_PKEY_free(p); }
    void operator()(BIO* p) const noexcept { BIO_free_all(p); }
    void operator()(X509_STORE* p) const noexcept { X509_STORE_free(p); }
    void operator()(X509_STORE_CTX* p) const noexcept { X509_STORE_CTX_free(p); }
    void operator()(BIGNUM* p) const noexcept { BN_free(p); }
};
using X509Ptr = std::unique_ptr<X509, Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, Free>;
using BioPtr = std::unique_ptr<BIO, Free>;
using StorePtr = std::unique_ptr<X509_STORE, Free>;
using StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, Free>;
using BnPtr = std::unique_ptr<BIGNUM, Free>;

// OpenSSL's queued errors as one line, and the queue emptied.
std::string openssl_errors() {
    std::string out;
    while (unsigned long e = ERR_get_error()) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        if (!out.empty()) out += "; ";
        out += buf;
    }
    return out.empty() ? "unknown OpenSSL error" : out;
}

SharedCtx share(SSL_CTX* ctx) { return SharedCtx(ctx, CtxFree{}); }

// Both ends: TLS 1.3 and nothing older, no session tickets (every
// connection authenticates afresh), idle connections give their read and
// write buffers back, and a read takes all the socket has (one recv per
// wake instead of one for each record's header and one for its body).
void common_settings(SSL_CTX* ctx) {
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
}

// Accepts any certificate: the master checks client certificates per
// worker after the handshake, and a pinning worker compares fingerprints.
int accept_any(int, X509_STORE_CTX*) { return 1; }

bool write_private(const std::string& path, const std::function<bool(BIO*)>& write, std::string& error) {
    const std::string tmp = path + ".tmp";
    ::unlink(tmp.c_str());
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        error = fmt::format("cannot create {}: {}", tmp, std::strerror(errno));
        return false;
    }
    BioPtr bio(BIO_new_fd(fd, BIO_CLOSE));
    if (!bio || !write(bio.get()) || BIO_flush(bio.get()) != 1 || fsync(fd) < 0) {
        error = fmt::format("cannot write {}: {}", tmp, openssl_errors());
        ::unlink(tmp.c_str());
        return false;
    }
    bio.reset();
    if (::rename(tmp.c_str(), path.c_str()) < 0) {
        error = fmt::format("cannot rename {} to {}: {}", tmp, path, std::strerror(errno));
        ::unlink(tmp.c_str());
        return false;
    }
    return true;
}

}  // namespace

// A shared_ptr calls its deleter for null too, and only a loaded libssl
// makes a context.
void CtxFree::operator()(SSL_CTX* p) const noexcept {
    if (p) {
        SSL_CTX_free(p);
    }
}

std::string fingerprint(X509* cert) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!cert || !tls_api().error.empty() || X509_digest(cert, EVP_sha256(), md, &len) != 1) {
        return {};
    }
    std::string out = "sha256:";
    for (unsigned i = 0; i < len; ++i) {
        out += fmt::format("{:02x}", md[i]);
    }
    return out;
}

bool load_server_identity(const std::string& cert_file, const std::string& key_file, ServerIdentity& out,
                          std::string& error) {
    if (!tls_loaded(error)) {
        return false;
    }
    ERR_clear_error();
    SharedCtx ctx = share(SSL_CTX_new(TLS_server_method()));
    if (!ctx) {
        error = "cannot create a TLS context: " + openssl_errors();
        return false;
    }
    common_settings(ctx.get());
    if (SSL_CTX_use_certificate_chain_file(ctx.get(), cert_file.c_str()) != 1) {
        error = fmt::format("cannot load the certificate {}: {}", cert_file, openssl_errors());
        return false;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx.get(), key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
        error = fmt::format("cannot load the key {}: {}", key_file, openssl_errors());
        return false;
    }
    if (SSL_CTX_check_private_key(ctx.get()) != 1) {
        error = fmt::format("the key {} does not belong to the certificate {}", key_file, cert_file);
        ERR_clear_error();
        return false;
    }
    // Ask every worker for a certificate; whether one is needed depends on
    // the worker's section, known only after Hello (client_certificate_ok).
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, accept_any);
    out.fingerprint = fingerprint(SSL_CTX_get0_certificate(ctx.get()));
    out.ctx = std::move(ctx);
    return true;
}

bool ensure_self_signed(const std::string& dir, const std::string& common_name, std::string& cert_file,
                        std::string& key_file, bool& created, std::string& error) {
    cert_file = dir + "/tls-certificate.pem";
    key_file = dir + "/tls-key.pem";
    created = false;
    std::error_code ec;
    const bool have_cert = std::filesystem::exists(cert_file, ec);
    const bool have_key = std::filesystem::exists(key_file, ec);
    if (have_cert && have_key) {
        return true;
    }
    if (have_cert != have_key) {
        error = fmt::format("{} exists without {}: remove it to have a new pair made", have_cert ? cert_file : key_file,
                            have_cert ? key_file : cert_file);
        return false;
    }
    if (!tls_loaded(error)) {
        return false;
    }
    ERR_clear_error();
    PkeyPtr key(EVP_EC_gen("P-256"));
    X509Ptr cert(X509_new());
    BnPtr serial(BN_new());
    bool ok = key && cert && serial && BN_rand(serial.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) == 1 &&
              BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) &&
              X509_set_version(cert.get(), X509_VERSION_3) == 1 &&
              X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) &&
              X509_time_adj_ex(X509_getm_notAfter(cert.get()), 36500, 0, nullptr) &&
              X509_set_pubkey(cert.get(), key.get()) == 1;
    if (ok) {
        X509_NAME* name = X509_get_subject_name(cert.get());
        const std::string cn = common_name.substr(0, 64);
        ok = X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                        reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0) == 1 &&
             X509_set_issuer_name(cert.get(), name) == 1 && X509_sign(cert.get(), key.get(), EVP_sha256()) > 0;
    }
    if (!ok) {
        error = "cannot make a self-signed certificate: " + openssl_errors();
        return false;
    }
    // The key first: a certificate alone is an error on the next start.
    if (!write_private(key_file, [&](BIO* b) {
            return PEM_write_bio_PrivateKey(b, key.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1;
        }, error)) {
        return false;
    }
    if (!write_private(cert_file, [&](BIO* b) { return PEM_write_bio_X509(b, cert.get()) == 1; }, error)) {
        ::unlink(key_file.c_str());
        return false;
    }
    created = true;
    return true;
}

bool make_client_context(const ClientTrust& trust, SharedCtx& out, std::string& error) {
    if (!tls_loaded(error)) {
        return false;
    }
    ERR_clear_error();
    SharedCtx ctx = share(SSL_CTX_new(TLS_client_method()));
    if (!ctx) {
        error = "cannot create a TLS context: " + openssl_errors();
        return false;
    }
    common_settings(ctx.get());
    if (!trust.ca_file.empty()) {
        if (SSL_CTX_load_verify_locations(ctx.get(), trust.ca_file.c_str(), nullptr) != 1) {
            error = fmt::format("cannot load tls_ca_file {}: {}", trust.ca_file, openssl_errors());
            return false;
        }
        SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
    } else {
        // The pin is compared once the handshake is done.
        SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, accept_any);
    }
    if (!trust.certificate.empty()) {
        if (SSL_CTX_use_certificate_chain_file(ctx.get(), trust.certificate.c_str()) != 1 ||
            SSL_CTX_use_PrivateKey_file(ctx.get(), trust.key.c_str(), SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(ctx.get()) != 1) {
            error = fmt::format("cannot load the client certificate {} with key {}: {}", trust.certificate, trust.key,
                                openssl_errors());
            return false;
        }
    }
    out = std::move(ctx);
    return true;
}

bool client_certificate_ok(SSL* ssl, const std::string& pin, const std::string& ca_file, std::string& why) {
    X509* cert = ssl ? SSL_get0_peer_certificate(ssl) : nullptr;
    if (!cert) {
        why = "it presented no client certificate";
        return false;
    }
    const std::string fp = fingerprint(cert);
    if (!pin.empty() && fp != pin) {
        why = fmt::format("its client certificate {} is not the pinned {}", fp, pin);
        return false;
    }
    if (!ca_file.empty()) {
        ERR_clear_error();
        StorePtr store(X509_STORE_new());
        StoreCtxPtr sctx(X509_STORE_CTX_new());
        if (!store || !sctx || X509_STORE_load_file(store.get(), ca_file.c_str()) != 1 ||
            X509_STORE_CTX_init(sctx.get(), store.get(), cert, SSL_get_peer_cert_chain(ssl)) != 1) {
            why = fmt::format("cannot check its client certificate against {}: {}", ca_file, openssl_errors());
            return false;
        }
        X509_STORE_CTX_set_purpose(sctx.get(), X509_PURPOSE_SSL_CLIENT);
        if (X509_verify_cert(sctx.get()) != 1) {
            why = fmt::format("its client certificate {} does not verify against {}: {}", fp, ca_file,
                              X509_verify_cert_error_string(X509_STORE_CTX_get_error(sctx.get())));
            ERR_clear_error();
            return false;
        }
    }
    return true;
}

}  // namespace by::tls
