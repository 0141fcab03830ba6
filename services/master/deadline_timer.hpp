// A CLOCK_REALTIME timer of the loop, armed at an absolute time (the
// master's timestamps are realtime microseconds) or off.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>

#include <systemd/sd-event.h>

#include "common/raii.hpp"

namespace by::master {

class DeadlineTimer {
public:
    // Adds the timer to `event`, off until armed; a negative errno on failure.
    int add(sd_event* event, sd_event_time_handler_t handler, void* userdata) {
        sd_event_source* s = nullptr;
        int r = sd_event_add_time(event, &s, CLOCK_REALTIME, 0, 10000, handler, userdata);
        if (r < 0) {
            return r;
        }
        source_.reset(s);
        return sd_event_source_set_enabled(s, SD_EVENT_OFF);
    }

    // Fires once at `at` (at once if it is past); nullopt: off.
    void arm(std::optional<uint64_t> at) {
        if (!source_) {
            return;
        }
        if (!at) {
            sd_event_source_set_enabled(source_.get(), SD_EVENT_OFF);
            return;
        }
        sd_event_source_set_time(source_.get(), std::max<uint64_t>(*at, 1));
        sd_event_source_set_enabled(source_.get(), SD_EVENT_ONESHOT);
    }

    explicit operator bool() const { return static_cast<bool>(source_); }

private:
    SourcePtr source_;
};

}  // namespace by::master
