// The worker daemon's state: its config, its running builds and its link to
// the master (the system bus, or TCP for a remote master). agent_builds.cpp
// starts, cancels and ends its builds; agent_bus.cpp is its org.buildyard.Agent1 face on the bus.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "common/raii.hpp"
#include "common/worker_config.hpp"
#include "worker/build_runner.hpp"
#include "worker/isolation.hpp"
#include "worker/link.hpp"

namespace by::worker {

struct Options {
    std::string config_file;
    bool config_required = false;          // --config was given
    std::optional<std::string> basedir;    // --basedir, wins over the file
    bool latent = false;                   // --latent: no file; identity from credentials/cmdline/env
};

class Agent {
public:
    Agent(sd_event* event, config::WorkerSelf self, Options options);
    Agent(const Agent&) = delete;
    Agent& operator=(const Agent&) = delete;
    // Running builds die with the agent (their process groups are killed).
    ~Agent();

    // Kills what an earlier run of this worker left behind, then connects
    // to the master, exports Agent1 and starts attaching. Negative errno if
    // the bus cannot be used.
    int start();

    // SIGHUP: read the config file again; the next builds use it.
    void reload();
    // SIGTERM/SIGINT: detach, end the running builds, exit 0. A second
    // signal while builds are still ending kills them at once.
    void terminate(const std::string& signal_name);
    // SIGUSR1: take no new builds, finish the running ones, detach and
    // exit 0. The master is asked (WorkerLink1.ShutdownGracefully) and
    // sends Agent1.Stop once they have ended.
    void shut_down_gracefully(const std::string& signal_name);

    // org.buildyard.Agent1, after agent_bus.cpp has checked the caller.
    int start_build(uint64_t id, const std::string& builder, std::vector<std::string> steps,
                    std::map<std::string, std::string> environment, const std::map<std::string, std::string>& limits,
                    sd_bus_error* error);
    int cancel_build(uint64_t id, sd_bus_error* error);
    void stop(const std::string& reason);
    // Agent1.Remove: as stop(), but the worker is gone from the master's
    // configuration, which systemd should see: exit status exit_removed
    // and a STATUS= line that says so.
    void remove(const std::string& reason);
    static constexpr int exit_removed = 3;
    int set_keepalive(uint64_t interval, sd_bus_error* error);

    const Link& link() const { return *link_; }

private:
    static int on_throttle(sd_event_source* s, uint64_t usec, void* userdata);

    int start_link();
    void link_state_changed();
    void master_lost();
    void build_done(uint64_t id, const std::string& result, int exit_status);
    void begin_stopping();
    void ask_master_to_drain();
    void kill_all_builds();
    void exit(int status);
    void throttle_output();
    void set_output_paused(bool paused);
    void update_status();

    sd_event* event_;
    config::WorkerSelf self_;
    Options options_;
    std::unique_ptr<Isolation> isolation_;  // before the builds, which use it
    std::unique_ptr<Link> link_;  // MasterLink (master = bus) or RemoteLink
    SlotPtr agent_object_;
    std::map<uint64_t, std::unique_ptr<BuildRunner>> builds_;
    SourcePtr throttle_timer_;
    bool output_paused_ = false;
    bool draining_ = false;  // a graceful shutdown was asked for
    bool ready_sent_ = false;
    bool stopping_ = false;
    bool exited_ = false;
    bool removed_ = false;      // Agent1.Remove: exit with exit_removed
};

// Exports /org/buildyard/Agent1 (org.buildyard.Agent1) for `agent` on `bus`.
int export_agent(sd_bus* bus, Agent& agent, SlotPtr& slot);

}  // namespace by::worker
