#include "common/crypto.hpp"

#include <memory>
#include <string>
#include <type_traits>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/opensslv.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "common/shared_library.hpp"

namespace by::crypto {

namespace {

#define BY_STRINGIFY2(x) #x
#define BY_STRINGIFY(x) BY_STRINGIFY2(x)

// libcrypto is loaded on first use rather than linked: a local worker never
// proves anything, and mapping libcrypto at start cost it 1.4 MiB of its
// 7.4 MiB RSS. The headers still give every pointer its exact type.
#define BY_LIBCRYPTO(X)                               \
    X(mac_fetch, EVP_MAC_fetch)                       \
    X(mac_free, EVP_MAC_free)                         \
    X(ctx_new, EVP_MAC_CTX_new)                       \
    X(ctx_free, EVP_MAC_CTX_free)                     \
    X(mac_init, EVP_MAC_init)                         \
    X(mac_update, EVP_MAC_update)                     \
    X(mac_final, EVP_MAC_final)                       \
    X(param_string, OSSL_PARAM_construct_utf8_string) \
    X(param_end, OSSL_PARAM_construct_end)            \
    X(rand_bytes, RAND_bytes)                         \
    X(memcmp, CRYPTO_memcmp)

struct Libcrypto {
    BY_LIBCRYPTO(BY_LIBRARY_MEMBER)
    std::string error;  // why it is not loaded
};

const Libcrypto& libcrypto() {
    static const Libcrypto lib = [] {
        Libcrypto table;
        // The soname of the major version we were compiled against.
        SharedLibrary so("libcrypto.so." BY_STRINGIFY(OPENSSL_VERSION_MAJOR));
        BY_LIBCRYPTO(BY_LIBRARY_GET)
        if (!so.error().empty()) {
            table = Libcrypto{.error = so.error()};
        }
        return table;
    }();
    return lib;
}

struct MacFree {
    void operator()(EVP_MAC* p) const noexcept { libcrypto().mac_free(p); }
};
struct MacCtxFree {
    void operator()(EVP_MAC_CTX* p) const noexcept { libcrypto().ctx_free(p); }
};
using MacPtr = std::unique_ptr<EVP_MAC, MacFree>;
using MacCtxPtr = std::unique_ptr<EVP_MAC_CTX, MacCtxFree>;

Bytes proof(std::string_view label, std::string_view password, std::string_view name,
            std::span<const uint8_t> first, std::span<const uint8_t> second, std::span<const uint8_t> binding) {
    Bytes data;
    data.reserve(label.size() + name.size() + 2 + first.size() + second.size() + binding.size());
    data.insert(data.end(), label.begin(), label.end());
    data.push_back(0);
    data.insert(data.end(), name.begin(), name.end());
    data.push_back(0);
    data.insert(data.end(), first.begin(), first.end());
    data.insert(data.end(), second.begin(), second.end());
    data.insert(data.end(), binding.begin(), binding.end());
    return hmac_sha256(password, data);
}

}  // namespace

const std::string& unavailable() { return libcrypto().error; }

Bytes random_bytes(size_t n) {
    const Libcrypto& lib = libcrypto();
    Bytes b(n);
    if (!lib.rand_bytes || lib.rand_bytes(b.data(), static_cast<int>(n)) != 1) {
        return {};
    }
    return b;
}

std::string random_hex(size_t n) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (uint8_t b : random_bytes(n)) {
        out += digits[b >> 4];
        out += digits[b & 15];
    }
    return out;
}

Bytes hmac_sha256(std::string_view key, std::span<const uint8_t> data) {
    const Libcrypto& lib = libcrypto();
    if (!lib.mac_fetch) {
        return {};
    }
    MacPtr mac(lib.mac_fetch(nullptr, "HMAC", nullptr));
    if (!mac) {
        return {};
    }
    MacCtxPtr ctx(lib.ctx_new(mac.get()));
    if (!ctx) {
        return {};
    }
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        lib.param_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        lib.param_end(),
    };
    // EVP_MAC_init treats a null key as "keep the previous one"; an empty
    // password still needs a (zero-length) key.
    static const unsigned char empty = 0;
    const auto* k = key.empty() ? &empty : reinterpret_cast<const unsigned char*>(key.data());
    if (lib.mac_init(ctx.get(), k, key.size(), params) != 1) {
        return {};
    }
    if (lib.mac_update(ctx.get(), data.data(), data.size()) != 1) {
        return {};
    }
    Bytes out(EVP_MAX_MD_SIZE);
    size_t len = 0;
    if (lib.mac_final(ctx.get(), out.data(), &len, out.size()) != 1) {
        return {};
    }
    out.resize(len);
    return out;
}

bool equal(std::span<const uint8_t> a, std::span<const uint8_t> b) {
    const Libcrypto& lib = libcrypto();
    if (a.size() != b.size() || a.empty() || !lib.memcmp) {
        return false;
    }
    return lib.memcmp(a.data(), b.data(), a.size()) == 0;
}

Bytes worker_proof(std::string_view password, std::string_view name, std::span<const uint8_t> master_nonce,
                   std::span<const uint8_t> worker_nonce, std::span<const uint8_t> binding) {
    return proof("buildyard-worker-v1", password, name, master_nonce, worker_nonce, binding);
}

Bytes master_proof(std::string_view password, std::string_view name, std::span<const uint8_t> worker_nonce,
                   std::span<const uint8_t> master_nonce, std::span<const uint8_t> binding) {
    return proof("buildyard-master-v1", password, name, worker_nonce, master_nonce, binding);
}

bool master_proof_valid(std::string_view password, std::string_view name, std::span<const uint8_t> worker_nonce,
                        std::span<const uint8_t> master_nonce, std::span<const uint8_t> binding,
                        std::span<const uint8_t> proof) {
    const Bytes expected = master_proof(password, name, worker_nonce, master_nonce, binding);
    return expected.size() == proof_size && equal(expected, proof);
}

}  // namespace by::crypto
