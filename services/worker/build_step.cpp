// A build step's processes: the shell the worker forks itself (its process
// group, its gate, its adoption by the isolation) or, for a sandboxed build,
// the step the isolation's step host runs in the build's unit; how either is
// started, signalled and found to have exited. build_runner.cpp runs the
// build around them: the order of the steps, cancel and timeout, the output
// and the end.
#include "worker/build_runner.hpp"

#include <cerrno>
#include <cstring>
#include <utility>

#include <fmt/format.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/process.hpp"

namespace by::worker {

namespace {

std::string errno_text(int negative_errno) { return std::strerror(-negative_errno); }

}  // namespace

bool BuildRunner::run_local_step(unsigned number, const std::string& command, const std::string& cwd) {
    process::Spawned spawned;
    const bool gated = spec_.isolation && spec_.isolation->gates_steps();
    int r = process::spawn_shell(command, cwd, spec_.environment, spawned, gated);
    if (r < 0) {
        exception(fmt::format("buildyard-workerd: cannot start step {} in {}: {}\n", number, cwd, errno_text(r)));
        return true;
    }
    pid_ = spawned.pid;
    output_ = std::move(spawned.output);
    gate_ = std::move(spawned.gate);
    // A pipe holds 64 KiB by default, so a step writing fast would be read
    // (and sent) 64 KiB at a time; fewer, larger messages cost the bus, the
    // master and us less per byte. Failing to grow it only costs speed.
    fcntl(output_.get(), F_SETPIPE_SZ, static_cast<int>(max_chunk));
    output_eof_ = false;
    state_ = State::running;

    sd_event_source* child = nullptr;
    r = sd_event_add_child(event_, &child, pid_, WEXITED, on_child, this);
    if (r < 0) {
        // Nobody would reap the shell: end it here.
        kill_group(SIGKILL);
        waitpid(pid_, nullptr, 0);
        pid_ = -1;
        exception(fmt::format("buildyard-workerd: cannot watch step {}: {}\n", number, errno_text(r)));
        return true;
    }
    child_source_.reset(child);
    // From now on freeing the source kills and reaps the shell.
    sd_event_source_set_child_process_own(child, 1);

    if (!watch_output(number)) {
        return true;
    }
    if (spec_.isolation) {
        // The shell waits at its gate (if gated) until it is in the build's cgroup.
        isolated_ = true;
        const pid_t pid = pid_;
        r = spec_.isolation->adopt(spec_.id, pid, spec_.limits, spec_.kill_timeout, [this, pid](int ar) {
            if (pid_ == pid) open_gate(ar);
        });
        if (r != 0) {
            open_gate(r > 0 ? 0 : r);
        }
    }
    return false;
}

bool BuildRunner::watch_output(unsigned number) {
    sd_event_source* io = nullptr;
    int r = sd_event_add_io(event_, &io, output_.get(), EPOLLIN, on_output, this);
    if (r < 0) {
        kill_group(SIGKILL);
        stop_step();
        exception(fmt::format("buildyard-workerd: cannot read the output of step {}: {}\n", number, errno_text(r)));
        return false;
    }
    output_source_.reset(io);
    if (output_paused_) {
        sd_event_source_set_enabled(io, SD_EVENT_OFF);
    }
    return true;
}

bool BuildRunner::run_hosted_step(unsigned number, const std::string& command, const std::string& cwd) {
    const auto sandbox = config::to_string(spec_.limits.sandbox);
    if (!spec_.isolation || !spec_.isolation->hosts_steps(spec_.limits)) {
        // Never run a build outside the sandbox it asked for.
        exception(fmt::format("buildyard-workerd: sandbox = {} needs a systemd manager to run the build in a "
                              "transient service, and this worker runs its builds {}\n",
                              sandbox,
                              spec_.isolation ? fmt::format("as plain processes ({})", spec_.isolation->kind())
                                              : std::string("without a unit")));
        return true;
    }
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) {
        exception(fmt::format("buildyard-workerd: cannot start step {}: {}\n", number, errno_text(-errno)));
        return true;
    }
    output_ = Fd(fds[0]);
    Isolation::HostedStep step{cwd, command, process::environment_with(spec_.environment), Fd(fds[1])};
    fcntl(output_.get(), F_SETFL, fcntl(output_.get(), F_GETFL) | O_NONBLOCK);
    fcntl(output_.get(), F_SETPIPE_SZ, static_cast<int>(max_chunk));
    output_eof_ = false;
    state_ = State::running;
    if (!watch_output(number)) {
        return true;
    }
    isolated_ = true;
    hosted_ = true;
    const uint64_t serial = ++hosted_serial_;
    int r = spec_.isolation->run_hosted(spec_.id, std::move(step), spec_.limits, spec_.kill_timeout,
                                        [this, serial](int status) {
                                            if (hosted_ && hosted_serial_ == serial) hosted_exited(status);
                                        });
    if (r < 0) {
        stop_step();
        exception(fmt::format("buildyard-workerd: cannot start step {} in the build's unit (sandbox = {}): {}\n",
                              number, sandbox, errno_text(r)));
        return true;
    }
    return false;
}

void BuildRunner::hosted_exited(int status) {
    hosted_ = false;  // its host has killed the step's group already
    if (status < 0 && cancelled_) {
        // Killed with its whole unit (the SIGKILL of a cancel or timeout
        // goes through systemd): the step ended as cancelled.
        status = 128 + SIGKILL;
    }
    if (status < 0) {
        drain();
        stop_step();
        exception(status == -ECONNRESET
                      ? fmt::format("buildyard-workerd: the build's step host went away during step {} (killed by "
                                    "a step?); its unit is stopped\n",
                                    next_step_)
                      : fmt::format("buildyard-workerd: step {} did not run in the build's unit: {}\n", next_step_,
                                    errno_text(status)));
        return;
    }
    step_exited(status);
}

void BuildRunner::open_gate(int r) {
    if (r < 0) {
        // The shell never ran the step; it ends with the gate closed.
        gate_.reset();
        kill_group(SIGKILL);
        if (callbacks_.output) {
            callbacks_.output(fmt::format("buildyard-workerd: cannot put step {} into the build's unit: {}\n",
                                          next_step_, errno_text(r)));
        }
        failed_to_isolate_ = true;
        return;
    }
    if (gate_) {
        static const char line = '\n';
        if (::write(gate_.get(), &line, 1) != 1) {
            kill_group(SIGKILL);
        }
        gate_.reset();
    }
}

int BuildRunner::on_child(sd_event_source*, const siginfo_t* si, void* userdata) {
    auto* self = static_cast<BuildRunner*>(userdata);
    int status = si->si_status;
    if (si->si_code == CLD_KILLED || si->si_code == CLD_DUMPED) {
        status = 128 + si->si_status;
    }
    self->step_exited(status);
    return 0;
}

void BuildRunner::kill_group(int sig) {
    if (hosted_) {
        spec_.isolation->signal_hosted(spec_.id, sig);
    } else if (pid_ > 0) {
        ::kill(-pid_, sig);
    }
}

int BuildRunner::on_kill_timeout(sd_event_source*, uint64_t, void* userdata) {
    auto* self = static_cast<BuildRunner*>(userdata);
    self->kill_group(SIGKILL);
    return 0;
}

void BuildRunner::stop_step() {
    kill_timer_.reset();
    gate_.reset();
    output_source_.reset();
    output_.reset();
    child_source_.reset();
    pid_ = -1;
    hosted_ = false;
    state_ = State::scheduled;
}

}  // namespace by::worker
