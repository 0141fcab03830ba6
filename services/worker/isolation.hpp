// Where a build's processes live, so that every one of them can be found and
// killed, including daemons that setsid() away from the step's process group:
//  - SystemdScopes (isolation_systemd.cpp): a transient scope per build,
//    buildyard-build-WORKER-ID.scope, started over systemd's private D-Bus
//    socket, bound to the worker's own unit, KillMode=control-group, with
//    the builder's limits; with a sandbox, a transient service instead,
//    buildyard-build-WORKER-ID.service, whose step host (step_host.hpp)
//    runs the steps inside the sandbox;
//  - Subreaper (isolation_reaper.cpp): without a systemd manager, the worker
//    is a child subreaper, finds a build's processes by the BUILDYARD_WORKER
//    and BUILDYARD_BUILD_ID in their environment, and keeps a record of the
//    running builds in its base directory for the next run.
// Callbacks run from the event loop; after abandon(id) none runs for `id`.
#pragma once

#include <cerrno>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <sys/types.h>
#include <systemd/sd-event.h>

#include "common/build_limits.hpp"
#include "common/raii.hpp"

namespace by::worker {

class Isolation {
public:
    using Done = std::function<void(int r)>;  // 0 or a negative errno
    using Released = std::function<void(const BuildUsage&)>;

    virtual ~Isolation() = default;

    // "systemd" or "subreaper" (the worker's info at Attach, and its log).
    virtual const char* kind() const = 0;
    // Whether a step's shell must wait (process::SpawnOptions gate) until
    // adopt() is done, so that nothing it forks escapes.
    virtual bool gates_steps() const = 0;

    // Kills what an earlier run of this worker left behind and calls `done`
    // once all of it is gone. Returns 1 (and never calls `done`) when there
    // was nothing to do.
    virtual int clean_leftovers(std::function<void()> done) = 0;

    // Puts `pid` (a step's shell, the leader of its process group) into
    // build `id`'s cgroup, creating it with `limits` on the build's first
    // step; when it is stopped, its processes get SIGTERM, then SIGKILL
    // after `kill_timeout` seconds. Returns 1 when done at once (no
    // callback), 0 when `done` will be called, or a negative errno.
    virtual int adopt(uint64_t id, pid_t pid, const config::BuildLimits& limits, unsigned kill_timeout,
                      Done done) = 0;

    // Whether steps under `limits` run in the build's unit, started there by
    // its step host (a sandbox), rather than as the worker's children. A
    // runner must not run a sandboxed build where this is false.
    virtual bool hosts_steps(const config::BuildLimits& limits) const {
        (void)limits;
        return false;
    }

    struct HostedStep {
        std::string cwd;
        std::string command;
        std::vector<std::string> environment;  // KEY=VALUE, all of it
        Fd output;                             // the write end of the step's output pipe
    };
    using Exited = std::function<void(int status)>;
    // Runs `step` in build `id`'s unit, starting the unit (with `limits`) on
    // the build's first step. `exited` gets the step's status (as
    // BuildRunner's: 128+N when killed by signal N) once it has exited and
    // its process group is gone, or a negative errno when the step could not
    // be run. Returns 0 or a negative errno (then `exited` is never called).
    virtual int run_hosted(uint64_t id, HostedStep step, const config::BuildLimits& limits, unsigned kill_timeout,
                           Exited exited) {
        (void)id, (void)step, (void)limits, (void)kill_timeout, (void)exited;
        return -EOPNOTSUPP;
    }
    // Sends `sig` to the hosted step's process group, if it still runs.
    virtual void signal_hosted(uint64_t id, int sig) { (void)id, (void)sig; }

    // The build ended: kills whatever is left of it and calls `released`
    // with its usage once every process is gone.
    virtual void release(uint64_t id, Released released) = 0;

    // The build's runner is going away without waiting: kill what is left,
    // no callbacks.
    virtual void abandon(uint64_t id) = 0;

    // The worker is exiting: a release() no longer waits for what only its
    // exit lets happen (a build scope is stopped after the worker's unit).
    virtual void stopping() {}
};

// A transient scope per build if `units` and a systemd manager is reachable
// (the system manager as root, else the user's), else the subreaper. Logs
// its choice once. `state_directory` holds the subreaper's record.
std::unique_ptr<Isolation> make_isolation(sd_event* event, const std::string& worker,
                                          const std::string& state_directory, bool units);

std::unique_ptr<Isolation> make_subreaper(sd_event* event, const std::string& worker,
                                          const std::string& state_directory);

// buildyard-build-WORKER-ID.scope, or .service for a sandboxed build
std::string build_unit_name(const std::string& worker, uint64_t id, bool service = false);
// The id of `unit` if it is one of `worker`'s build units; 0 if not.
uint64_t build_unit_id(const std::string& worker, const std::string& unit);

}  // namespace by::worker
