// Leases and health checks: the periodic timers that stop what nobody
// renews and notice what died on its own.
#include <algorithm>
#include <cstring>

#include "common/bus.hpp"
#include "common/log.hpp"
#include "latent/latent_manager.hpp"

namespace by::latent {

void LatentManager::check_leases() {
    std::vector<StartRow> rows;
    for (const auto& [start, inst] : instances_) {
        if (!inst->dead) {
            rows.push_back(inst->row);
        }
    }
    for (const auto& start : expired_leases(rows, bus::now_realtime_usec())) {
        Instance* inst = find(start);
        if (!inst) {
            continue;
        }
        log::write(log::Level::notice,
                   fmt::format("the lease of worker {} (start {}) expired; stopping it", inst->row.worker, start),
                   {{"BUILDYARD_WORKER", inst->row.worker}, {"BUILDYARD_START", start}});
        begin_destroy(*inst, StopCause::lease, "lease expired");
    }
}

void LatentManager::check_health() {
    uint64_t now = 0;
    sd_event_now(event_, CLOCK_MONOTONIC, &now);
    const uint64_t wall = bus::now_realtime_usec();
    for (auto& [start_id, inst] : instances_) {
        if (inst->dead || inst->row.phase != Phase::running || inst->check_in_flight) {
            continue;
        }
        const bool young = inst->row.running_at != 0 && wall - inst->row.running_at < timing_.young_age;
        if (!young && inst->last_check != 0 && now - inst->last_check < timing_.health_interval) {
            continue;
        }
        inst->last_check = now;
        inst->check_in_flight = true;
        const std::string start = start_id;
        auto backend = inst->backend;
        auto wcfg = inst->worker;
        auto tag = inst->tag();
        int r = calls_.run<HealthReport>(
            timing_.call, [backend, wcfg, tag](const Cancelled& c) { return backend->check(tag, wcfg.get(), c); },
            [this, start](Outcome<HealthReport> out) {
                Instance* i = find(start);
                if (!i) return;
                i->check_in_flight = false;
                if (i->row.phase != Phase::running) return;
                if (!out.ok()) {
                    log::write(log::Level::warning,
                               fmt::format("cannot check worker {} (start {}): {}", i->row.worker, start, out.error),
                               {{"BUILDYARD_WORKER", i->row.worker}, {"BUILDYARD_START", start}});
                } else if (out.value.health == Health::gone) {
                    log::write(log::Level::warning,
                               fmt::format("worker {} (start {}) is gone: {}", i->row.worker, start, out.value.reason),
                               {{"BUILDYARD_WORKER", i->row.worker}, {"BUILDYARD_START", start}});
                    begin_destroy(*i, StopCause::health, out.value.reason.empty() ? "gone" : out.value.reason,
                                  out.value.log_tail);
                }
            },
            [this, start] {
                if (Instance* i = find(start)) {
                    log::warning("the health check of worker {} (start {}) did not answer in time", i->row.worker,
                                 start);
                }
            },
            [this, start](Outcome<HealthReport>) {
                if (Instance* i = find(start)) i->check_in_flight = false;
            });
        if (r < 0) {
            inst->check_in_flight = false;
            log::error("cannot run a health check: {}", std::strerror(-r));
        }
    }
}

int LatentManager::on_lease_timer(sd_event_source* s, uint64_t, void* userdata) {
    auto* self = static_cast<LatentManager*>(userdata);
    self->check_leases();
    rearm(s, self->timing_.lease_check_interval);
    return 0;
}

int LatentManager::on_health_timer(sd_event_source* s, uint64_t, void* userdata) {
    auto* self = static_cast<LatentManager*>(userdata);
    self->check_health();
    rearm(s, std::min(self->timing_.health_interval, self->timing_.young_interval));
    return 0;
}

int LatentManager::on_reap_timer(sd_event_source* s, uint64_t, void* userdata) {
    auto* self = static_cast<LatentManager*>(userdata);
    self->request_reap();
    rearm(s, self->timing_.reap_interval);
    return 0;
}

}  // namespace by::latent
