#include "master/latent_state.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace by::master {

namespace {

constexpr uint64_t usec_per_sec = 1'000'000;

}  // namespace

std::string_view to_string(LatentState s) {
    switch (s) {
    case LatentState::offline: return "offline";
    case LatentState::substantiating: return "substantiating";
    case LatentState::idle: return "idle";
    case LatentState::building: return "building";
    case LatentState::insubstantiating: return "insubstantiating";
    }
    return "offline";
}

bool LatentMachine::accepts_builds(uint64_t now) const {
    switch (state_) {
    case LatentState::offline: return !quarantined(now);
    case LatentState::substantiating:
    case LatentState::idle:
    case LatentState::building: return !stop_when_idle_;
    case LatentState::insubstantiating: return false;
    }
    return false;
}

LatentEffects LatentMachine::set_state(LatentState s, std::string why, LatentEffects fx) {
    if (s != state_) {
        state_ = s;
        fx.changed = true;
    }
    if (fx.why.empty()) {
        fx.why = std::move(why);
    }
    return fx;
}

LatentEffects LatentMachine::begin_start(uint64_t now, std::string why) {
    start_pending_ = true;
    attached_this_start_ = false;
    instance_up_ = false;
    attach_deadline_ = now + settings_.substantiation_timeout * usec_per_sec;
    idle_deadline_ = 0;
    if (trouble_since_ == 0) {
        trouble_since_ = now;
    }
    LatentEffects fx;
    fx.start = true;
    return set_state(LatentState::substantiating, std::move(why), fx);
}

LatentEffects LatentMachine::begin_stop(std::string why, bool intentional, LatentEffects fx) {
    idle_deadline_ = 0;
    attach_deadline_ = 0;
    if (intentional) {
        trouble_since_ = 0;
    }
    fx.stop = true;
    return set_state(LatentState::insubstantiating, std::move(why), fx);
}

LatentEffects LatentMachine::fail(uint64_t now, std::string reason, bool gone) {
    ++failures_;
    const unsigned doublings = std::min(failures_ - 1, 20u);
    quarantine_until_ = now + std::min(first_backoff << doublings, max_backoff);
    quarantine_wakeup_ = true;
    last_error_ = reason;
    attach_deadline_ = 0;
    idle_deadline_ = 0;
    stop_when_idle_ = false;
    if (trouble_since_ == 0) {
        trouble_since_ = now;
    }
    LatentEffects fx;
    fx.fail_waiting_builds = true;
    fx.why = std::move(reason);
    if (gone) {
        instance_up_ = false;
        start_pending_ = false;
        fx.changed = true;  // the quarantine, at least
        return set_state(LatentState::offline, "", fx);
    }
    // Whatever latentd made of this start goes, even if it never answered.
    fx.changed = true;
    return begin_stop("", false, fx);
}

LatentEffects LatentMachine::now_idle(uint64_t now, unsigned running, std::string why) {
    if (running > 0) {
        return set_state(LatentState::building, std::move(why));
    }
    if (stop_when_idle_) {
        return begin_stop("graceful shutdown: its builds have ended", true);
    }
    if (settings_.build_wait_timeout == 0) {
        set_state(LatentState::idle, "");
        LatentEffects fx = begin_stop("its last build ended and build_wait_timeout is 0", true);
        fx.changed = true;
        return fx;
    }
    idle_deadline_ = settings_.build_wait_timeout > 0
                         ? now + static_cast<uint64_t>(settings_.build_wait_timeout) * usec_per_sec
                         : 0;
    return set_state(LatentState::idle, std::move(why));
}

LatentEffects LatentMachine::build_assigned(uint64_t now, unsigned running) {
    switch (state_) {
    case LatentState::offline:
        if (quarantined(now)) {
            return {};
        }
        return begin_start(now, "a build is waiting for it");
    case LatentState::idle:
        idle_deadline_ = 0;
        return now_idle(now, running, "a build started");
    case LatentState::substantiating:
    case LatentState::building:
    case LatentState::insubstantiating: return {};
    }
    return {};
}

LatentEffects LatentMachine::start_succeeded(uint64_t) {
    if (state_ == LatentState::substantiating && start_pending_) {
        start_pending_ = false;
        instance_up_ = true;
    } else if (state_ == LatentState::idle || state_ == LatentState::building) {
        start_pending_ = false;  // it attached before latentd answered
    }
    return {};
}

LatentEffects LatentMachine::start_failed(uint64_t now, const std::string& error) {
    if (state_ != LatentState::substantiating || !start_pending_) {
        return {};
    }
    start_pending_ = false;
    return fail(now, "its machine did not start: " + error, false);
}

LatentEffects LatentMachine::attached(uint64_t now, unsigned running) {
    if (state_ != LatentState::substantiating) {
        return {};
    }
    const bool was_failing = failures_ > 0;
    failures_ = 0;
    quarantine_until_ = 0;
    quarantine_wakeup_ = false;
    trouble_since_ = 0;
    attach_deadline_ = 0;
    instance_up_ = true;
    attached_this_start_ = true;
    LatentEffects fx = now_idle(now, running, "its worker attached");
    fx.changed = fx.changed || was_failing;
    return fx;
}

