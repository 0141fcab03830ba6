// A build's transient unit: the scope of a build without a sandbox, and
// how every unit starts and whose jobs are whose (see isolation_systemd.hpp);
// isolation_stop.cpp ends the units.
//
// A scope rather than a service: the worker stays the parent of each step's
// shell, so the output pipe, the exit status and the step boundaries work
// exactly as without systemd, and starting one costs a cgroup move instead
// of a fork by PID 1. A scope disappears once empty, so a holder process
// (sleep infinity, its own process group) keeps it for the whole build;
// each step's shell waits on a gate until it has been moved in, so nothing
// it forks stays behind in the worker's own cgroup.
#include <cerrno>
#include <cinttypes>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/bus.hpp"
#include "common/log.hpp"
#include "common/process.hpp"
#include "worker/isolation_systemd.hpp"

namespace by::worker {

int SystemdUnits::watch() {
    sd_bus_slot* s = nullptr;
    int r = sd_bus_match_signal(bus_.get(), &s, nullptr, systemd_path, manager_iface, "JobRemoved", on_job_removed,
                                this);
    if (r < 0) {
        return r;
    }
    job_match_.reset(s);
    return sd_bus_attach_event(bus_.get(), event_, SD_EVENT_PRIORITY_NORMAL);
}

int SystemdUnits::call_async(uint64_t id, MessagePtr& m, sd_bus_message_handler_t handler, Unit& u) {
    auto* cookie = new Cookie{this, id};
    sd_bus_slot* s = nullptr;
    int r = sd_bus_call_async(bus_.get(), &s, m.get(), handler, cookie, 0);
    if (r < 0) {
        delete cookie;
        return r;
    }
    sd_bus_slot_set_destroy_callback(s, [](void* p) { delete static_cast<Cookie*>(p); });
    u.call.reset(s);
    return 0;
}

int SystemdUnits::adopt(uint64_t id, pid_t pid, const config::BuildLimits& limits, unsigned kill_timeout,
                         Done done) {
    auto [it, fresh] = units_.try_emplace(id);
    Unit& u = it->second;
    u.adopted = std::move(done);
    if (fresh) {
        u.name = build_unit_name(worker_, id);
        int r = start_unit(id, u, pid, limits, kill_timeout);
        if (r < 0) {
            units_.erase(id);
        }
        return r;
    }
    MessagePtr m;
    sd_bus_message* raw = nullptr;
    int r = sd_bus_message_new_method_call(bus_.get(), &raw, systemd_name, systemd_path, manager_iface,
                                           "AttachProcessesToUnit");
    m.reset(raw);
    if (r >= 0) r = sd_bus_message_append(m.get(), "ssau", u.name.c_str(), "", 1, static_cast<uint32_t>(pid));
    if (r >= 0) r = call_async(id, m, on_attach_reply, u);
    return r < 0 ? r : 0;
}

int SystemdUnits::start_unit(uint64_t id, Unit& u, pid_t pid, const config::BuildLimits& limits,
                              unsigned kill_timeout) {
    // The holder: in its own process group, so that ending a step's group
    // leaves it; it keeps the scope (and with it the build's cgroup) alive
    // between steps.
    Fd devnull(open("/dev/null", O_WRONLY | O_CLOEXEC));
    if (!devnull) {
        return -errno;
    }
    std::string sleep = "/bin/sleep", infinity = "infinity";
    char* argv[] = {sleep.data(), infinity.data(), nullptr};
    process::SpawnOptions options;
    options.new_group = true;
    pid_t holder = -1;
    int r = process::spawn(argv, devnull.get(), options, holder);
    if (r < 0) {
        return r;
    }
    sd_event_source* src = nullptr;
    r = sd_event_add_child(event_, &src, holder, WEXITED, on_holder_exit, nullptr);
    if (r < 0) {
        ::kill(holder, SIGKILL);
        waitpid(holder, nullptr, 0);
        return r;
    }
    sd_event_source_set_child_process_own(src, 1);
    u.holder.reset(src);

    MessagePtr m;
    r = open_start(u, m);
    if (r >= 0)
        r = sd_bus_message_append(m.get(), "(sv)", "PIDs", "au", 2, static_cast<uint32_t>(holder),
                                  static_cast<uint32_t>(pid));
    return r < 0 ? r : send_start(id, u, m, limits, kill_timeout);
}

int SystemdUnits::open_start(const Unit& u, MessagePtr& m) {
    sd_bus_message* raw = nullptr;
    int r = sd_bus_message_new_method_call(bus_.get(), &raw, systemd_name, systemd_path, manager_iface,
                                           "StartTransientUnit");
    m.reset(raw);
    if (r >= 0) r = sd_bus_message_append(m.get(), "ss", u.name.c_str(), "fail");
    if (r >= 0) r = sd_bus_message_open_container(m.get(), 'a', "(sv)");
    return r;
}

int SystemdUnits::send_start(uint64_t id, Unit& u, MessagePtr& m, const config::BuildLimits& limits,
                             unsigned kill_timeout) {
    int r = append_common(m, id, limits, kill_timeout);
    if (r >= 0) r = sd_bus_message_close_container(m.get());
    if (r >= 0) r = sd_bus_message_append(m.get(), "a(sa(sv))", 0);
    if (r >= 0) r = call_async(id, m, on_start_reply, u);
    return r < 0 ? r : 0;
}

int SystemdUnits::append_common(MessagePtr& m, uint64_t id, const config::BuildLimits& limits,
                                unsigned kill_timeout) {
    const std::string description = "Buildyard build " + std::to_string(id) + " on " + worker_;
    int r = sd_bus_message_append(m.get(), "(sv)", "Description", "s", description.c_str());
    if (r >= 0) r = sd_bus_message_append(m.get(), "(sv)", "KillMode", "s", "control-group");
    if (r >= 0)
        r = sd_bus_message_append(m.get(), "(sv)", "TimeoutStopUSec", "t",
                                  static_cast<uint64_t>(kill_timeout) * 1000000u);
    if (r >= 0) r = sd_bus_message_append(m.get(), "(sv)", "CollectMode", "s", "inactive-or-failed");
    for (const char* accounting : {"CPUAccounting", "MemoryAccounting", "IOAccounting", "TasksAccounting"}) {
        if (r >= 0) r = sd_bus_message_append(m.get(), "(sv)", accounting, "b", 1);
    }
    if (r >= 0 && !own_unit_.empty()) {
        // Stops with the worker's unit, and after it: `systemctl stop` of the
        // worker must reach the worker first, so that it detaches and its
        // builds end retry. Ordered the other way, systemd killed the steps
        // first and the worker reported them failed before its own SIGTERM.
        r = sd_bus_message_append(m.get(), "(sv)", "BindsTo", "as", 1, own_unit_.c_str());
        if (r >= 0) r = sd_bus_message_append(m.get(), "(sv)", "Before", "as", 1, own_unit_.c_str());
    }
    if (r >= 0 && limits.memory_max) r = sd_bus_message_append(m.get(), "(sv)", "MemoryMax", "t", limits.memory_max);
    if (r >= 0 && limits.tasks_max) r = sd_bus_message_append(m.get(), "(sv)", "TasksMax", "t", limits.tasks_max);
    if (r >= 0 && limits.cpu_quota)
        r = sd_bus_message_append(m.get(), "(sv)", "CPUQuotaPerSecUSec", "t", limits.cpu_quota * 10000u);
    return r;
}

void SystemdUnits::adopted(uint64_t id, int r) {
    auto it = units_.find(id);
    if (it != units_.end() && it->second.service) {
        // A service is ready when its host says hello; it only fails here.
        if (r < 0) step_done(id, r);
        return;
    }
    if (it == units_.end() || !it->second.adopted) {
        return;
    }
    it->second.started = it->second.started || r >= 0;
    auto done = std::move(it->second.adopted);
    it->second.adopted = nullptr;
    done(r);
}

int SystemdUnits::on_start_reply(sd_bus_message* m, void* userdata, sd_bus_error*) {
    auto [self, id] = *static_cast<Cookie*>(userdata);
    const sd_bus_error* e = sd_bus_message_get_error(m);
    if (e) {
        log::write(log::Level::err, fmt::format("cannot start the unit of build {}: {}", id, e->message),
                   {{"BUILDYARD_BUILD", std::to_string(id)}});
        self->adopted(id, -sd_bus_message_get_errno(m));
        return 0;
    }
    const char* job = nullptr;
    if (sd_bus_message_read(m, "o", &job) < 0) {
        self->adopted(id, -EBADMSG);
        return 0;
    }
    // The processes move when the job runs: JobRemoved says when.
    self->jobs_[job] = id;
    return 0;
}

int SystemdUnits::on_attach_reply(sd_bus_message* m, void* userdata, sd_bus_error*) {
    auto [self, id] = *static_cast<Cookie*>(userdata);
    const sd_bus_error* e = sd_bus_message_get_error(m);
    if (e) {
        log::write(log::Level::err, fmt::format("cannot move a step of build {} into its unit: {}", id, e->message),
                   {{"BUILDYARD_BUILD", std::to_string(id)}});
    }
    self->adopted(id, e ? -sd_bus_message_get_errno(m) : 0);
    return 0;
}

int SystemdUnits::on_job_removed(sd_bus_message* m, void* userdata, sd_bus_error*) {
    auto* self = static_cast<SystemdUnits*>(userdata);
    uint32_t job_id = 0;
    const char *job = nullptr, *unit = nullptr, *result = nullptr;
    if (sd_bus_message_read(m, "uoss", &job_id, &job, &unit, &result) < 0) {
        return 0;
    }
    if (self->leftover_jobs_.erase(job) && self->leftover_jobs_.empty() && self->leftovers_done_) {
        auto done = std::move(self->leftovers_done_);
        self->leftovers_done_ = nullptr;
        done();
        return 0;
    }
    auto it = self->jobs_.find(job);
    if (it == self->jobs_.end()) {
        return 0;
    }
    const uint64_t id = it->second;
    self->jobs_.erase(it);
    auto u = self->units_.find(id);
    if (u == self->units_.end()) {
        return 0;
    }
    if (u->second.released) {
        self->finish(id);  // the stop job: every process is gone
    } else if (std::strcmp(result, "done") != 0) {
        log::write(log::Level::err, fmt::format("the unit {} of build {} did not start: {}", unit, id, result),
                   {{"BUILDYARD_BUILD", std::to_string(id)}});
        self->adopted(id, -EIO);
    } else {
        self->adopted(id, 0);
    }
    return 0;
}

}  // namespace by::worker
