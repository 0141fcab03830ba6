// The remote worker handshake's cryptography: random nonces, HMAC-SHA256
// proofs and constant-time comparison, all from OpenSSL's libcrypto, which
// is loaded at the first call (see crypto.cpp). The message layouts are
// those of dbus/org.buildyard.Handshake1.xml.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace by::crypto {

using Bytes = std::vector<uint8_t>;

inline constexpr size_t nonce_size = 32;
inline constexpr size_t proof_size = 32;  // SHA-256

// Why libcrypto could not be loaded (every call below then fails); empty
// when it is loaded or has not been needed yet.
const std::string& unavailable();

// `n` random bytes from the kernel's CSPRNG through OpenSSL; empty on failure.
Bytes random_bytes(size_t n);

// `n` random bytes as 2n lowercase hex digits (tokens, Message-IDs); empty
// on failure.
std::string random_hex(size_t n);

// HMAC-SHA256(key, data); empty on failure.
Bytes hmac_sha256(std::string_view key, std::span<const uint8_t> data);

// Whether a and b are equal, in time that depends only on their lengths.
bool equal(std::span<const uint8_t> a, std::span<const uint8_t> b);

// HMAC(password, "buildyard-worker-v1" NUL name NUL master_nonce worker_nonce binding)
// `binding` is the TLS session's tls-exporter value (RFC 9266), empty over
// plain TCP: a proof is good on one TLS session only.
Bytes worker_proof(std::string_view password, std::string_view name, std::span<const uint8_t> master_nonce,
                   std::span<const uint8_t> worker_nonce, std::span<const uint8_t> binding);
// HMAC(password, "buildyard-master-v1" NUL name NUL worker_nonce master_nonce binding)
Bytes master_proof(std::string_view password, std::string_view name, std::span<const uint8_t> worker_nonce,
                   std::span<const uint8_t> master_nonce, std::span<const uint8_t> binding);

// The worker's check that its master knows the password.
bool master_proof_valid(std::string_view password, std::string_view name, std::span<const uint8_t> worker_nonce,
                        std::span<const uint8_t> master_nonce, std::span<const uint8_t> binding,
                        std::span<const uint8_t> proof);

}  // namespace by::crypto
