// libssl, and the libcrypto functions the TLS code calls, loaded on first
// use instead of linked (tls.hpp): a local worker never speaks TLS and must
// not map either library. Private to tls_*.cpp, and included there last:
// past the table, each OpenSSL name below stands for its entry, so that the
// calls, and OpenSSL's macros built on them (SSL_CTX_set_mode is
// SSL_CTX_ctrl), go through the table as written.
#pragma once

#include <string>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/opensslv.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

namespace by::tls {

// Every OpenSSL function tls_*.cpp calls, by the library that has it. One
// missing here fails the link (neither library is linked); one missing
// from the names at the end calls the library directly and fails it too.
#define BY_TLS_LIBSSL(X)                  \
    X(SSL_CTX_check_private_key)          \
    X(SSL_CTX_ctrl)                       \
    X(SSL_CTX_free)                       \
    X(SSL_CTX_get0_certificate)           \
    X(SSL_CTX_load_verify_locations)      \
    X(SSL_CTX_new)                        \
    X(SSL_CTX_set_num_tickets)            \
    X(SSL_CTX_set_verify)                 \
    X(SSL_CTX_use_PrivateKey_file)        \
    X(SSL_CTX_use_certificate_chain_file) \
    X(SSL_ctrl)                           \
    X(SSL_do_handshake)                   \
    X(SSL_export_keying_material)         \
    X(SSL_free)                           \
    X(SSL_get0_param)                     \
    X(SSL_get0_peer_certificate)          \
    X(SSL_get_error)                      \
    X(SSL_get_peer_cert_chain)            \
    X(SSL_get_verify_result)              \
    X(SSL_new)                            \
    X(SSL_read)                           \
    X(SSL_set1_host)                      \
    X(SSL_set_accept_state)               \
    X(SSL_set_connect_state)              \
    X(SSL_set_fd)                         \
    X(SSL_shutdown)                       \
    X(SSL_write)                          \
    X(TLS_client_method)                  \
    X(TLS_server_method)

#define BY_TLS_LIBCRYPTO(X)            \
    X(BIO_ctrl)                        \
    X(BIO_free_all)                    \
    X(BIO_new_fd)                      \
    X(BN_free)                         \
    X(BN_new)                          \
    X(BN_rand)                         \
    X(BN_to_ASN1_INTEGER)              \
    X(ERR_clear_error)                 \
    X(ERR_error_string_n)              \
    X(ERR_get_error)                   \
    X(ERR_reason_error_string)         \
    X(EVP_PKEY_Q_keygen)               \
    X(EVP_PKEY_free)                   \
    X(EVP_sha256)                      \
    X(OPENSSL_sk_num)                  \
    X(OPENSSL_sk_value)                \
    X(PEM_write_bio_PrivateKey)        \
    X(PEM_write_bio_X509)              \
    X(X509_NAME_add_entry_by_txt)      \
    X(X509_STORE_CTX_free)             \
    X(X509_STORE_CTX_get_error)        \
    X(X509_STORE_CTX_init)             \
    X(X509_STORE_CTX_new)              \
    X(X509_STORE_CTX_set_purpose)      \
    X(X509_STORE_free)                 \
    X(X509_STORE_load_file)            \
    X(X509_STORE_new)                  \
    X(X509_VERIFY_PARAM_set1_ip_asc)   \
    X(X509_digest)                     \
    X(X509_free)                       \
    X(X509_get_serialNumber)           \
    X(X509_get_subject_name)           \
    X(X509_getm_notAfter)              \
    X(X509_getm_notBefore)             \
    X(X509_gmtime_adj)                 \
    X(X509_new)                        \
    X(X509_set_issuer_name)            \
    X(X509_set_pubkey)                 \
    X(X509_set_version)                \
    X(X509_sign)                       \
    X(X509_time_adj_ex)                \
    X(X509_verify_cert)                \
    X(X509_verify_cert_error_string)

// The headers give every pointer its exact type.
struct TlsApi {
#define BY_TLS_ENTRY(name) decltype(&::name) name = nullptr;
    BY_TLS_LIBSSL(BY_TLS_ENTRY)
    BY_TLS_LIBCRYPTO(BY_TLS_ENTRY)
#undef BY_TLS_ENTRY
    std::string error;  // why it is not loaded; then every entry is null
};

// Loaded by the first call, never unloaded.
const TlsApi& tls_api();

// Whether tls_api() is loaded; if not, `error` says why. Every way into
// OpenSSL asks this first, so that a missing library is an error, not a
// call through a null pointer.
bool tls_loaded(std::string& error);

}  // namespace by::tls

