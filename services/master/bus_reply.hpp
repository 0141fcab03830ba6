// Turning a Master Status into a D-Bus reply, shared by the bus_*.cpp files.
#pragma once

#include <systemd/sd-bus.h>

#include "master/master.hpp"

namespace by::master {

// Returns what a vtable method handler returns: the error is set on `e`.
inline int fail(const Status& s, sd_bus_error* e) { return sd_bus_error_set(e, s.error, s.message.c_str()); }

template <class... Args>
int reply_ok(sd_bus_message* m, const Status& s, sd_bus_error* e, const char* types, Args... args) {
    if (!s) {
        return fail(s, e);
    }
    return sd_bus_reply_method_return(m, types, args...);
}

}  // namespace by::master
