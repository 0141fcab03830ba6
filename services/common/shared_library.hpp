// A shared library loaded on first use instead of linked, so that a process
// that never needs it does not map it (libcrypto for the handshake,
// libcurl for a latent worker's cloud metadata). Never unloaded: neither
// OpenSSL nor libcurl can be unloaded safely.
#pragma once

#include <string>
#include <type_traits>

#include <dlfcn.h>

namespace by {

class SharedLibrary {
public:
    explicit SharedLibrary(const char* soname) : soname_(soname) {
        handle_ = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
        if (!handle_) {
            const char* e = dlerror();
            error_ = std::string("cannot load ") + soname + ": " + (e ? e : "unknown error");
        }
    }

    // Sets `fn` to the symbol `name`; the first one missing is the error.
    template <class F>
    void get(F& fn, const char* name) {
        fn = handle_ ? reinterpret_cast<std::remove_reference_t<F>>(dlsym(handle_, name)) : nullptr;
        if (!fn && error_.empty()) {
            error_ = soname_ + " has no " + name;
        }
    }

    // Empty while the library and every symbol asked for were found.
    const std::string& error() const { return error_; }

private:
    std::string soname_;
    void* handle_ = nullptr;
    std::string error_;
};

}  // namespace by
