#include "latent/latent_manager.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include <fcntl.h>
#include <systemd/sd-daemon.h>

#include "common/bus.hpp"
#include "common/daemon.hpp"
#include "common/log.hpp"

namespace by::latent {

config::LoadResult load_config(const std::string& path) {
    config::Environment env = config::current_environment();
    env.read_secrets = false;
    return config::load(path, env);
}

LatentManager::LatentManager(sd_event* event, sd_bus* bus, std::string config_path, std::string state_directory,
                             uint64_t test_create_delay)
    : event_(event),
      bus_(bus),
      config_path_(std::move(config_path)),
      state_directory_(std::move(state_directory)),
      timing_({}, test_create_delay),
      calls_(event) {}

LatentManager::~LatentManager() = default;

bool LatentManager::start(std::string& error, std::function<void()> ready) {
    ready_ = std::move(ready);
    auto loaded = load_config(config_path_);
    if (!loaded.config) {
        error = "invalid configuration:";
        for (const auto& e : loaded.errors) {
            error += "\n  " + e.str();
        }
        return false;
    }
    config_ = std::move(*loaded.config);
    timing_ = Timing(config_.latentd, timing_.test_create_delay);
    // One latentd per state directory, and the bus name before the reaper
    // runs: a second latentd would take the first one's instances for leaks.
    state_lock_ = lock_state_directory(state_directory_, "buildyard-latentd", error);
    if (!state_lock_) {
        return false;
    }
    if (int r = register_latent_object(*this, bus_, slot_); r < 0) {
        error = std::string("cannot register the bus object: ") + std::strerror(-r);
        return false;
    }
    if (int r = sd_bus_request_name(bus_, bus::latent_name, 0); r < 0) {
        error = fmt::format("cannot own {} on the system bus: {}{}", bus::latent_name, std::strerror(-r),
                            r == -EEXIST ? " (is another buildyard-latentd running?)" : "");
        return false;
    }
    if (!store_.open(state_directory_)) {
        error = store_.error();
        return false;
    }
    sd_event_source* s = nullptr;
    if (int r = sd_event_add_defer(event_, &s, &LatentManager::on_changed_deferred, this); r < 0) {
        error = std::string("cannot add an event source: ") + std::strerror(-r);
        return false;
    }
    changed_source_.reset(s);
    sd_event_source_set_enabled(s, SD_EVENT_OFF);
    int r = add_timer(lease_timer_, timing_.lease_check_interval, &LatentManager::on_lease_timer);
    if (r >= 0) r = add_timer(health_timer_, std::min(timing_.health_interval, timing_.young_interval),
                                &LatentManager::on_health_timer);
    if (r >= 0) r = add_timer(reap_timer_, timing_.reap_interval, &LatentManager::on_reap_timer);
    if (r < 0) {
        error = std::string("cannot add a timer: ") + std::strerror(-r);
        return false;
    }

    auto rows = store_.load_all();
    if (!store_.error().empty()) {
        error = store_.error();
        return false;
    }
    Recovery plan = plan_recovery(rows, config_, bus::now_realtime_usec());
    for (const auto& row : plan.orphans) {
        log::write(log::Level::err,
                   fmt::format("start {} of worker {} ({}) cannot be managed: {} is no longer a latent worker with "
                               "backend {}; forgetting it, and whatever it made is left in place",
                               row.start, row.worker, to_string(row.phase), row.worker, row.backend),
                   {{"BUILDYARD_WORKER", row.worker}, {"BUILDYARD_START", row.start}});
        store_.remove(row.start);
    }
    for (const auto& row : plan.dead) {
        log::write(log::Level::notice,
                   fmt::format("start {} of worker {} was {} when latentd stopped; it is not live, and the reaper "
                               "removes what it made",
                               row.start, row.worker, to_string(row.phase)),
                   {{"BUILDYARD_WORKER", row.worker}, {"BUILDYARD_START", row.start}});
        adopt(row, true);
    }
    for (const auto& row : plan.adopt) {
        log::write(log::Level::info, fmt::format("start {} of worker {} is running (instance {})", row.start,
                                                 row.worker, row.instance),
                   {{"BUILDYARD_WORKER", row.worker}, {"BUILDYARD_START", row.start}});
        adopt(row, false);
    }
    for (const auto& row : plan.expired) {
        adopt(row, false);
    }
    check_leases();
    log::info("latentd of master '{}' started with {} latent workers and {} live instances", config_.master.name,
              count_latent_workers(config_), live_instances());
    sd_notify(0, "STATUS=looking for leaked instances");
    request_reap();
    // A running instance that vanished while latentd was away is found now.
    check_health();
    return true;
}

void LatentManager::adopt(const StartRow& row, bool dead) {
    auto inst = std::make_unique<Instance>();
    inst->row = row;
    inst->dead = dead;
    inst->worker = std::make_shared<const config::Worker>(config_.workers.at(row.worker));
    inst->backend = backend_for(row.backend);
    if (!inst->backend) {
        log::write(log::Level::err,
                   fmt::format("start {} of worker {} cannot be managed: backend {} is not available in this build; "
                               "forgetting it",
                               row.start, row.worker, row.backend),
                   {{"BUILDYARD_WORKER", row.worker}, {"BUILDYARD_START", row.start}});
        store_.remove(row.start);
        return;
    }
    instances_[row.start] = std::move(inst);
}

int LatentManager::add_timer(SourcePtr& out, uint64_t interval, sd_event_time_handler_t handler) {
    sd_event_source* s = nullptr;
    // The accuracy lets the kernel coalesce the wakeups.
    int r = sd_event_add_time_relative(event_, &s, CLOCK_MONOTONIC, interval, interval / 4, handler, this);
    if (r < 0) return r;
    out.reset(s);
    return 0;
}

void LatentManager::rearm(sd_event_source* s, uint64_t interval) {
    sd_event_source_set_time_relative(s, interval);
    sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

Instance* LatentManager::find(const std::string& start) {
    auto it = instances_.find(start);
    return it == instances_.end() ? nullptr : it->second.get();
}

bool LatentManager::is_live(const std::string& start) const {
    auto it = instances_.find(start);
    return it != instances_.end() && !it->second->dead;
}

unsigned LatentManager::live_instances() const {
    unsigned n = 0;
    for (const auto& [start, inst] : instances_) {
        n += inst->dead ? 0 : 1;
    }
    return n;
}

std::vector<StartRow> LatentManager::instances() const {
    std::vector<StartRow> out;
    for (const auto& [start, inst] : instances_) {
        out.push_back(inst->row);
        if (inst->dead) {
            out.back().phase = Phase::stopping;
        }
    }
    std::stable_sort(out.begin(), out.end(),
                     [](const StartRow& a, const StartRow& b) { return a.created_at < b.created_at; });
    return out;
}

std::shared_ptr<Backend> LatentManager::backend_for(const std::string& name) {
    auto& b = backends_[name];
    if (!b) {
        b = make_backend(name, state_directory_);
    }
    return b;
}

// --- Start ---------------------------------------------------------------

int LatentManager::start_instance(sd_bus_message* m, const std::string& worker, const std::string& start,
                                  const std::string& master_address, const StartSecrets& secrets,
                                  uint64_t lease_usec, sd_bus_error* e) {
    const std::string& token = secrets.token;
    std::map<std::string, std::string> live;
    for (const auto& [s, inst] : instances_) {
        live[s] = inst->row.worker;
    }
    Verdict v = admit_start(config_, worker, start, token, lease_usec, live);
    if (!v) {
        return bus::set_error(e, v.error, v.message);
    }
    const config::Worker& cfg = config_.workers.at(worker);
    auto backend = backend_for(cfg.backend);
    if (!backend) {
        return sd_bus_error_setf(e, bus::error::BackendFailed, "backend %s is not available in this build",
                                 cfg.backend.c_str());
    }
    const uint64_t now = bus::now_realtime_usec();
    auto inst = std::make_unique<Instance>();
    inst->row = StartRow{start, config_.master.name, worker, cfg.backend, Phase::creating, "", now,
                         // Bounds the row until the creation answers and the real lease begins.
                         lease_deadline(lease_deadline(now, timing_.create), lease_usec), 0};
    inst->worker = std::make_shared<const config::Worker>(cfg);
    inst->backend = backend;
    inst->lease_usec = lease_usec;
    // The row comes first: whatever the backend makes from here on is found
    // again after a crash.
    if (!store_.insert(inst->row)) {
        log::error("cannot record start {} of worker {}: {}", start, worker, store_.error());
        return sd_bus_error_setf(e, bus::error::Internal, "cannot record the start: %s", store_.error().c_str());
    }
    inst->start_call = keep(m);

    StartSpec spec{inst->tag(), master_address, token, secrets.master_fingerprint, nullptr};
    auto wcfg = inst->worker;
    const uint64_t delay = timing_.test_create_delay;
    int r = calls_.run<std::string>(
        timing_.create,
        [backend, spec, wcfg, delay](const Cancelled& cancelled) mutable {
            spec.worker = wcfg.get();
            auto out = backend->create(spec, cancelled);
            // For tests: a creation slow to report back.
            for (auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(delay);
                 !cancelled && std::chrono::steady_clock::now() < until;) {
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
            }
            return out;
        },
        [this, start](Outcome<std::string> out) { on_created(start, std::move(out)); },
        [this, start] { on_create_expired(start); },
        [this, start, worker](Outcome<std::string> out) {
            log::write(log::Level::notice,
                       fmt::format("the creation of start {} of worker {} answered after its deadline ({}); "
                                   "reaping what it made",
                                   start, worker, out.ok() ? "instance " + out.value : out.error),
                       {{"BUILDYARD_WORKER", worker}, {"BUILDYARD_START", start}});
            request_reap();
        });
    if (r < 0) {
        store_.remove(start);
        log::error("cannot start the creation of start {} of worker {}: {}", start, worker, std::strerror(-r));
        inst->start_call.reset();
        return sd_bus_error_setf(e, bus::error::Internal, "cannot run the backend: %s", std::strerror(-r));
    }
    log::write(log::Level::info, fmt::format("starting worker {} (start {}, backend {})", worker, start, cfg.backend),
               {{"BUILDYARD_WORKER", worker}, {"BUILDYARD_START", start}});
    instances_[start] = std::move(inst);
    changed();
    return 1;
}

void LatentManager::on_created(const std::string& start, Outcome<std::string> result) {
    Instance* inst = find(start);
    if (!inst) {
        return;
    }
    const std::string worker = inst->row.worker;
    if (!result.ok()) {
        log::write(log::Level::err,
                   fmt::format("cannot start worker {} (start {}): {}", worker, start, result.error),
                   {{"BUILDYARD_WORKER", worker}, {"BUILDYARD_START", start}});
        if (inst->start_call) {
            reply_error(inst->start_call, bus::error::BackendFailed, result.error);
            inst->start_call.reset();
        }
        begin_destroy(*inst, StopCause::failed_create);
        return;
    }
    inst->row.instance = result.value;
    if (inst->stop_requested) {
        if (inst->start_call) {
            reply_error(inst->start_call, bus::error::NoSuchInstance,
                        fmt::format("start {} was stopped while it was being created", start));
            inst->start_call.reset();
        }
        begin_destroy(*inst, inst->cause);
        return;
    }
    const uint64_t now = bus::now_realtime_usec();
    const uint64_t expires = lease_deadline(now, inst->lease_usec);
    if (!store_.set_running(start, result.value, expires, now)) {
        log::error("cannot record instance {} of start {}: {}", result.value, start, store_.error());
    }
    inst->row.phase = Phase::running;
    inst->row.lease_expires = expires;
    inst->row.running_at = now;
    log::write(log::Level::info,
               fmt::format("worker {} started: instance {} (start {})", worker, result.value, start),
               {{"BUILDYARD_WORKER", worker}, {"BUILDYARD_START", start},
                {"MESSAGE_ID", std::string(log::id::instance_started)}});
    if (inst->start_call) {
        sd_bus_reply_method_return(inst->start_call.get(), "s", result.value.c_str());
        inst->start_call.reset();
    }
    changed();
}

void LatentManager::on_create_expired(const std::string& start) {
    Instance* inst = find(start);
    if (!inst) {
        return;
    }
    const std::string msg = fmt::format("the backend did not create start {} of worker {} within {} s; whatever it "
                                        "made is reaped",
                                        start, inst->row.worker, timing_.create / 1e6);
    if (inst->start_call) {
        reply_error(inst->start_call, bus::error::Timeout, msg);
        inst->start_call.reset();
    }
    // Not live any more: the reaper takes whatever the late call makes.
    finish(start, bus::error::Timeout, msg);
}

// --- Reload and change notification -----------------------------------------

Verdict LatentManager::reload() {
    auto loaded = load_config(config_path_);
    if (!loaded.config) {
        std::string msg = "configuration not reloaded; the old one stays in force:";
        for (const auto& e : loaded.errors) {
            msg += "\n" + e.str();
        }
        log::error("{}", msg);
        return {bus::error::ConfigInvalid, msg};
    }
    // Live instances keep the worker config they started with; calls under
    // way keep their deadlines, and each timer takes its new interval when
    // it next fires.
    config_ = std::move(*loaded.config);
    timing_ = Timing(config_.latentd, timing_.test_create_delay);
    log::info("configuration reloaded: master '{}', {} latent workers", config_.master.name,
              count_latent_workers(config_));
    sd_bus_emit_properties_changed(bus_, bus::latent_path, bus::latent_iface, "MasterName", nullptr);
    changed();
    return {};
}

void LatentManager::changed() {
    if (changed_source_) {
        sd_event_source_set_enabled(changed_source_.get(), SD_EVENT_ONESHOT);
    }
}

int LatentManager::on_changed_deferred(sd_event_source*, void* userdata) {
    auto* self = static_cast<LatentManager*>(userdata);
    sd_bus_emit_properties_changed(self->bus_, bus::latent_path, bus::latent_iface, "Instances", "ReapedLeaks",
                                   "LastReapedAt", nullptr);
    if (self->is_ready_) {
        sd_notifyf(0, "STATUS=%u instances, %llu leaks reaped", self->live_instances(),
                   static_cast<unsigned long long>(self->reaped_leaks_));
    }
    return 0;
}

}  // namespace by::latent
