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

// A table of a library's functions is listed once, as a macro LIST(X) of
// X(member, function) entries. In the table's struct, LIST(BY_LIBRARY_MEMBER)
// declares each member with the function's exact type from the headers;
// where it is filled, LIST(BY_LIBRARY_GET) loads each one from the
// SharedLibrary `so` into `table`.
#define BY_LIBRARY_MEMBER(member, function) decltype(&function) member = nullptr;
#define BY_LIBRARY_GET(member, function) so.get(table.member, #function);