// tls_api.cpp fills the table and needs the plain names.
#ifndef BY_TLS_API_LOADER
#define SSL_CTX_check_private_key (::by::tls::tls_api().SSL_CTX_check_private_key)
#define SSL_CTX_ctrl (::by::tls::tls_api().SSL_CTX_ctrl)
#define SSL_CTX_free (::by::tls::tls_api().SSL_CTX_free)
#define SSL_CTX_get0_certificate (::by::tls::tls_api().SSL_CTX_get0_certificate)
#define SSL_CTX_load_verify_locations (::by::tls::tls_api().SSL_CTX_load_verify_locations)
#define SSL_CTX_new (::by::tls::tls_api().SSL_CTX_new)
#define SSL_CTX_set_num_tickets (::by::tls::tls_api().SSL_CTX_set_num_tickets)
#define SSL_CTX_set_verify (::by::tls::tls_api().SSL_CTX_set_verify)
#define SSL_CTX_use_PrivateKey_file (::by::tls::tls_api().SSL_CTX_use_PrivateKey_file)
#define SSL_CTX_use_certificate_chain_file (::by::tls::tls_api().SSL_CTX_use_certificate_chain_file)
#define SSL_ctrl (::by::tls::tls_api().SSL_ctrl)
#define SSL_do_handshake (::by::tls::tls_api().SSL_do_handshake)
#define SSL_export_keying_material (::by::tls::tls_api().SSL_export_keying_material)
#define SSL_free (::by::tls::tls_api().SSL_free)
#define SSL_get0_param (::by::tls::tls_api().SSL_get0_param)
#define SSL_get0_peer_certificate (::by::tls::tls_api().SSL_get0_peer_certificate)
#define SSL_get_error (::by::tls::tls_api().SSL_get_error)
#define SSL_get_peer_cert_chain (::by::tls::tls_api().SSL_get_peer_cert_chain)
#define SSL_get_verify_result (::by::tls::tls_api().SSL_get_verify_result)
#define SSL_new (::by::tls::tls_api().SSL_new)
#define SSL_read (::by::tls::tls_api().SSL_read)
#define SSL_set1_host (::by::tls::tls_api().SSL_set1_host)
#define SSL_set_accept_state (::by::tls::tls_api().SSL_set_accept_state)
#define SSL_set_connect_state (::by::tls::tls_api().SSL_set_connect_state)
#define SSL_set_fd (::by::tls::tls_api().SSL_set_fd)
#define SSL_shutdown (::by::tls::tls_api().SSL_shutdown)
#define SSL_write (::by::tls::tls_api().SSL_write)
#define TLS_client_method (::by::tls::tls_api().TLS_client_method)
#define TLS_server_method (::by::tls::tls_api().TLS_server_method)

#define BIO_ctrl (::by::tls::tls_api().BIO_ctrl)
#define BIO_free_all (::by::tls::tls_api().BIO_free_all)
#define BIO_new_fd (::by::tls::tls_api().BIO_new_fd)
#define BN_free (::by::tls::tls_api().BN_free)
#define BN_new (::by::tls::tls_api().BN_new)
#define BN_rand (::by::tls::tls_api().BN_rand)
#define BN_to_ASN1_INTEGER (::by::tls::tls_api().BN_to_ASN1_INTEGER)
#define ERR_clear_error (::by::tls::tls_api().ERR_clear_error)
#define ERR_error_string_n (::by::tls::tls_api().ERR_error_string_n)
#define ERR_get_error (::by::tls::tls_api().ERR_get_error)
#define ERR_reason_error_string (::by::tls::tls_api().ERR_reason_error_string)
#define EVP_PKEY_Q_keygen (::by::tls::tls_api().EVP_PKEY_Q_keygen)
#define EVP_PKEY_free (::by::tls::tls_api().EVP_PKEY_free)
#define EVP_sha256 (::by::tls::tls_api().EVP_sha256)
#define OPENSSL_sk_num (::by::tls::tls_api().OPENSSL_sk_num)
#define OPENSSL_sk_value (::by::tls::tls_api().OPENSSL_sk_value)
#define PEM_write_bio_PrivateKey (::by::tls::tls_api().PEM_write_bio_PrivateKey)
#define PEM_write_bio_X509 (::by::tls::tls_api().PEM_write_bio_X509)
#define X509_NAME_add_entry_by_txt (::by::tls::tls_api().X509_NAME_add_entry_by_txt)
#define X509_STORE_CTX_free (::by::tls::tls_api().X509_STORE_CTX_free)
#define X509_STORE_CTX_get_error (::by::tls::tls_api().X509_STORE_CTX_get_error)
#define X509_STORE_CTX_init (::by::tls::tls_api().X509_STORE_CTX_init)
#define X509_STORE_CTX_new (::by::tls::tls_api().X509_STORE_CTX_new)
#define X509_STORE_CTX_set_purpose (::by::tls::tls_api().X509_STORE_CTX_set_purpose)
#define X509_STORE_free (::by::tls::tls_api().X509_STORE_free)
#define X509_STORE_load_file (::by::tls::tls_api().X509_STORE_load_file)
#define X509_STORE_new (::by::tls::tls_api().X509_STORE_new)
#define X509_VERIFY_PARAM_set1_ip_asc (::by::tls::tls_api().X509_VERIFY_PARAM_set1_ip_asc)
#define X509_digest (::by::tls::tls_api().X509_digest)
#define X509_free (::by::tls::tls_api().X509_free)
#define X509_get_serialNumber (::by::tls::tls_api().X509_get_serialNumber)
#define X509_get_subject_name (::by::tls::tls_api().X509_get_subject_name)
#define X509_getm_notAfter (::by::tls::tls_api().X509_getm_notAfter)
#define X509_getm_notBefore (::by::tls::tls_api().X509_getm_notBefore)
#define X509_gmtime_adj (::by::tls::tls_api().X509_gmtime_adj)
#define X509_new (::by::tls::tls_api().X509_new)
#define X509_set_issuer_name (::by::tls::tls_api().X509_set_issuer_name)
#define X509_set_pubkey (::by::tls::tls_api().X509_set_pubkey)
#define X509_set_version (::by::tls::tls_api().X509_set_version)
#define X509_sign (::by::tls::tls_api().X509_sign)
#define X509_time_adj_ex (::by::tls::tls_api().X509_time_adj_ex)
#define X509_verify_cert (::by::tls::tls_api().X509_verify_cert)
#define X509_verify_cert_error_string (::by::tls::tls_api().X509_verify_cert_error_string)
#endif
