// LatentControl's own part: each latent worker's LatentMachine set up from
// the configuration, fed the master's events and its own deadline timer,
// and what the machine decides carried out (apply): logged, counted, held
// builds failed, the worker re-announced, its streak stored. The calls to
// buildyard-latentd are in latent_calls.cpp.
#include "master/latent.hpp"

#include "master/worker.hpp"
#include "master/store.hpp"

namespace by::master {

bool LatentControl::is_latent(const Worker& w) { return w.cfg.type == config::WorkerType::latent && w.latent; }

void LatentControl::log_worker(log::Level level, const std::string& worker, const std::string& message) {
    log::write(level, message, {{"BUILDYARD_WORKER", worker}});
}

LatentControl::LatentControl(LatentHost& host, Store& store, Metrics& metrics, sd_event* event, sd_bus* bus,
                             Timeouts timeouts)
    : host_(host), store_(store), metrics_(metrics), event_(event), bus_(bus), timeouts_(timeouts) {}

LatentControl::~LatentControl() = default;

uint64_t LatentControl::now() const {
    uint64_t t = 0;
    sd_event_now(event_, CLOCK_REALTIME, &t);
    return t;
}

void LatentControl::reconfigure() {
    for (const auto& [name, wp] : host_.all_workers()) {
        Worker& w = *wp;
        if (w.cfg.type != config::WorkerType::latent) {
            if (w.latent) {
                // Its machine would otherwise run on, unowned, until its
                // lease ran out; a worker attached from it drops with it.
                stop_departing(w, "is no longer of type latent");
                w.latent.reset();
                if (!w.held.empty()) {
                    host_.fail_waiting_builds(w, "its type changed while its machine was starting",
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
            w.latent->control = this;
            w.latent->machine = LatentMachine(settings);
            // A failure streak from before a restart goes on: its quarantine
            // holds and its trouble is not mailed a second time.
            w.latent->machine.restore(store_.load_latent(name));
            w.latent->saved = w.latent->machine.record();
            rearm(w);
        } else {
            w.latent->machine.configure(settings);
        }
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
    if (metrics_.latent_start_pending(name) && after != LatentState::substantiating) {
        const bool attached = after == LatentState::idle || after == LatentState::building;
        const bool failed = side.machine.failures() > 0 && side.machine.quarantined(now());
        metrics_.latent_start_ended(name, attached ? "attached" : failed ? "failed" : "abandoned", now());
    }
    if (fx.start) {
        metrics_.latent_start_begun(name, now());  // before send_start, which may fail at once
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
        host_.fail_waiting_builds(w, fx.why, text);
        side.log_tail.clear();
    }
    if (fx.start) {
        send_start(w);
    }
    if (fx.stop) {
        send_stop(w, side.start);
    }
    if (fx.changed || fx.start || fx.stop || before != after) {
        host_.emit_worker(w);
        host_.request_dispatch();
    }
    persist(w);
    rearm(w);
    if (fx.drop_link && w.attached) {
        host_.drop_worker(name, DetachCause::latent, fx.why);  // may requeue builds and call detached()
    }
}

void LatentControl::persist(Worker& w) {
    LatentSide& side = *w.latent;
    LatentMachine::Record now = side.machine.record();
    if (now == side.saved) {
        return;
    }
    if (!store_.save_latent(w.cfg.name, now)) {
        log_worker(log::Level::err, w.cfg.name,
                   fmt::format("cannot record the start failures of latent worker {}: {}", w.cfg.name,
                               store_.error()));
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
    LatentControl& c = *w.latent->control;
    const LatentState before = w.latent->machine.state();
    c.apply(w, before, w.latent->machine.tick(c.now()));
    return 0;
}

}  // namespace by::master
