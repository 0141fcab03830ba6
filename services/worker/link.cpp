#include "worker/link.hpp"

#include <cerrno>
#include <cstring>
#include <utility>

#include <fmt/format.h>

#include "common/log.hpp"
#include "worker/reports.hpp"

namespace by::worker {

namespace {

constexpr uint64_t detach_timeout_usec = 2 * 1000000ull;
// After an Attach that failed for a reason other than a refusal or an absent
// master (a timeout, a master that crashed mid-call), try again this late.
constexpr uint64_t attach_retry_usec = 5 * 1000000ull;

constexpr const char* name_owner_match =
    "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
    "interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='org.buildyard.Master1'";

bool is_refusal(const sd_bus_error* e) {
    return sd_bus_error_has_names(e, bus::error::AccessDenied, bus::error::NoSuchWorker,
                                  bus::error::AlreadyAttached);
}

bool is_master_absent(const sd_bus_error* e) {
    return sd_bus_error_has_names(e, "org.freedesktop.DBus.Error.ServiceUnknown",
                                  "org.freedesktop.DBus.Error.NameHasNoOwner");
}

std::string error_text(const sd_bus_error* e) {
    if (e->message && *e->message) {
        return e->message;
    }
    return e->name ? e->name : "unknown error";
}

}  // namespace

MasterLink::MasterLink(sd_event* event, std::string name, Events events)
    : event_(event), name_(std::move(name)), events_(std::move(events)) {}

int MasterLink::open() {
    int r = bus::open_system(bus_);
    if (r < 0) {
        return r;
    }
    r = sd_bus_attach_event(bus_.get(), event_, SD_EVENT_PRIORITY_NORMAL);
    if (r < 0) {
        return r;
    }
    sd_bus_slot* slot = nullptr;
    r = sd_bus_add_filter(bus_.get(), &slot, on_filter, this);
    if (r < 0) {
        return r;
    }
    filter_slot_.reset(slot);
    return 0;
}

int MasterLink::start(const std::function<int(sd_bus*)>& export_objects) {
    int r = open();
    if (r < 0) {
        log::error("cannot connect to the system bus: {}", std::strerror(-r));
        return r;
    }
    r = export_objects(bus_.get());
    if (r < 0) {
        log::error("cannot export {}: {}", bus::agent_path, std::strerror(-r));
        return r;
    }
    r = watch();
    if (r < 0) {
        log::error("cannot watch {} on the bus: {}", bus::master_name, std::strerror(-r));
        return r;
    }
    return 0;
}

int MasterLink::watch() {
    // The match goes out before the first Attach, so the bus daemon applies
    // it first: an owner that appears after Attach failed is always seen.
    sd_bus_slot* slot = nullptr;
    int r = sd_bus_add_match_async(bus_.get(), &slot, name_owner_match, on_name_owner_changed,
                                   on_match_installed, this);
    if (r < 0) {
        return r;
    }
    match_slot_.reset(slot);
    attach();
    return 0;
}

bool MasterLink::from_master(sd_bus_message* m) const {
    const char* sender = sd_bus_message_get_sender(m);
    return state_ == State::attached && sender && master_ == sender;
}

void MasterLink::set_state(State s) {
    state_ = s;
    if (events_.state_changed) {
        events_.state_changed();
    }
}

void MasterLink::attach() {
    if (closing_) {
        return;
    }
    retry_timer_.reset();
    attach_slot_.reset();
    master_.clear();
    owner_changed_while_attaching_ = false;

    sd_bus_message* raw = nullptr;
    int r = sd_bus_message_new_method_call(bus_.get(), &raw, bus::master_name, bus::master_path,
                                           bus::link_iface, "Attach");
    MessagePtr m(raw);
    if (r >= 0) {
        r = sd_bus_message_append(m.get(), "s", name_.c_str());
    }
    if (r >= 0) {
        r = bus::append_string_map(m.get(), events_.info ? events_.info() : bus::StringMap{});
    }
    sd_bus_slot* slot = nullptr;
    if (r >= 0) {
        r = sd_bus_call_async(bus_.get(), &slot, m.get(), on_attach_reply, this, 0);
    }
    if (r < 0) {
        log::write(log::Level::warning,
                   fmt::format("cannot send Attach to {}: {}; trying again in {} s", bus::master_name,
                               std::strerror(-r), attach_retry_usec / 1000000),
                   {{"BUILDYARD_WORKER", name_}});
        wait_for_master(true);
        return;
    }
    attach_slot_.reset(slot);
    set_state(State::attaching);
}

int MasterLink::on_attach_reply(sd_bus_message* m, void* userdata, sd_bus_error*) {
    auto* self = static_cast<MasterLink*>(userdata);
    const sd_bus_error* e = sd_bus_message_get_error(m);
    if (!e) {
        const char* path = nullptr;
        const char* sender = sd_bus_message_get_sender(m);
        int r = sd_bus_message_read(m, "o", &path);
        if (r < 0 || !sender) {
            log::write(log::Level::warning,
                       fmt::format("{} sent a malformed Attach reply; trying again in {} s", bus::master_name,
                                   attach_retry_usec / 1000000),
                       {{"BUILDYARD_WORKER", self->name_}});
            self->wait_for_master(true);
            return 0;
        }
        self->master_ = sender;
        log::write(log::Level::notice,
                   fmt::format("attached to {} ({}) as worker '{}' ({})", bus::master_name, sender, self->name_,
                               path),
                   {{"BUILDYARD_WORKER", self->name_}});
        self->set_state(State::attached);
        return 0;
    }
    if (is_refusal(e) || sd_bus_error_has_name(e, "org.freedesktop.DBus.Error.AccessDenied")) {
        // Trying again would get the same answer; systemd shows the reason.
        log::write(log::Level::err,
                   fmt::format("master refused to attach worker '{}': {}", self->name_, error_text(e)),
                   {{"BUILDYARD_WORKER", self->name_}});
        self->state_ = State::idle;
        if (self->events_.fatal) {
            self->events_.fatal(1);
        }
        return 0;
    }
    if (self->owner_changed_while_attaching_) {
        // The call went to an owner that has since been replaced.
        self->attach();
        return 0;
    }
    if (is_master_absent(e)) {
        self->wait_for_master(false);
        return 0;
    }
    log::write(log::Level::warning,
               fmt::format("attaching to {} failed: {}; trying again in {} s", bus::master_name, error_text(e),
                           attach_retry_usec / 1000000),
               {{"BUILDYARD_WORKER", self->name_}});
    self->wait_for_master(true);
    return 0;
}

void MasterLink::wait_for_master(bool retry_later) {
    master_.clear();
    if (retry_later) {
        sd_event_source* t = nullptr;
        if (sd_event_add_time_relative(event_, &t, CLOCK_MONOTONIC, attach_retry_usec, 0, on_retry, this) >= 0) {
            retry_timer_.reset(t);
        }
    } else {
        log::write(log::Level::notice, fmt::format("waiting for {}", bus::master_name),
                   {{"BUILDYARD_WORKER", name_}});
    }
    set_state(State::waiting);
}

int MasterLink::on_retry(sd_event_source*, uint64_t, void* userdata) {
    auto* self = static_cast<MasterLink*>(userdata);
    if (self->state_ == State::waiting) {
        self->attach();
    }
    return 0;
}

int MasterLink::on_match_installed(sd_bus_message* m, void* userdata, sd_bus_error*) {
    auto* self = static_cast<MasterLink*>(userdata);
    const sd_bus_error* e = sd_bus_message_get_error(m);
    if (e) {
        log::write(log::Level::err,
                   fmt::format("cannot watch {} on the bus: {}", bus::master_name, error_text(e)),
                   {{"BUILDYARD_WORKER", self->name_}});
        if (self->events_.fatal) {
            self->events_.fatal(1);
        }
    }
    return 0;
}

int MasterLink::on_name_owner_changed(sd_bus_message* m, void* userdata, sd_bus_error*) {
    auto* self = static_cast<MasterLink*>(userdata);
    const char* name = nullptr;
    const char* old_owner = nullptr;
    const char* new_owner = nullptr;
    if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0) {
        return 0;
    }
    bool has_owner = new_owner && *new_owner;
    if (self->state_ == State::attached && self->master_ == old_owner) {
        log::write(log::Level::warning,
                   fmt::format("{} ({}) left the bus; its builds here are ended, attaching again when it is back",
                               bus::master_name, old_owner),
                   {{"BUILDYARD_WORKER", self->name_}});
        self->master_.clear();
        self->state_ = State::waiting;
        if (self->events_.master_lost) {
            self->events_.master_lost();
        }
        if (!has_owner) {
            self->wait_for_master(false);
            return 0;
        }
    }
    if (!has_owner) {
        return 0;
    }
    if (self->state_ == State::attaching) {
        self->owner_changed_while_attaching_ = true;
    } else if (self->state_ == State::waiting) {
        self->attach();
    }
    return 0;
}

