#include "latent/run_program.hpp"

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/process.hpp"
#include "common/raii.hpp"

namespace by::latent {

namespace {

constexpr size_t max_output = 64 * 1024;
constexpr int poll_slice_ms = 50;  // how soon a set Cancelled flag is seen

void read_available(int fd, std::string& out, bool& eof) {
    char buf[4096];
    for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n > 0) {
            out.append(buf, static_cast<size_t>(n));
            if (out.size() > max_output) {
                out.erase(0, out.size() - max_output);
            }
        } else if (n == 0) {
            eof = true;
            return;
        } else if (errno != EINTR) {
            return;  // EAGAIN: nothing more now
        }
    }
}

}  // namespace

Outcome<ProgramResult> run_program(const std::vector<std::string>& argv, uint64_t timeout_usec,
                                   const Cancelled& cancelled) {
    Outcome<ProgramResult> result;
    if (argv.empty()) {
        result.error = "no program to run";
        return result;
    }
    int fds[2];
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0) {
        result.error = std::string("pipe: ") + std::strerror(errno);
        return result;
    }
    Fd rd(fds[0]);
    Fd wr(fds[1]);

    std::vector<char*> args;
    for (const auto& a : argv) {
        args.push_back(const_cast<char*>(a.c_str()));
    }
    args.push_back(nullptr);

    // latentd's threads inherit the loop's blocked signals; spawn() clears them.
    process::SpawnOptions options;
    options.search_path = true;
    pid_t pid = -1;
    if (const int r = process::spawn(args.data(), wr.get(), options, pid); r < 0) {
        result.error = "cannot run " + argv[0] + ": " + std::strerror(-r);
        return result;
    }
    wr.reset();

    const auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(timeout_usec);
    bool eof = false;
    for (;;) {
        int status = 0;
        const pid_t done = waitpid(pid, &status, WNOHANG);
        if (done == pid) {
            read_available(rd.get(), result.value.output, eof);
            result.value.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            return result;
        }
        if (done < 0 && errno != EINTR) {
            result.error = "waitpid " + argv[0] + ": " + std::strerror(errno);
            return result;
        }
        const bool late = std::chrono::steady_clock::now() >= deadline;
        if (late || cancelled.load()) {
            ::kill(pid, SIGKILL);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
            }
            result.error = argv[0] + (late ? " did not finish within " + std::to_string(timeout_usec / 1000) + " ms"
                                           : std::string(" was stopped: the call was cancelled"));
            return result;
        }
        if (eof) {
            // The pipe is closed but the child still runs: just wait for it.
            ::usleep(poll_slice_ms * 1000);
            continue;
        }
        pollfd p{rd.get(), POLLIN, 0};
        if (::poll(&p, 1, poll_slice_ms) > 0) {
            read_available(rd.get(), result.value.output, eof);
        }
    }
}

}  // namespace by::latent
