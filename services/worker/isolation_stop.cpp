// The end of a build's transient unit (see isolation_systemd.hpp): the usage
// read before it goes, its stop job, a unit abandoned with its runner, the
// worker's own stop, and the units an earlier run of this worker left.
// isolation_systemd.cpp starts the units and follows their jobs.
#include <cstring>
#include <utility>
#include <vector>

#include "common/bus.hpp"
#include "common/log.hpp"
#include "worker/isolation_systemd.hpp"

namespace by::worker {

void SystemdUnits::release(uint64_t id, Released released) {
    auto it = units_.find(id);
    if (it == units_.end()) {
        released(BuildUsage{});
        return;
    }
    Unit& u = it->second;
    u.adopted = nullptr;
    u.exited = nullptr;
    u.pending.reset();
    u.released = std::move(released);
    // Usage first: the cgroup goes with the unit.
    MessagePtr m;
    sd_bus_message* raw = nullptr;
    const std::string path = bus::path_encode(unit_prefix, u.name);
    int r = sd_bus_message_new_method_call(bus_.get(), &raw, systemd_name, path.c_str(),
                                           "org.freedesktop.DBus.Properties", "GetAll");
    m.reset(raw);
    if (r >= 0)
        r = sd_bus_message_append(m.get(), "s",
                                  u.service ? "org.freedesktop.systemd1.Service" : "org.freedesktop.systemd1.Scope");
    if (r >= 0) r = call_async(id, m, on_usage_reply, u);
    if (r < 0) {
        stop_unit(id, u);
    }
}

int SystemdUnits::on_usage_reply(sd_bus_message* m, void* userdata, sd_bus_error*) {
    auto [self, id] = *static_cast<Cookie*>(userdata);
    auto it = self->units_.find(id);
    if (it == self->units_.end()) {
        return 0;
    }
    Unit& u = it->second;
    if (!sd_bus_message_is_method_error(m, nullptr) && sd_bus_message_enter_container(m, 'a', "{sv}") > 0) {
        std::string cgroup;
        while (sd_bus_message_enter_container(m, 'e', "sv") > 0) {
            const char* name = nullptr;
            sd_bus_message_read(m, "s", &name);
            const std::string key = name ? name : "";
            uint64_t* target = key == "CPUUsageNSec"   ? &u.usage.cpu_nsec
                               : key == "IOReadBytes"  ? &u.usage.io_read_bytes
                               : key == "IOWriteBytes" ? &u.usage.io_write_bytes
                                                       : nullptr;
            if (target) {
                sd_bus_message_read(m, "v", "t", target);
            } else if (key == "ControlGroup") {
                const char* cg = nullptr;
                sd_bus_message_read(m, "v", "s", &cg);
                cgroup = cg ? cg : "";
            } else {
                sd_bus_message_skip(m, "v");
            }
            sd_bus_message_exit_container(m);
        }
        if (!cgroup.empty()) {
            u.usage.memory_peak = read_memory_peak(cgroup);
        }
    }
    self->stop_unit(id, u);
    return 0;
}

int SystemdUnits::new_stop(const std::string& unit, MessagePtr& m) {
    sd_bus_message* raw = nullptr;
    int r = sd_bus_message_new_method_call(bus_.get(), &raw, systemd_name, systemd_path, manager_iface, "StopUnit");
    m.reset(raw);
    return r < 0 ? r : sd_bus_message_append(m.get(), "ss", unit.c_str(), "replace");
}

void SystemdUnits::stop_unit(uint64_t id, Unit& u) {
    MessagePtr m;
    int r = new_stop(u.name, m);
    if (r >= 0) r = call_async(id, m, on_stop_reply, u);
    if (r < 0) {
        log::warning("cannot stop {}: {}", u.name, std::strerror(-r));
        finish(id);
    }
}

int SystemdUnits::on_stop_reply(sd_bus_message* m, void* userdata, sd_bus_error*) {
    auto [self, id] = *static_cast<Cookie*>(userdata);
    const char* job = nullptr;
    if (sd_bus_message_is_method_error(m, nullptr) || sd_bus_message_read(m, "o", &job) < 0) {
        // NoSuchUnit: it is gone already (empty scopes stop by themselves).
        self->finish(id);
        return 0;
    }
    if (self->stopping_) {
        // Queued behind the worker's own stop (Before=): it completes only
        // once the worker has exited. systemd stops the scope right then.
        self->finish(id);
        return 0;
    }
    self->jobs_[job] = id;
    return 0;
}

void SystemdUnits::stopping() {
    stopping_ = true;
    std::vector<uint64_t> waiting;
    for (const auto& [job, id] : jobs_) {
        if (units_.contains(id) && units_.at(id).released) {
            waiting.push_back(id);
        }
    }
    for (uint64_t id : waiting) {
        std::erase_if(jobs_, [id](const auto& kv) { return kv.second == id; });
        finish(id);
    }
}

void SystemdUnits::finish(uint64_t id) {
    auto it = units_.find(id);
    if (it == units_.end()) {
        return;
    }
    auto released = std::move(it->second.released);
    BuildUsage usage = it->second.usage;
    units_.erase(it);  // reaps the holder
    if (released) {
        released(usage);
    }
}

void SystemdUnits::abandon(uint64_t id) {
    auto it = units_.find(id);
    if (it == units_.end()) {
        return;
    }
    // Fire and forget: nobody waits, but the unit must still go.
    MessagePtr m;
    if (new_stop(it->second.name, m) >= 0) {
        sd_bus_message_set_expect_reply(m.get(), 0);
        sd_bus_send(bus_.get(), m.get(), nullptr);
    }
    std::erase_if(jobs_, [id](const auto& kv) { return kv.second == id; });
    units_.erase(it);
}

int SystemdUnits::clean_leftovers(std::function<void()> done) {
    BusError error;
    sd_bus_message* raw = nullptr;
    const std::string scopes = "buildyard-build-" + worker_ + "-*.scope";
    const std::string services = "buildyard-build-" + worker_ + "-*.service";
    MessagePtr reply;
    MessagePtr m;
    int r = sd_bus_message_new_method_call(bus_.get(), &raw, systemd_name, systemd_path, manager_iface,
                                           "ListUnitsByPatterns");
    m.reset(raw);
    if (r >= 0) r = sd_bus_message_append(m.get(), "as", 0);
    if (r >= 0) r = sd_bus_message_append(m.get(), "as", 2, scopes.c_str(), services.c_str());
    raw = nullptr;
    if (r >= 0) r = sd_bus_call(bus_.get(), m.get(), 0, error.get(), &raw);
    reply.reset(raw);
    if (r < 0) {
        log::warning("cannot list the units left by an earlier run: {}", error.is_set() ? error.message() : std::strerror(-r));
        return 1;
    }
    std::vector<std::string> left;
    if (sd_bus_message_enter_container(reply.get(), 'a', "(ssssssouso)") > 0) {
        const char *name = nullptr, *active = nullptr;
        while (sd_bus_message_read(reply.get(), "(ssssssouso)", &name, nullptr, nullptr, &active, nullptr, nullptr,
                                   nullptr, nullptr, nullptr, nullptr) > 0) {
            if (build_unit_id(worker_, name) != 0 && std::strcmp(active, "inactive") != 0) {
                left.emplace_back(name);
            }
        }
    }
    for (const std::string& unit : left) {
        MessagePtr stop;
        raw = nullptr;
        BusError stop_error;
        r = sd_bus_call_method(bus_.get(), systemd_name, systemd_path, manager_iface, "StopUnit", stop_error.get(),
                               &raw, "ss", unit.c_str(), "replace");
        stop.reset(raw);
        const char* job = nullptr;
        if (r >= 0 && sd_bus_message_read(stop.get(), "o", &job) >= 0) {
            leftover_jobs_.insert(job);
            log::notice("stopping {}, left by an earlier run of this worker", unit);
        } else {
            log::warning("cannot stop {}: {}", unit, stop_error.is_set() ? stop_error.message() : std::strerror(-r));
        }
    }
    if (leftover_jobs_.empty()) {
        return 1;
    }
    leftovers_done_ = std::move(done);
    return 0;
}

}  // namespace by::worker