int MasterLink::on_filter(sd_bus_message* m, void* userdata, sd_bus_error*) {
    auto* self = static_cast<MasterLink*>(userdata);
    if (sd_bus_message_is_signal(m, "org.freedesktop.DBus.Local", "Disconnected") > 0) {
        log::write(log::Level::err, "lost the connection to the system bus", {{"BUILDYARD_WORKER", self->name_}});
        self->master_.clear();
        self->state_ = State::idle;
        if (self->events_.fatal) {
            self->events_.fatal(1);
        }
    }
    return 0;
}

int MasterLink::step_started(uint64_t build, unsigned step) {
    return state_ == State::attached ? reports::step_started(bus_.get(), master_.c_str(), build, step) : -ENOTCONN;
}

int MasterLink::output(uint64_t build, std::string_view data) {
    return state_ == State::attached ? reports::output(bus_.get(), master_.c_str(), build, data) : -ENOTCONN;
}

int MasterLink::build_done(uint64_t build, const std::string& result, int exit_status, const BuildUsage& usage) {
    return state_ == State::attached ? reports::build_done(bus_.get(), master_.c_str(), build, result, exit_status, usage)
                                     : -ENOTCONN;
}

int MasterLink::request_shutdown() {
    return state_ == State::attached ? reports::shutdown_gracefully(bus_.get(), master_.c_str()) : -ENOTCONN;
}

int MasterLink::detach(const std::string& reason) {
    if (state_ != State::attached) {
        return 0;
    }
    sd_bus_message* raw = nullptr;
    int r = sd_bus_message_new_method_call(bus_.get(), &raw, master_.c_str(), bus::master_path, bus::link_iface,
                                           "Detach");
    MessagePtr m(raw);
    if (r >= 0) {
        r = sd_bus_message_append(m.get(), "s", reason.c_str());
    }
    BusError error;
    sd_bus_message* reply_raw = nullptr;
    if (r >= 0) {
        r = sd_bus_call(bus_.get(), m.get(), detach_timeout_usec, error.get(), &reply_raw);
    }
    MessagePtr reply(reply_raw);
    if (r < 0) {
        log::write(log::Level::warning,
                   fmt::format("Detach from {} failed: {}", bus::master_name,
                               error.is_set() ? error_text(error.get()) : std::strerror(-r)),
                   {{"BUILDYARD_WORKER", name_}});
    }
    master_.clear();
    set_state(State::idle);
    return r;
}

uint64_t MasterLink::queued_writes() const {
    uint64_t n = 0;
    if (bus_) {
        sd_bus_get_n_queued_write(bus_.get(), &n);
    }
    return n;
}

}  // namespace by::worker
