// Fills the table of tls_api.hpp from libssl and libcrypto.
#define BY_TLS_API_LOADER
#include "common/tls_api.hpp"

#include "common/shared_library.hpp"

namespace by::tls {

#define BY_STRINGIFY2(x) #x
#define BY_STRINGIFY(x) BY_STRINGIFY2(x)

const TlsApi& tls_api() {
    static const TlsApi api = [] {
        TlsApi a;
        // The sonames of the major version we were compiled against.
        SharedLibrary ssl("libssl.so." BY_STRINGIFY(OPENSSL_VERSION_MAJOR));
        SharedLibrary crypto("libcrypto.so." BY_STRINGIFY(OPENSSL_VERSION_MAJOR));
#define BY_TLS_GET_SSL(name) ssl.get(a.name, #name);
#define BY_TLS_GET_CRYPTO(name) crypto.get(a.name, #name);
        BY_TLS_LIBSSL(BY_TLS_GET_SSL)
        BY_TLS_LIBCRYPTO(BY_TLS_GET_CRYPTO)
#undef BY_TLS_GET_SSL
#undef BY_TLS_GET_CRYPTO
        const std::string& error = ssl.error().empty() ? crypto.error() : ssl.error();
        if (!error.empty()) {
            a = TlsApi{.error = error};
        }
        return a;
    }();
    return api;
}

bool tls_loaded(std::string& error) {
    const std::string& why = tls_api().error;
    if (why.empty()) {
        return true;
    }
    error = "TLS is unavailable: " + why;
    return false;
}

}  // namespace by::tls
