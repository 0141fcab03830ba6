#include "master/latent.hpp"

#include <cerrno>
#include <cstdarg>
#include <cstdlib>
#include <cstring>

#include <systemd/sd-id128.h>

#include "common/bus.hpp"
#include "common/crypto.hpp"
#include "common/env_knob.hpp"
#include "common/log.hpp"
#include "master/master.hpp"

namespace by::master {

namespace {

constexpr uint64_t usec_per_sec = 1'000'000;
constexpr size_t earlier_tokens_kept = 4;

bool is_latent(const Worker& w) { return w.cfg.type == config::WorkerType::latent && w.latent; }

void log_worker(log::Level level, const std::string& worker, const std::string& message) {
    log::write(level, message, {{"BUILDYARD_WORKER", worker}});
}

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

// One call to latentd awaiting its reply; the slot cancels it if we go first.
struct LatentControl::Call {
    LatentControl* control = nullptr;
    uint64_t id = 0;
    std::string worker;
    std::string start;
    SlotPtr slot;
};

LatentControl::Timeouts LatentControl::timeouts_from_environment() {
    Timeouts t;
    t.lease_usec = usec_from_env("BUILDYARD_LATENT_LEASE", t.lease_usec);
    return t;
}

LatentControl::LatentControl(Master& master, sd_event* event, sd_bus* bus, Timeouts timeouts)
    : master_(master), event_(event), bus_(bus), timeouts_(timeouts) {}

LatentControl::~LatentControl() = default;

uint64_t LatentControl::now() const {
    uint64_t t = 0;
    sd_event_now(event_, CLOCK_REALTIME, &t);
    return t;
}

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
    for (const auto& [name, w] : master_.workers()) {
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
    c->master_.request_dispatch();
    return 0;
}

void LatentControl::reconfigure() {
    for (const auto& [name, wp] : master_.workers()) {
        Worker& w = *wp;
        if (w.cfg.type != config::WorkerType::latent) {
            if (w.latent) {
                // Its machine would otherwise run on, unowned, until its
                // lease ran out; a worker attached from it drops with it.
                stop_departing(w, "is no longer of type latent");
                w.latent.reset();
                if (!w.held.empty()) {
                    master_.fail_waiting_builds(w, "its type changed while its machine was starting",
                                                "buildyard-masterd: the worker's type changed from latent while its "
                                                "machine was starting; the build runs again\n");
                }
            }
            continue;
        }
        const uint64_t timeout = w.cfg.missing_timeout ? w.cfg.missing_timeout : 3600;
        LatentSettings settings{w.cfg.build_wait_timeout, timeout};
        if (!w.latent) {
            w.latent = std::make_unique<LatentSide>();
            w.latent->machine = LatentMachine(settings);
            // A failure streak from before a restart goes on: its quarantine
            // holds and its trouble is not mailed a second time.
            w.latent->machine.restore(master_.store_->load_latent(name));
            w.latent->saved = w.latent->machine.record();
            rearm(w);
        } else {
            w.latent->machine.configure(settings);
        }
    }
}

void LatentControl::master_stopping() {
    bool any = false;
    for (const auto& [name, w] : master_.workers()) {
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

bool LatentControl::accepts_builds(const Worker& w) const {
    return ready_ && is_latent(w) && w.latent->machine.accepts_builds(now());
}

const std::string* LatentControl::current_token(const Worker& w) const {
    if (!is_latent(w) || !w.latent->machine.accepts_token() || w.latent->token.empty()) {
        return nullptr;
    }
    return &w.latent->token;
}

void LatentControl::build_assigned(Worker& w) {
    if (!is_latent(w)) return;
    const LatentState before = w.latent->machine.state();
    apply(w, before, w.latent->machine.build_assigned(now(), static_cast<unsigned>(w.running.size())));
}

void LatentControl::builds_changed(Worker& w) {
    if (!is_latent(w)) return;
    const LatentState before = w.latent->machine.state();
    apply(w, before, w.latent->machine.builds_changed(now(), static_cast<unsigned>(w.running.size())));
}

void LatentControl::attached(Worker& w) {
    if (!is_latent(w)) return;
    const LatentState before = w.latent->machine.state();
    apply(w, before, w.latent->machine.attached(now(), static_cast<unsigned>(w.running.size())));
}

void LatentControl::detached(Worker& w) {
    if (!is_latent(w)) return;
    const LatentState before = w.latent->machine.state();
    apply(w, before, w.latent->machine.detached(now()));
}

void LatentControl::forget(Worker& w) {
    if (is_latent(w)) {
        stop_departing(w, "left the configuration");
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

bool LatentControl::shutdown(Worker& w, bool graceful) {
    if (!is_latent(w)) return false;
    const LatentState before = w.latent->machine.state();
    LatentEffects fx = w.latent->machine.shutdown(now(), graceful, static_cast<unsigned>(w.running.size()));
    if (!fx.stop && !fx.changed) {
        return false;
    }
    apply(w, before, fx);
    return true;
}

// Carries out what the machine decided. Every transition is logged here.
void LatentControl::apply(Worker& w, LatentState before, const LatentEffects& fx) {
    LatentSide& side = *w.latent;
    const LatentState after = side.machine.state();
    const std::string name = w.cfg.name;
    if (before != after) {
        log::write(log::Level::info,
                   fmt::format("latent worker {}: {} -> {}{}{}", name, to_string(before), to_string(after),
                               fx.why.empty() ? "" : ": ", fx.why),
                   {{"BUILDYARD_WORKER", name}});
    } else if (!fx.why.empty() && fx.changed) {
        log_worker(log::Level::info, name, fmt::format("latent worker {}: {}", name, fx.why));
    }
    // A start ends when the machine leaves substantiating the first time
    // after it: its worker attached, or it failed, or it was given up.
    Metrics& metrics = master_.metrics();
    if (metrics.latent_start_pending(name) && after != LatentState::substantiating) {
        const bool attached = after == LatentState::idle || after == LatentState::building;
        const bool failed = side.machine.failures() > 0 && side.machine.quarantined(now());
        metrics.latent_start_ended(name, attached ? "attached" : failed ? "failed" : "abandoned", now());
    }
    if (fx.start) {
        metrics.latent_start_begun(name, now());  // before send_start, which may fail at once
    }
    if (fx.fail_waiting_builds) {
        const bool failure = side.machine.failures() > 0 && side.machine.quarantined(now());
        if (failure) {
            log::write(log::Level::warning,
                       fmt::format("latent worker {} failed to substantiate: {}; quarantined for {} s (failure {})",
                                   name, fx.why, (side.machine.quarantine_until() - now() + 999'999) / usec_per_sec,
                                   side.machine.failures()),
                       {{"BUILDYARD_WORKER", name}, {"MESSAGE_ID", std::string(log::id::worker_missing)}});
        }
        std::string text = "latent worker " + name + ": " + fx.why + "\n";
        if (!side.log_tail.empty()) {
            text += "--- last lines of its machine's log:\n" + side.log_tail;
            if (text.back() != '\n') text += '\n';
        }
        master_.fail_waiting_builds(w, fx.why, text);
        side.log_tail.clear();
    }
    if (fx.start) {
        send_start(w);
    }
    if (fx.stop) {
        send_stop(w, side.start);
    }
    if (fx.changed || fx.start || fx.stop || before != after) {
        master_.emit_worker(w);
        master_.request_dispatch();
    }
    persist(w);
    rearm(w);
    if (fx.drop_link && w.attached) {
        master_.drop_worker(name, DetachCause::latent, fx.why);  // may requeue builds and call detached()
    }
}

void LatentControl::persist(Worker& w) {
    LatentSide& side = *w.latent;
    LatentMachine::Record now = side.machine.record();
    if (now == side.saved) {
        return;
    }
    if (!master_.store_->save_latent(w.cfg.name, now)) {
        log_worker(log::Level::err, w.cfg.name,
                   fmt::format("cannot record the start failures of latent worker {}: {}", w.cfg.name,
                               master_.store_->error()));
        return;
    }
    side.saved = std::move(now);
}

void LatentControl::rearm(Worker& w) {
    LatentSide& side = *w.latent;
    auto deadline = side.machine.next_deadline();
    if (!deadline) {
        side.timer.reset();
        return;
    }
    if (side.timer) {
        sd_event_source_set_time(side.timer.get(), *deadline);
        sd_event_source_set_enabled(side.timer.get(), SD_EVENT_ONESHOT);
        return;
    }
    sd_event_source* s = nullptr;
    if (sd_event_add_time(event_, &s, CLOCK_REALTIME, *deadline, 100'000, &LatentControl::on_timer, &w) >= 0) {
        side.timer.reset(s);
    }
}

int LatentControl::on_timer(sd_event_source*, uint64_t, void* userdata) {
    auto& w = *static_cast<Worker*>(userdata);
    if (!w.latent) return 0;
    LatentControl& c = *w.master->latent();
    const LatentState before = w.latent->machine.state();
    c.apply(w, before, w.latent->machine.tick(c.now()));
    return 0;
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
                 master_.tls_fingerprint().c_str(), lease);
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
    Worker* w = c.master_.find_worker(call->worker);
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
    Worker* w = c.master_.find_worker(call->worker);
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
    for (const auto& [name, wp] : master_.workers()) {
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
    Worker* w = c.master_.find_worker(call->worker);
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
    Worker* w = c->master_.find_worker(worker);
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
