// Runs one build: its steps in order, each as `/bin/sh -c STEP` in
// BASEDIR/BUILDER, on an sd-event loop. Knows nothing about the bus; the
// owner turns the callbacks into WorkerLink1 calls.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <signal.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "common/raii.hpp"
#include "worker/isolation.hpp"

namespace by::worker {

// A builder name becomes a directory under the base directory, so it must be
// exactly one path component.
bool safe_path_component(std::string_view name);

class BuildRunner {
public:
    // Output is read, and handed to the `output` callback, in chunks of at
    // most this many bytes.
    static constexpr size_t max_chunk = 256 * 1024;
    // Returns the pages of the read buffer all runners share; for an idle
    // worker (the next read faults them in again).
    static void release_buffer();

    struct Spec {
        std::string basedir;
        std::string builder;
        std::vector<std::string> steps;
        std::map<std::string, std::string> environment;
        unsigned kill_timeout = 10;  // seconds from SIGTERM to SIGKILL on cancel
        uint64_t id = 0;             // the build's id, for `isolation`
        config::BuildLimits limits;  // for its unit; timeout is the runner's own
        // Where the steps' processes are put and found (isolation.hpp);
        // nullptr: process groups only. Must outlive the runner.
        Isolation* isolation = nullptr;
    };

    // Every callback runs from the event loop, never from inside start(),
    // cancel() or the destructor. `done` is the last thing the runner does:
    // the owner may destroy the runner from inside it (but not from inside
    // `output` or `step_started`).
    struct Callbacks {
        std::function<void(std::string_view data)> output;
        std::function<void(unsigned step)> step_started;  // 1-based
        // result: success, failure, cancelled or exception. exit_status is the
        // last step's (128+N when killed by signal N), -1 when no step ran to
        // an end.
        std::function<void(const std::string& result, int exit_status)> done;
    };

    // SIGCHLD must be blocked in every thread (sd_event_add_child needs it).
    BuildRunner(sd_event* event, Spec spec, Callbacks callbacks);
    BuildRunner(const BuildRunner&) = delete;
    BuildRunner& operator=(const BuildRunner&) = delete;
    // Kills the running step's whole process group and reaps its shell;
    // the isolation kills whatever else is left of the build.
    ~BuildRunner();

    // Schedules the first step on the loop. Negative errno if that fails
    // (then no callback will ever run).
    int start();

    // SIGTERM to the running step's process group, SIGKILL after
    // kill_timeout; the build ends "cancelled". No-op once finished.
    // limits.timeout does the same when it expires, and the build ends
    // "failure" with the reason in its output.
    void cancel();

    // While paused, output stays in the pipe (and the step blocks once the
    // pipe is full). For back-pressure when the consumer falls behind.
    void set_output_paused(bool paused);

    bool finished() const { return state_ == State::finished; }
    // What the build used, known once it has finished (and if the isolation
    // can tell).
    const BuildUsage& usage() const { return usage_; }
    bool cancelled() const { return cancelled_; }
    // The running step's shell, which leads its process group; -1 if none.
    pid_t step_pid() const { return pid_; }

private:
    // releasing: the result is known; the isolation is killing what is left.
    enum class State { created, scheduled, running, releasing, finished };

    static int on_begin(sd_event_source* s, void* userdata);
    static int on_output(sd_event_source* s, int fd, uint32_t revents, void* userdata);
    static int on_child(sd_event_source* s, const siginfo_t* si, void* userdata);
    static int on_kill_timeout(sd_event_source* s, uint64_t usec, void* userdata);
    static int on_build_timeout(sd_event_source* s, uint64_t usec, void* userdata);

    // Each returns true when the build ended (done was called; `this` may be gone).
    bool run_step();
    bool step_exited(int status);
    void finish(const std::string& result, int exit_status);
    void released(const std::string& result, int exit_status, const BuildUsage& usage);
    void open_gate(int r);
    // build_step.cpp: a step's processes.
    // Each returns false when the build ended (exception).
    bool watch_output(unsigned number);
    // sandbox = none: the worker forks the step's shell itself, in a process
    // group of its own. Returns true when the build ended.
    bool run_local_step(unsigned number, const std::string& command, const std::string& cwd);
    // sandbox != none: the step runs in the build's unit, started by its
    // host (Isolation::run_hosted). Returns true when the build ended.
    bool run_hosted_step(unsigned number, const std::string& command, const std::string& cwd);
    void hosted_exited(int status);
    void exception(const std::string& line);
    enum class Read { data, again, end };  // end: EOF or error, nothing more will come
    Read read_chunk();
    void drain();
    void kill_group(int sig);
    // SIGTERM to the running step's group, SIGKILL after kill_timeout.
    void stop_running_step();
    // How a build stopped by cancel() or its timeout ends.
    const char* stopped_result() const { return timed_out_ ? "failure" : "cancelled"; }
    void stop_step();

    sd_event* event_;
    Spec spec_;
    Callbacks callbacks_;
    State state_ = State::created;
    bool cancelled_ = false;
    bool output_paused_ = false;
    bool output_eof_ = false;
    size_t next_step_ = 0;  // index of the step to run next
    pid_t pid_ = -1;
    bool isolated_ = false;  // the isolation has adopted a step of this build
    bool hosted_ = false;    // the running step is the isolation's (sandbox)
    uint64_t hosted_serial_ = 0;
    bool failed_to_isolate_ = false;
    BuildUsage usage_;
    Fd output_;
    Fd gate_;
    SourcePtr begin_source_;
    SourcePtr output_source_;
    SourcePtr child_source_;
    SourcePtr kill_timer_;
    SourcePtr build_timer_;   // limits.timeout
    bool timed_out_ = false;
};

}  // namespace by::worker
