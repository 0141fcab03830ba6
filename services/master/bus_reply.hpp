// Turning a Master Status into a D-Bus reply, shared by the bus_*.cpp files.
#pragma once

#include <memory>

#include <systemd/sd-bus.h>

#include "common/bus.hpp"
#include "common/bus_access.hpp"
#include "common/input_limits.hpp"
#include "common/raii.hpp"
#include "master/master.hpp"

namespace by::master {

// Returns what a vtable method handler returns: the error is set on `e`.
inline int fail(const Status& s, sd_bus_error* e) { return bus::set_error(e, s.error, s.message); }

// An argument over its limit (common/input_limits.hpp): InvalidArgument.
inline int too_long(const std::string& message, sd_bus_error* e) {
    return bus::set_error(e, bus::error::InvalidArgument, message);
}

// A call answered later (SubmitBuild, BuildDone): the reference kept
// until then.
inline std::shared_ptr<MessagePtr> keep_call(sd_bus_message* m) {
    return std::make_shared<MessagePtr>(sd_bus_message_ref(m));
}

// Answers a call kept for later with the error of `s`; false (nothing
// sent) if `s` is a success, which the caller answers itself.
inline bool answer_failure(sd_bus_message* call, const Status& s) {
    if (s) {
        return false;
    }
    BusError error;
    bus::set_error(error.get(), s.error, s.message);
    sd_bus_reply_method_error(call, error.get());
    return true;
}

template <class... Args>
int reply_ok(sd_bus_message* m, const Status& s, sd_bus_error* e, const char* types, Args... args) {
    if (!s) {
        return fail(s, e);
    }
    return sd_bus_reply_method_return(m, types, args...);
}

}  // namespace by::master
