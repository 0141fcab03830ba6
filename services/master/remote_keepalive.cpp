// Keepalives on a remote worker's connection: a ping every
// keepalive_interval, a detach when one goes unanswered for
// keepalive_timeout, and a reload's new interval told to the worker.
#include "master/remote_connection.hpp"

#include <cstring>

#include "common/log.hpp"

namespace by::master {

namespace {

// With keepalives off, look at the configuration again this often (a reload
// may turn them on).
constexpr uint64_t keepalive_recheck_usec = 60'000'000;
// The keepalive timer may fire this late, so that the keepalives due within
// it go out in one wake-up.
constexpr uint64_t keepalive_accuracy = 100'000;

}  // namespace

void Remote::keepalive_in(uint64_t id, uint64_t usec) {
    uint64_t now = 0;
    sd_event_now(event_, CLOCK_MONOTONIC, &now);
    keepalives_.set(id, now + usec);
    if (!keepalive_armed_ || now + usec < *keepalive_armed_) {
        arm_keepalives();
    }
}

void Remote::arm_keepalives() {
    keepalive_armed_ = keepalives_.next();
    if (!keepalive_armed_) {
        if (keepalive_timer_) {
            sd_event_source_set_enabled(keepalive_timer_.get(), SD_EVENT_OFF);
        }
        return;
    }
    if (!keepalive_timer_) {
        sd_event_source* s = nullptr;
        if (sd_event_add_time(event_, &s, CLOCK_MONOTONIC, *keepalive_armed_, keepalive_accuracy, on_keepalives,
                              this) < 0) {
            // Without it no worker is pinged, and a lost one stays attached
            // until its TCP connection breaks: say so once per attempt.
            log::error("cannot add the keepalive timer; the next attach tries again");
            keepalive_armed_.reset();
            return;
        }
        keepalive_timer_.reset(s);
        return;
    }
    sd_event_source_set_time(keepalive_timer_.get(), *keepalive_armed_);
    sd_event_source_set_enabled(keepalive_timer_.get(), SD_EVENT_ONESHOT);
}

int Remote::on_keepalives(sd_event_source*, uint64_t, void* userdata) {
    auto& self = *static_cast<Remote*>(userdata);
    self.keepalive_armed_.reset();
    // Not the time it was armed for: all that are due by now go, which is
    // what lets the timer's accuracy gather them.
    uint64_t now = 0;
    sd_event_now(self.event_, CLOCK_MONOTONIC, &now);
    // Each may close its connection (and bury it): look each one up.
    for (uint64_t id : self.keepalives_.take_due(now)) {
        if (auto it = self.connections_.find(id); it != self.connections_.end()) {
            it->second->keepalive_due();
        }
    }
    if (!self.keepalive_armed_) {
        self.arm_keepalives();
    }
    return 0;
}

void Remote::Connection::keepalive_changed() {
    const std::optional<RemoteWorker> w = remote_.host_.remote_worker(name_);
    if (phase_ != Phase::attached || !w || !w->attached || w->link != sender_ ||
        w->cfg->keepalive_interval == told_interval_) {
        return;
    }
    const uint64_t interval = w->cfg->keepalive_interval;
    // The worker first: its silence check must stop counting on the old
    // interval before our pings follow the new one.
    int r = remote_.host_.tell_worker_keepalive(name_, interval, on_set_keepalive_reply, this, set_keepalive_call_);
    if (r < 0) {
        remote_.host_.drop_worker(name_, DetachCause::error,
                                  std::string("cannot send it its new keepalive_interval: ") + std::strerror(-r));
        return;
    }
    log::write(log::Level::info,
               fmt::format("worker {}: keepalive_interval is now {}", name_,
                           interval ? std::to_string(interval) + " s" : std::string("none")),
               {{"BUILDYARD_WORKER", name_}});
    told_interval_ = interval;
    keepalive_ping_.reset();  // a ping in flight belongs to the old rhythm
    arm_keepalive();
}

int Remote::Connection::on_set_keepalive_reply(sd_bus_message* m, void* userdata, sd_bus_error*) {
    Connection& c = of(userdata);
    if (c.phase_ != Phase::attached || !sd_bus_message_is_method_error(m, nullptr)) {
        return 0;
    }
    // A worker that cannot take the new value would drop the link on its own
    // old schedule: better to say why now, and let it attach afresh.
    const sd_bus_error* e = sd_bus_message_get_error(m);
    c.remote_.host_.drop_worker(c.name_, DetachCause::error,
                                fmt::format("it did not take its new keepalive_interval ({}: {}); it "
                                            "gets the new value when it attaches again",
                                            e && e->name ? e->name : "?", e && e->message ? e->message : ""));
    return 0;
}

void Remote::Connection::arm_keepalive() {
    const std::optional<RemoteWorker> w = remote_.host_.remote_worker(name_);
    if (!w) {
        return;
    }
    const uint64_t interval = w->cfg->keepalive_interval;
    remote_.keepalive_in(id_, interval ? interval * 1'000'000 : keepalive_recheck_usec);
}

void Remote::Connection::keepalive_due() {
    RemoteHost& host = remote_.host_;
    const std::optional<RemoteWorker> w = host.remote_worker(name_);
    if (phase_ != Phase::attached || !w || !w->attached || w->link != sender_) {
        return;
    }
    if (w->cfg->keepalive_interval == 0) {
        arm_keepalive();
        return;
    }
    int r = host.ping_worker(name_, w->cfg->keepalive_timeout * 1'000'000, on_keepalive_reply, this, keepalive_ping_);
    if (r < 0) {
        host.drop_worker(name_, DetachCause::error, std::string("cannot send it a keepalive: ") + std::strerror(-r));
    }
}

int Remote::Connection::on_keepalive_reply(sd_bus_message* m, void* userdata, sd_bus_error*) {
    Connection& c = of(userdata);
    if (c.phase_ != Phase::attached || sd_bus_is_open(c.bus_.get()) <= 0) {
        return 0;  // closing: the Disconnected signal follows
    }
    if (sd_bus_message_is_method_error(m, nullptr)) {
        const std::optional<RemoteWorker> w = c.remote_.host_.remote_worker(c.name_);
        const sd_bus_error* e = sd_bus_message_get_error(m);
        c.remote_.host_.drop_worker(c.name_, DetachCause::keepalive,
                                    fmt::format("no answer to a keepalive within {} s ({})",
                                                w ? w->cfg->keepalive_timeout : 0,
                                                e && e->message ? e->message : "no reply"));
        return 0;
    }
    c.arm_keepalive();
    return 0;
}

}  // namespace by::master
