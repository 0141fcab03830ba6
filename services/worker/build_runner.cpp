// A build: its steps in order, cancel and the build's timeout, the steps'
// output, and its end once the isolation has released what is left.
// build_step.cpp starts, signals and watches each step's processes.
#include "worker/build_runner.hpp"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>

#include <fmt/format.h>
#include <sys/mman.h>
#include <unistd.h>

namespace by::worker {

namespace {

constexpr size_t chunk_size = BuildRunner::max_chunk;
// After a step's shell has exited and its group was killed, at most this much
// (4 MiB) is read from the pipe before it is closed, so a writer that escaped
// the kill cannot keep the loop busy.
constexpr size_t max_drain_chunks = 4 * 1024 * 1024 / chunk_size;

// One buffer for every runner: the daemon is single-threaded and each chunk
// is handed on before the next read. Page-aligned so that release_buffer()
// can give its pages back.
alignas(4096) char buffer[chunk_size];

std::string errno_text(int negative_errno) { return std::strerror(-negative_errno); }

}  // namespace

bool safe_path_component(std::string_view name) {
    return !name.empty() && name != "." && name != ".." && name.find('/') == std::string_view::npos &&
           name.find('\0') == std::string_view::npos;
}

void BuildRunner::release_buffer() { madvise(buffer, sizeof buffer, MADV_DONTNEED); }

BuildRunner::BuildRunner(sd_event* event, Spec spec, Callbacks callbacks)
    : event_(event), spec_(std::move(spec)), callbacks_(std::move(callbacks)) {}

BuildRunner::~BuildRunner() {
    // The child source owns the shell's process (it kills and reaps it when
    // freed); the rest of the group is ours to end.
    kill_group(SIGKILL);
    if (isolated_ && state_ != State::finished) {
        spec_.isolation->abandon(spec_.id);
    }
}

int BuildRunner::start() {
    if (state_ != State::created) {
        return -EALREADY;
    }
    sd_event_source* s = nullptr;
    int r = sd_event_add_defer(event_, &s, on_begin, this);
    if (r < 0) {
        return r;
    }
    begin_source_.reset(s);
    state_ = State::scheduled;
    return 0;
}

void BuildRunner::cancel() {
    if (state_ == State::finished || state_ == State::releasing || cancelled_) {
        return;
    }
    cancelled_ = true;
    if (state_ != State::running) {
        return;  // on_begin sees the flag and ends the build
    }
    stop_running_step();
}

void BuildRunner::stop_running_step() {
    if (spec_.kill_timeout == 0) {
        kill_group(SIGKILL);
        return;
    }
    kill_group(SIGTERM);
    sd_event_source* t = nullptr;
    int r = sd_event_add_time_relative(event_, &t, CLOCK_MONOTONIC,
                                       static_cast<uint64_t>(spec_.kill_timeout) * 1000000u, 0,
                                       on_kill_timeout, this);
    if (r < 0) {
        // Without a timer there is no second chance: kill now.
        kill_group(SIGKILL);
        return;
    }
    kill_timer_.reset(t);
}

int BuildRunner::on_build_timeout(sd_event_source*, uint64_t, void* userdata) {
    auto* self = static_cast<BuildRunner*>(userdata);
    if (self->state_ == State::finished || self->state_ == State::releasing || self->cancelled_) {
        return 0;
    }
    self->timed_out_ = true;
    if (self->callbacks_.output) {
        self->callbacks_.output(fmt::format("buildyard-workerd: the build took longer than its timeout of {} s; "
                                            "stopping it\n",
                                            self->spec_.limits.timeout));
    }
    self->cancelled_ = true;
    if (self->state_ == State::running) {
        self->stop_running_step();
    }
    return 0;
}

void BuildRunner::set_output_paused(bool paused) {
    output_paused_ = paused;
    if (output_source_ && !output_eof_) {
        sd_event_source_set_enabled(output_source_.get(), paused ? SD_EVENT_OFF : SD_EVENT_ON);
    }
}

int BuildRunner::on_begin(sd_event_source*, void* userdata) {
    auto* self = static_cast<BuildRunner*>(userdata);
    if (self->cancelled_) {
        self->finish("cancelled", -1);
        return 0;
    }
    if (self->spec_.limits.timeout > 0) {
        sd_event_source* t = nullptr;
        int r = sd_event_add_time_relative(self->event_, &t, CLOCK_MONOTONIC, self->spec_.limits.timeout * 1000000u,
                                           0, on_build_timeout, self);
        if (r < 0) {
            self->exception(fmt::format("buildyard-workerd: cannot time the build: {}\n", errno_text(r)));
            return 0;
        }
        self->build_timer_.reset(t);
    }
    if (!safe_path_component(self->spec_.builder)) {
        self->exception(fmt::format("buildyard-workerd: builder name '{}' cannot be used as a directory name\n",
                                    self->spec_.builder));
        return 0;
    }
    if (self->spec_.basedir.empty()) {
        self->exception("buildyard-workerd: the worker has no base directory\n");
        return 0;
    }
    std::filesystem::path dir = std::filesystem::path(self->spec_.basedir) / self->spec_.builder;
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) {
        self->exception(fmt::format("buildyard-workerd: cannot create build directory {}: {}\n", dir.string(),
                                    ec.message()));
        return 0;
    }
    self->run_step();
    return 0;
}

