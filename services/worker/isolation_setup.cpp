// Finding the systemd manager for the builds' units, their names, and the
// choice between units and the subreaper (see isolation.hpp).
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <system_error>

#include <linux/magic.h>
#include <sys/statfs.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-login.h>
#include <unistd.h>

#include "common/log.hpp"
#include "worker/isolation_systemd.hpp"

namespace by::worker {

// The peak of a cgroup's memory: memory.peak (cgroup v2, Linux 5.19), else
// the v1 controller's memory.max_usage_in_bytes (hybrid hierarchies).
uint64_t read_memory_peak(const std::string& cgroup) {
    for (const std::string& file : {"/sys/fs/cgroup" + cgroup + "/memory.peak",
                                    "/sys/fs/cgroup/unified" + cgroup + "/memory.peak",
                                    "/sys/fs/cgroup/memory" + cgroup + "/memory.max_usage_in_bytes"}) {
        std::ifstream in(file);
        uint64_t v = 0;
        if (in >> v) {
            return v;
        }
    }
    return BuildUsage::unknown;
}

// cgroup v2 alone ("unified"), or v1 controllers beside it ("hybrid") or
// without it ("legacy"): under v1, limits go to v1 controllers, which a
// container may have read-only, and IO is not counted.
std::string cgroup_hierarchy() {
    struct statfs fs {};
    if (statfs("/sys/fs/cgroup", &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC) {
        return "unified";
    }
    if (statfs("/sys/fs/cgroup/unified", &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC) {
        return "hybrid";
    }
    return "legacy";
}

namespace {

// The manager to ask: the system's as root, else the user's own.
BusPtr connect_manager(std::string& own_unit, std::string& why_not) {
    if (sd_booted() <= 0) {
        why_not = "systemd is not the init system";
        return nullptr;
    }
    std::string address;
    char* unit = nullptr;
    if (geteuid() == 0) {
        address = "unix:path=/run/systemd/private";
        if (sd_pid_get_unit(0, &unit) >= 0 && unit) own_unit = unit;
    } else {
        const char* runtime = std::getenv("XDG_RUNTIME_DIR");
        if (!runtime) {
            why_not = "not root, and no XDG_RUNTIME_DIR for a user manager";
            return nullptr;
        }
        address = std::string("unix:path=") + runtime + "/systemd/private";
        if (sd_pid_get_user_unit(0, &unit) >= 0 && unit) own_unit = unit;
    }
    std::free(unit);
    sd_bus* raw = nullptr;
    int r = sd_bus_new(&raw);
    BusPtr bus(raw);
    if (r >= 0) r = sd_bus_set_address(bus.get(), address.c_str());
    if (r >= 0) r = sd_bus_start(bus.get());
    if (r < 0) {
        why_not = "cannot connect to " + address + ": " + std::strerror(-r);
        return nullptr;
    }
    return bus;
}

}  // namespace

std::string build_unit_name(const std::string& worker, uint64_t id, bool service) {
    return "buildyard-build-" + worker + "-" + std::to_string(id) + (service ? ".service" : ".scope");
}

uint64_t build_unit_id(const std::string& worker, const std::string& unit) {
    const std::string prefix = "buildyard-build-" + worker + "-";
    const std::string suffix = unit.ends_with(".service") ? ".service" : ".scope";
    if (unit.size() <= prefix.size() + suffix.size() || unit.compare(0, prefix.size(), prefix) != 0 ||
        unit.compare(unit.size() - suffix.size(), suffix.size(), suffix) != 0) {
        return 0;
    }
    const std::string digits = unit.substr(prefix.size(), unit.size() - prefix.size() - suffix.size());
    if (digits.empty() || digits.size() > 19 || digits.find_first_not_of("0123456789") != std::string::npos) {
        return 0;
    }
    return std::stoull(digits);
}

std::unique_ptr<Isolation> make_isolation(sd_event* event, const std::string& worker,
                                          const std::string& state_directory, bool units) {
    std::string own_unit, why_not;
    BusPtr bus;
    // isolation = subreaper: no units even under systemd (to compare the
    // two, as bench/dispatch does, or where units are not wanted).
    if (!units) {
        why_not = "isolation = subreaper";
    } else {
        bus = connect_manager(own_unit, why_not);
    }
    if (bus) {
        // The step host of sandboxed builds is this program (--step-host).
        std::error_code ec;
        std::string exe = std::filesystem::read_symlink("/proc/self/exe", ec).string();
        if (const std::string deleted = " (deleted)"; exe.ends_with(deleted)) {
            exe.resize(exe.size() - deleted.size());  // upgraded in place: the new one is there
        }
        auto scopes = std::make_unique<SystemdUnits>(event, worker, std::move(bus), own_unit, exe);
        if (int r = scopes->watch(); r < 0) {
            why_not = std::string("cannot watch systemd's jobs: ") + std::strerror(-r);
        } else {
            log::info("each build runs in its own transient scope, buildyard-build-{0}-ID.scope (a sandboxed build "
                      "in a transient service, buildyard-build-{0}-ID.service){1}",
                      worker,
                      own_unit.empty() ? " (this process is in no unit: the units are not bound to one)"
                                       : ", bound to " + own_unit);
            if (const std::string h = cgroup_hierarchy(); h != "unified") {
                log::notice("cgroup hierarchy {}: memory_max, cpu_quota and tasks_max go to cgroup v1 controllers, "
                            "which may not enforce them (read-only in a container), and IO is not counted",
                            h);
            }
            return scopes;
        }
    }
    log::notice("{} ({}): each step runs in its own process group, and the worker, a child subreaper, finds a "
                "build's processes by their environment",
                units ? "no systemd manager for the builds" : "no transient units for the builds", why_not);
    return make_subreaper(event, worker, state_directory);
}

}  // namespace by::worker