LatentEffects LatentMachine::detached(uint64_t now) {
    if (state_ != LatentState::idle && state_ != LatentState::building) {
        return {};
    }
    // Its machine may still run: give the worker the substantiation
    // timeout to come back before the machine is given up.
    trouble_since_ = now;
    idle_deadline_ = 0;
    attach_deadline_ = now + settings_.substantiation_timeout * usec_per_sec;
    return set_state(LatentState::substantiating, "its worker detached; waiting for it to attach again");
}

LatentEffects LatentMachine::builds_changed(uint64_t now, unsigned running) {
    if (state_ != LatentState::idle && state_ != LatentState::building) {
        return {};
    }
    if (running > 0) {
        idle_deadline_ = 0;
        return set_state(LatentState::building, "a build started");
    }
    if (state_ == LatentState::idle && !stop_when_idle_) {
        return {};  // already idle: keep its deadline
    }
    return now_idle(now, 0, "its last build ended");
}

LatentEffects LatentMachine::instance_gone(uint64_t now, const std::string& reason, unsigned waiting) {
    switch (state_) {
    case LatentState::substantiating:
        if (!instance_up_ && !start_pending_) {
            return {};  // not this start's
        }
        if (attached_this_start_) {
            // It worked, then died (its worker detached first): a loss, not
            // a failed start. Builds waiting for it get a fresh machine.
            instance_up_ = false;
            start_pending_ = false;
            attach_deadline_ = 0;
            if (waiting > 0) {
                return begin_start(now, "its machine ended (" + reason + "); starting a new one for the waiting builds");
            }
            trouble_since_ = 0;  // nothing waits for it: not missed
            return set_state(LatentState::offline, "its machine ended: " + reason);
        }
        return fail(now, "its machine ended before its worker attached: " + reason, true);
    case LatentState::idle:
    case LatentState::building: {
        instance_up_ = false;
        start_pending_ = false;
        idle_deadline_ = 0;
        // Its builds are rerun and may start a new machine, which counts
        // its own trouble; an offline latent worker is not missed.
        trouble_since_ = 0;
        LatentEffects fx;
        fx.drop_link = true;
        return set_state(LatentState::offline, "its machine ended: " + reason, fx);
    }
    case LatentState::offline:
    case LatentState::insubstantiating: return {};
    }
    return {};
}

LatentEffects LatentMachine::stop_done(uint64_t) {
    if (state_ != LatentState::insubstantiating) {
        return {};
    }
    instance_up_ = false;
    start_pending_ = false;
    stop_when_idle_ = false;
    // Its worker cannot outlive the machine; a link still open is stale.
    LatentEffects fx;
    fx.drop_link = true;
    return set_state(LatentState::offline, "its machine stopped", fx);
}

LatentEffects LatentMachine::shutdown(uint64_t, bool graceful, unsigned running) {
    switch (state_) {
    case LatentState::substantiating: {
        LatentEffects fx;
        fx.fail_waiting_builds = true;
        return begin_stop("shutdown requested", true, fx);
    }
    case LatentState::idle: return begin_stop("shutdown requested", true);
    case LatentState::building:
        if (graceful && running > 0) {
            stop_when_idle_ = true;
            LatentEffects fx;
            fx.changed = true;
            fx.why = "graceful shutdown requested: it stops once its builds end";
            return fx;
        }
        return begin_stop("shutdown requested", true);
    case LatentState::offline:
    case LatentState::insubstantiating: return {};
    }
    return {};
}

void LatentMachine::restore(const Record& r) {
    if (state_ != LatentState::offline) {
        return;
    }
    failures_ = r.failures;
    quarantine_until_ = r.quarantine_until;
    last_error_ = r.last_error;
    trouble_since_ = r.trouble_since;
    // Builds that wait get a start once the quarantine ends.
    quarantine_wakeup_ = quarantine_until_ != 0;
}

LatentEffects LatentMachine::tick(uint64_t now) {
    if (state_ == LatentState::substantiating && attach_deadline_ != 0 && now >= attach_deadline_) {
        return fail(now, fmt::format("its worker did not attach within {} s", settings_.substantiation_timeout),
                    false);
    }
    if (state_ == LatentState::idle && idle_deadline_ != 0 && now >= idle_deadline_) {
        return begin_stop(fmt::format("idle for {} s (build_wait_timeout)", settings_.build_wait_timeout), true);
    }
    if (quarantine_wakeup_ && now >= quarantine_until_) {
        quarantine_wakeup_ = false;
        LatentEffects fx;
        fx.changed = true;
        fx.why = "its quarantine ended";
        return fx;
    }
    return {};
}

std::optional<uint64_t> LatentMachine::next_deadline() const {
    std::optional<uint64_t> next;
    auto consider = [&](uint64_t t) {
        if (t != 0 && (!next || t < *next)) {
            next = t;
        }
    };
    if (state_ == LatentState::substantiating) consider(attach_deadline_);
    if (state_ == LatentState::idle) consider(idle_deadline_);
    if (quarantine_wakeup_) consider(quarantine_until_);
    return next;
}

}  // namespace by::master