bool BuildRunner::run_step() {
    if (next_step_ >= spec_.steps.size()) {
        finish("success", 0);
        return true;
    }
    unsigned number = static_cast<unsigned>(next_step_ + 1);
    const std::string& command = spec_.steps[next_step_];
    ++next_step_;
    if (callbacks_.step_started) {
        callbacks_.step_started(number);
    }
    if (cancelled_) {
        finish(stopped_result(), -1);
        return true;
    }

    std::string cwd = (std::filesystem::path(spec_.basedir) / spec_.builder).string();
    if (spec_.limits.sandbox != config::Sandbox::none) {
        return run_hosted_step(number, command, cwd);
    }
    return run_local_step(number, command, cwd);
}

int BuildRunner::on_output(sd_event_source*, int, uint32_t, void* userdata) {
    auto* self = static_cast<BuildRunner*>(userdata);
    if (self->read_chunk() == Read::end) {
        // EOF: every writer closed the pipe, though the shell may still run.
        // Keep the fd (the exit handler closes it) but stop polling it.
        self->output_eof_ = true;
        sd_event_source_set_enabled(self->output_source_.get(), SD_EVENT_OFF);
    }
    return 0;
}

BuildRunner::Read BuildRunner::read_chunk() {
    for (;;) {
        ssize_t n = ::read(output_.get(), buffer, sizeof buffer);
        if (n > 0) {
            if (callbacks_.output) {
                callbacks_.output(std::string_view(buffer, static_cast<size_t>(n)));
            }
            return Read::data;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            return Read::again;
        }
        return Read::end;  // EOF or a real error
    }
}

void BuildRunner::drain() {
    if (!output_ || output_eof_) {
        return;
    }
    for (size_t i = 0; i < max_drain_chunks && read_chunk() == Read::data; ++i) {
    }
}

bool BuildRunner::step_exited(int status) {
    // The shell is a zombie until this handler returns, so its pid still
    // names the group. Nothing a step started may outlive it. Killing before
    // draining loses nothing already written and bounds the drain.
    kill_group(SIGKILL);
    drain();
    stop_step();
    if (failed_to_isolate_) {
        finish("exception", -1);
        return true;
    }
    if (cancelled_) {
        finish(stopped_result(), status);
        return true;
    }
    if (status != 0) {
        finish("failure", status);
        return true;
    }
    return run_step();
}

void BuildRunner::exception(const std::string& line) {
    if (callbacks_.output) {
        callbacks_.output(line);
    }
    finish("exception", -1);
}

void BuildRunner::finish(const std::string& result, int exit_status) {
    stop_step();
    begin_source_.reset();
    build_timer_.reset();
    if (isolated_) {
        // Nothing of the build may outlive its end: the isolation kills what
        // is left (daemons that left the process group too) and only then
        // does the build end.
        state_ = State::releasing;
        spec_.isolation->release(spec_.id, [this, result, exit_status](const BuildUsage& usage) {
            released(result, exit_status, usage);
        });
        return;
    }
    released(result, exit_status, BuildUsage{});
}

void BuildRunner::released(const std::string& result, int exit_status, const BuildUsage& usage) {
    usage_ = usage;
    state_ = State::finished;
    // Move the callback out: the owner may destroy us from inside it.
    auto done = std::move(callbacks_.done);
    callbacks_ = {};
    if (done) {
        done(result, exit_status);
    }
}

}  // namespace by::worker
