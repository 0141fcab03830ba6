// The systemd side of Isolation (isolation.hpp): one transient unit per
// build, over systemd's private socket (the manager itself: no broker in
// between, and its signals come without Subscribe()).
//  - isolation_systemd.cpp: the scope of a build without a sandbox, and
//    how every unit starts (its properties, its start and attach jobs);
//  - isolation_stop.cpp: how every unit ends (usage, stop, abandon,
//    the worker's own stop, leftovers of an earlier run);
//  - isolation_hosted.cpp: the service of a sandboxed build, whose main
//    process, the step host (step_host.hpp), runs the steps;
//  - isolation_setup.cpp: finding the manager, unit names, make_isolation.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "common/raii.hpp"
#include "worker/isolation.hpp"
#include "worker/step_host.hpp"

namespace by::worker {

inline constexpr const char* systemd_name = "org.freedesktop.systemd1";
inline constexpr const char* systemd_path = "/org/freedesktop/systemd1";
inline constexpr const char* manager_iface = "org.freedesktop.systemd1.Manager";
inline constexpr const char* unit_prefix = "/org/freedesktop/systemd1/unit";

// The peak of a cgroup's memory: memory.peak (cgroup v2, Linux 5.19), else
// the v1 controller's memory.max_usage_in_bytes (hybrid hierarchies).
uint64_t read_memory_peak(const std::string& cgroup);

// cgroup v2 alone ("unified"), or v1 controllers beside it ("hybrid") or
// without it ("legacy"): under v1, limits go to v1 controllers, which a
// container may have read-only, and IO is not counted.
std::string cgroup_hierarchy();

class SystemdUnits : public Isolation {
public:
    SystemdUnits(sd_event* event, std::string worker, BusPtr bus, std::string own_unit, std::string exe)
        : event_(event),
          worker_(std::move(worker)),
          bus_(std::move(bus)),
          own_unit_(std::move(own_unit)),
          exe_(std::move(exe)) {}

    // Watches systemd's jobs and attaches to the event loop.
    int watch();

    const char* kind() const override { return "systemd"; }
    bool gates_steps() const override { return true; }

    int clean_leftovers(std::function<void()> done) override;
    int adopt(uint64_t id, pid_t pid, const config::BuildLimits& limits, unsigned kill_timeout, Done done) override;
    void release(uint64_t id, Released released) override;
    void abandon(uint64_t id) override;
    void stopping() override;

    // Sandboxed builds (isolation_hosted.cpp).
    bool hosts_steps(const config::BuildLimits& limits) const override {
        return limits.sandbox != config::Sandbox::none;
    }
    int run_hosted(uint64_t id, HostedStep step, const config::BuildLimits& limits, unsigned kill_timeout,
                   Exited exited) override;
    void signal_hosted(uint64_t id, int sig) override;

private:
    struct Unit {
        std::string name;
        bool started = false;
        SourcePtr holder;  // owns the holder process: freeing it kills and reaps it
        SlotPtr call;
        Done adopted;
        Released released;
        BuildUsage usage;
        // A sandboxed build's service and its step host:
        bool service = false;
        config::Sandbox sandbox = config::Sandbox::none;
        std::string cwd;          // the build directory
        Fd host;                  // our end of the host's socket (its stdin)
        SourcePtr host_io;
        bool host_ready = false;  // its hello came
        std::optional<HostedStep> pending;  // a step waiting for that hello
        Exited exited;            // the pending or running step's
        std::string inbox;        // a header read in part
        int pending_signal = 0;   // for the pending step, once it is sent
    };

    static int on_job_removed(sd_bus_message* m, void* userdata, sd_bus_error*);
    static int on_start_reply(sd_bus_message* m, void* userdata, sd_bus_error*);
    static int on_attach_reply(sd_bus_message* m, void* userdata, sd_bus_error*);
    static int on_usage_reply(sd_bus_message* m, void* userdata, sd_bus_error*);
    static int on_stop_reply(sd_bus_message* m, void* userdata, sd_bus_error*);
    static int on_holder_exit(sd_event_source*, const siginfo_t*, void*) { return 0; }

    // The reply handlers get a heap cookie naming the build, so that a reply
    // for a build abandoned meanwhile finds nothing.
    struct Cookie {
        SystemdUnits* self;
        uint64_t id;
    };
    int call_async(uint64_t id, MessagePtr& m, sd_bus_message_handler_t handler, Unit& u);
    int start_unit(uint64_t id, Unit& u, pid_t pid, const config::BuildLimits& limits, unsigned kill_timeout);
    int new_stop(const std::string& unit, MessagePtr& m);
    void stop_unit(uint64_t id, Unit& u);
    void finish(uint64_t id);
    void adopted(uint64_t id, int r);
    // Hosted steps (isolation_hosted.cpp).
    int start_service(uint64_t id, Unit& u, const config::BuildLimits& limits, unsigned kill_timeout);
    static int on_host_io(sd_event_source*, int fd, uint32_t revents, void* userdata);
    void host_message(uint64_t id, const step_host::Header& h);
    void host_ready(uint64_t id, Unit& u, uid_t uid, gid_t gid);
    int send_step(uint64_t id, Unit& u);
    void step_done(uint64_t id, int status);  // calls the step's `exited` once
    // The host is gone or broke the protocol: drop it, kill the unit, and
    // end the step with `error`.
    void host_lost(uint64_t id, int error);
    void kill_unit(const Unit& u);  // SIGKILL to all of it, through systemd
    // StartTransientUnit for `u`, its property array open.
    int open_start(const Unit& u, MessagePtr& m);
    // Adds what every unit has (append_common), closes `m` and sends it.
    int send_start(uint64_t id, Unit& u, MessagePtr& m, const config::BuildLimits& limits, unsigned kill_timeout);
    // A scope's or a service's properties (the same on both interfaces).
    int append_common(MessagePtr& m, uint64_t id, const config::BuildLimits& limits, unsigned kill_timeout);

    sd_event* event_;
    std::string worker_;
    BusPtr bus_;
    std::string own_unit_;
    std::string exe_;  // this program, the step host of sandboxed builds
    SlotPtr job_match_;
    std::map<uint64_t, Unit> units_;
    std::map<std::string, uint64_t> jobs_;  // job path -> build id (0: a leftover's stop)
    std::set<std::string> leftover_jobs_;
    std::function<void()> leftovers_done_;
    bool stopping_ = false;  // the worker is exiting: wait for no stop job
};

}  // namespace by::worker
