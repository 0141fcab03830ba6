#include "common/crypto.hpp"

#include <memory>
#include <string>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

namespace by::crypto {

namespace {

template <auto Free>
struct FreeWith {
    template <class T>
    void operator()(T* p) const noexcept { Free(p); }
};
using MacPtr = std::unique_ptr<EVP_MAC, FreeWith<EVP_MAC_free>>;
using MacCtxPtr = std::unique_ptr<EVP_MAC_CTX, FreeWith<EVP_MAC_CTX_free>>;

Bytes proof(std::string_view label, std::string_view password, std::string_view name,
            std::span<const uint8_t> first, std::span<const uint8_t> second) {
    Bytes data;
    data.reserve(label.size() + name.size() + 2 + first.size() + second.size());
    data.insert(data.end(), label.begin(), label.end());
    data.push_back(0);
    data.insert(data.end(), name.begin(), name.end());
    data.push_back(0);
    data.insert(data.end(), first.begin(), first.end());
    data.insert(data.end(), second.begin(), second.end());
    return hmac_sha256(password, data);
}

}  // namespace

Bytes random_bytes(size_t n) {
    Bytes b(n);
    if (RAND_bytes(b.data(), static_cast<int>(n)) != 1) {
        return {};
    }
    return b;
}

Bytes hmac_sha256(std::string_view key, std::span<const uint8_t> data) {
    MacPtr mac(EVP_MAC_fetch(nullptr, "HMAC", nullptr));
    if (!mac) {
        return {};
    }
    MacCtxPtr ctx(EVP_MAC_CTX_new(mac.get()));
    if (!ctx) {
        return {};
    }
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    // EVP_MAC_init treats a null key as "keep the previous one"; an empty
    // password still needs a (zero-length) key.
    static const unsigned char empty = 0;
    const auto* k = key.empty() ? &empty : reinterpret_cast<const unsigned char*>(key.data());
    if (EVP_MAC_init(ctx.get(), k, key.size(), params) != 1) {
        return {};
    }
    if (EVP_MAC_update(ctx.get(), data.data(), data.size()) != 1) {
        return {};
    }
    Bytes out(EVP_MAX_MD_SIZE);
    size_t len = 0;
    if (EVP_MAC_final(ctx.get(), out.data(), &len, out.size()) != 1) {
        return {};
    }
    out.resize(len);
    return out;
}

bool equal(std::span<const uint8_t> a, std::span<const uint8_t> b) {
    if (a.size() != b.size() || a.empty()) {
        return false;
    }
    return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

Bytes worker_proof(std::string_view password, std::string_view name, std::span<const uint8_t> master_nonce,
                   std::span<const uint8_t> worker_nonce) {
    return proof("buildyard-worker-v1", password, name, master_nonce, worker_nonce);
}

Bytes master_proof(std::string_view password, std::string_view name, std::span<const uint8_t> worker_nonce,
                   std::span<const uint8_t> master_nonce) {
    return proof("buildyard-master-v1", password, name, worker_nonce, master_nonce);
}

bool master_proof_valid(std::string_view password, std::string_view name, std::span<const uint8_t> worker_nonce,
                        std::span<const uint8_t> master_nonce, std::span<const uint8_t> proof) {
    const Bytes expected = master_proof(password, name, worker_nonce, master_nonce);
    return expected.size() == proof_size && equal(expected, proof);
}

}  // namespace by::crypto
