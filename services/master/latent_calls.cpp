// The calls to buildyard-latentd (org.buildyard.Latent1) that carry out a
// latent worker's effects: StopAll at start-up and at exit, Start, Stop and
// RenewLease, each with a deadline, and its InstanceGone signal. Their
// answers go back to the worker's LatentMachine through apply() (latent.cpp).
#include "master/latent.hpp"

#include <cerrno>
#include <cstdarg>
#include <cstring>

#include <systemd/sd-id128.h>

#include "common/bus.hpp"
#include "common/crypto.hpp"
#include "master/worker.hpp"

namespace by::master {

namespace {

constexpr size_t earlier_tokens_kept = 4;

// An error reply, as the log and the builds' logs say it.
std::string describe_error(const sd_bus_error* e) {
    if (!e || !e->name) {
        return "no answer";
    }
    const std::string name = e->name;
    if (name == "org.freedesktop.DBus.Error.ServiceUnknown" || name == "org.freedesktop.DBus.Error.NameHasNoOwner") {
        return "buildyard-latentd is not running (" + name + ")";
    }
    if (name == "org.freedesktop.DBus.Error.NoReply" || name == "org.freedesktop.DBus.Error.Timeout") {
        return "buildyard-latentd did not answer in time";
    }
    return std::string(e->message ? e->message : "") + " (" + name + ")";
}

}  // namespace

int LatentControl::start() {
    sd_bus_slot* s = nullptr;
    int r = sd_bus_match_signal(bus_, &s, bus::latent_name, bus::latent_path, bus::latent_iface, "InstanceGone",
                                &LatentControl::on_instance_gone, this);
    if (r < 0) return r;
    gone_match_.reset(s);
    sd_event_source* src = nullptr;
    r = sd_event_add_time_relative(event_, &src, CLOCK_MONOTONIC, timeouts_.lease_usec / 3, usec_per_sec,
                                   &LatentControl::on_renew_timer, this);
    if (r < 0) return r;
    renew_timer_.reset(src);
    sd_event_source_set_enabled(src, SD_EVENT_ON);
    reconfigure();

    bool any = false;
    for (const auto& [name, w] : host_.all_workers()) {
        any = any || is_latent(*w);
    }
    if (!any) {
        return 0;
    }
    // Machines of an earlier master run with tokens nobody knows now.
    ready_ = false;
    r = sd_bus_call_method_async(bus_, &s, bus::latent_name, bus::latent_path, bus::latent_iface, "StopAll",
                                 &LatentControl::on_stop_all_reply, this, "");
    if (r < 0) {
        ready_ = true;
        log::warning("cannot ask buildyard-latentd to stop the machines of an earlier run: {}", std::strerror(-r));
        return 0;
    }
    stop_all_.reset(s);
    return 0;
}

int LatentControl::on_stop_all_reply(sd_bus_message* m, void* userdata, sd_bus_error*) {
    auto* c = static_cast<LatentControl*>(userdata);
    if (const sd_bus_error* e = sd_bus_message_get_error(m)) {
        log::warning("buildyard-latentd did not stop the machines of an earlier run: {}", describe_error(e));
    } else {
        log::info("buildyard-latentd stopped the machines of an earlier run, if any");
    }
    c->ready_ = true;
    c->stop_all_.reset();
    c->host_.request_dispatch();
    return 0;
}

void LatentControl::master_stopping() {
    bool any = false;
    for (const auto& [name, w] : host_.all_workers()) {
        any = any || (is_latent(*w) && w->latent->machine.state() != LatentState::offline);
    }
    if (!any) {
        return;
    }
    log::info("stopping the machines of latent workers");
    sd_bus_message* raw = nullptr;
    int r = sd_bus_message_new_method_call(bus_, &raw, bus::latent_name, bus::latent_path, bus::latent_iface,
                                           "StopAll");
    MessagePtr m(raw);
    if (r >= 0) r = sd_bus_message_set_expect_reply(raw, 0);
    if (r >= 0) r = sd_bus_send(bus_, raw, nullptr);
    if (r >= 0) r = sd_bus_flush(bus_);
    if (r < 0) {
        log::warning("cannot ask buildyard-latentd to stop the machines: {}; their leases will run out",
                     std::strerror(-r));
    }
}

void LatentControl::stop_departing(Worker& w, const std::string& why) {
    if (!w.latent || w.latent->start.empty() || w.latent->machine.state() == LatentState::offline) {
        return;
    }
    log_worker(log::Level::info, w.cfg.name,
               fmt::format("latent worker {} {}; stopping its machine", w.cfg.name, why));
    // Nobody waits for the answer: the worker is gone from here on.
    if (call("Stop", timeouts_.stop_call_usec, w.cfg.name, w.latent->start, &LatentControl::on_stop_reply, "ss",
             w.cfg.name.c_str(), w.latent->start.c_str()) < 0) {
        log_worker(log::Level::err, w.cfg.name,
                   fmt::format("cannot ask buildyard-latentd to stop the machine of {}; its lease will run out",
                               w.cfg.name));
    }
}

int LatentControl::call(const char* member, uint64_t timeout, const std::string& worker, const std::string& start,
                        sd_bus_message_handler_t handler, const char* types, ...) {
    sd_bus_message* raw = nullptr;
    int r = sd_bus_message_new_method_call(bus_, &raw, bus::latent_name, bus::latent_path, bus::latent_iface, member);
    MessagePtr m(raw);
    if (r >= 0) {
        va_list ap;
        va_start(ap, types);
        r = sd_bus_message_appendv(raw, types, ap);
        va_end(ap);
    }
    auto c = std::make_unique<Call>();
    c->control = this;
    c->id = next_call_++;
    c->worker = worker;
    c->start = start;
    sd_bus_slot* s = nullptr;
    if (r >= 0) r = sd_bus_call_async(bus_, &s, raw, handler, c.get(), timeout);
    if (r < 0) {
        return r;
    }
    c->slot.reset(s);
    calls_[c->id] = std::move(c);
    return 0;
}

void LatentControl::send_start(Worker& w) {
    LatentSide& side = *w.latent;
    sd_id128_t id;
    auto token = crypto::random_hex(32);
    if (sd_id128_randomize(&id) < 0 || token.empty()) {
        const LatentState before = side.machine.state();
        apply(w, before, side.machine.start_failed(now(), "cannot make a start id and token"));
        return;
    }
    char id_text[SD_ID128_STRING_MAX];
    side.start = sd_id128_to_string(id, id_text);
    if (!side.token.empty()) {
        side.earlier_tokens.push_front(side.token);
        if (side.earlier_tokens.size() > earlier_tokens_kept) side.earlier_tokens.pop_back();
    }
    side.token = token;
    side.instance.clear();
    side.log_tail.clear();
    const uint64_t timeout = side.machine.settings().substantiation_timeout * usec_per_sec;
    // The lease covers the wait for the worker; renewals extend it after.
    const uint64_t lease = timeouts_.lease_usec + timeout;
    log::write(log::Level::info, fmt::format("starting a machine for latent worker {} (start {})", w.cfg.name, side.start),
               {{"BUILDYARD_WORKER", w.cfg.name}});
    int r = call("Start", timeout, w.cfg.name, side.start, &LatentControl::on_start_reply, "ssssst",
                 w.cfg.name.c_str(), side.start.c_str(), w.cfg.master_address.c_str(), side.token.c_str(),
                 host_.tls_fingerprint().c_str(), lease);
    if (r < 0) {
        const LatentState before = side.machine.state();
        apply(w, before,
              side.machine.start_failed(now(), std::string("cannot call buildyard-latentd: ") + std::strerror(-r)));
    }
}

void LatentControl::send_stop(Worker& w, const std::string& start) {
    if (start.empty()) {
        const LatentState before = w.latent->machine.state();
        apply(w, before, w.latent->machine.stop_done(now()));
        return;
    }
    int r = call("Stop", timeouts_.stop_call_usec, w.cfg.name, start, &LatentControl::on_stop_reply, "ss",
                 w.cfg.name.c_str(), start.c_str());
    if (r < 0) {
        log_worker(log::Level::err, w.cfg.name,
                   fmt::format("cannot ask buildyard-latentd to stop the machine of latent worker {}: {}; its lease "
                               "will run out",
                               w.cfg.name, std::strerror(-r)));
        const LatentState before = w.latent->machine.state();
        apply(w, before, w.latent->machine.stop_done(now()));
    }
}

int LatentControl::on_start_reply(sd_bus_message* m, void* userdata, sd_bus_error*) {
    auto* call = static_cast<Call*>(userdata);
    LatentControl& c = *call->control;
    auto owned = std::move(c.calls_[call->id]);
    c.calls_.erase(call->id);
    Worker* w = c.host_.find_worker(call->worker);
    if (!w || !is_latent(*w) || w->latent->start != call->start) {
        return 0;  // an old start's answer
    }
    LatentSide& side = *w->latent;
    const LatentState before = side.machine.state();
    if (const sd_bus_error* e = sd_bus_message_get_error(m)) {
        c.apply(*w, before, side.machine.start_failed(c.now(), describe_error(e)));
        return 0;
    }
    const char* instance = nullptr;
    if (sd_bus_message_read(m, "s", &instance) >= 0 && instance) {
        side.instance = instance;
    }
    log_worker(log::Level::info, call->worker,
               fmt::format("latentd started machine {} for latent worker {} (start {})", side.instance, call->worker,
                           call->start));
    c.apply(*w, before, side.machine.start_succeeded(c.now()));
    return 0;
}

int LatentControl::on_stop_reply(sd_bus_message* m, void* userdata, sd_bus_error*) {
    auto* call = static_cast<Call*>(userdata);
    LatentControl& c = *call->control;
    auto owned = std::move(c.calls_[call->id]);
    c.calls_.erase(call->id);
    if (const sd_bus_error* e = sd_bus_message_get_error(m)) {
        log_worker(log::Level::err, call->worker,
                   fmt::format("buildyard-latentd could not stop the machine of latent worker {} (start {}): {}; "
                               "its reaper and lease see to it",
                               call->worker, call->start, describe_error(e)));
    }
    Worker* w = c.host_.find_worker(call->worker);
    if (!w || !is_latent(*w) || w->latent->start != call->start) {
        return 0;
    }
    const LatentState before = w->latent->machine.state();
    c.apply(*w, before, w->latent->machine.stop_done(c.now()));
    return 0;
}

int LatentControl::on_renew_timer(sd_event_source* s, uint64_t usec, void* userdata) {
    auto* c = static_cast<LatentControl*>(userdata);
    c->send_renewals();
    sd_event_source_set_time(s, usec + c->timeouts_.lease_usec / 3);
    return 0;
}

// While the master lives and wants a machine, its lease is renewed; a
// master that dies lets every lease run out.
void LatentControl::send_renewals() {
    for (const auto& [name, wp] : host_.all_workers()) {
        Worker& w = *wp;
        if (!is_latent(w) || w.latent->start.empty() || !w.latent->machine.accepts_token()) {
            continue;
        }
        const LatentSide& side = *w.latent;
        const uint64_t lease = timeouts_.lease_usec + side.machine.settings().substantiation_timeout * usec_per_sec;
        int r = call("RenewLease", timeouts_.renew_call_usec, name, side.start, &LatentControl::on_renew_reply, "st",
                     side.start.c_str(), lease);
        if (r < 0) {
            log_worker(log::Level::warning, name,
                       fmt::format("cannot renew the lease of latent worker {}: {}", name, std::strerror(-r)));
        }
    }
}

int LatentControl::on_renew_reply(sd_bus_message* m, void* userdata, sd_bus_error*) {
    auto* call = static_cast<Call*>(userdata);
    LatentControl& c = *call->control;
    auto owned = std::move(c.calls_[call->id]);
    c.calls_.erase(call->id);
    const sd_bus_error* e = sd_bus_message_get_error(m);
    if (!e) {
        return 0;
    }
    Worker* w = c.host_.find_worker(call->worker);
    if (!w || !is_latent(*w) || w->latent->start != call->start) {
        return 0;
    }
    if (e->name && std::strcmp(e->name, bus::error::NoSuchInstance) == 0) {
        const LatentState before = w->latent->machine.state();
        c.apply(*w, before,
                w->latent->machine.instance_gone(c.now(), "buildyard-latentd no longer knows it",
                                                 static_cast<unsigned>(w->held.size())));
        return 0;
    }
    log_worker(log::Level::warning, call->worker,
               fmt::format("cannot renew the lease of latent worker {}: {}", call->worker, describe_error(e)));
    return 0;
}

int LatentControl::on_instance_gone(sd_bus_message* m, void* userdata, sd_bus_error*) {
    auto* c = static_cast<LatentControl*>(userdata);
    const char *worker = nullptr, *start = nullptr, *reason = nullptr, *tail = nullptr;
    if (sd_bus_message_read(m, "ssss", &worker, &start, &reason, &tail) < 0) {
        return 0;
    }
    Worker* w = c->host_.find_worker(worker);
    if (!w || !is_latent(*w) || w->latent->start != start) {
        return 0;
    }
    log::write(log::Level::warning,
               fmt::format("the machine of latent worker {} ended (start {}): {}{}{}", worker, start, reason,
                           *tail ? "; its last lines:\n" : "", tail),
               {{"BUILDYARD_WORKER", worker}});
    w->latent->log_tail = tail;
    const LatentState before = w->latent->machine.state();
    c->apply(*w, before, w->latent->machine.instance_gone(c->now(), reason, static_cast<unsigned>(w->held.size())));
    return 0;
}

}  // namespace by::master
