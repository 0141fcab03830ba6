// The outcome of a request from the bus: ok, or a named D-Bus error. Shared
// by the master and the helpers that answer calls on its behalf.
#pragma once

#include <string>

namespace by::master {

struct Status {
    const char* error = nullptr;  // org.buildyard.Error.*; nullptr: ok
    std::string message;

    static Status ok() { return {}; }
    static Status fail(const char* name, std::string msg) { return Status{name, std::move(msg)}; }
    explicit operator bool() const { return error == nullptr; }
};

}  // namespace by::master
