#include "worker/step_host.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/process.hpp"
#include "common/raii.hpp"

namespace by::worker::step_host {

namespace {

void put(std::string& out, std::string_view s) {
    out.append(s);
    out.push_back('\0');
}

// Blocking; 0, -EPIPE at end of file, or a negative errno.
int read_full(int fd, char* buf, size_t n) {
    while (n > 0) {
        ssize_t got = ::read(fd, buf, n);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) return -errno;
        if (got == 0) return -EPIPE;
        buf += got;
        n -= static_cast<size_t>(got);
    }
    return 0;
}

// A header and the descriptor that came with it, if any.
int receive_header(int fd, Header& h, Fd& passed) {
    char control[CMSG_SPACE(sizeof(int))] = {};
    iovec iov{&h, sizeof h};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t got;
    do {
        got = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
    } while (got < 0 && errno == EINTR);
    if (got < 0) return -errno;
    if (got == 0) return -EPIPE;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(sizeof(int))) {
            int passed_fd = -1;
            std::memcpy(&passed_fd, CMSG_DATA(c), sizeof passed_fd);
            passed.reset(passed_fd);
        }
    }
    if (msg.msg_flags & MSG_CTRUNC) return -EPROTO;
    return read_full(fd, reinterpret_cast<char*>(&h) + got, sizeof h - static_cast<size_t>(got));
}

// As BuildRunner reports a step: its exit code, or 128 + the signal.
int exit_status(const siginfo_t& si) {
    return si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
}

int spawn_step(const Run& run, int output, pid_t& pid) {
    std::string sh = "/bin/sh", dash_c = "-c", command = process::shell_command(run.command);
    char* argv[] = {sh.data(), dash_c.data(), command.data(), nullptr};
    std::vector<std::string> env_store = run.environment;
    std::vector<char*> envp;
    for (auto& e : env_store) envp.push_back(e.data());
    envp.push_back(nullptr);
    process::SpawnOptions options;
    options.cwd = run.cwd;
    options.new_group = true;
    options.envp = envp.data();
    return process::spawn(argv, output, options, pid);
}

}  // namespace

std::string encode_run(const Run& run) {
    std::string out;
    put(out, run.cwd);
    put(out, run.command);
    for (const auto& e : run.environment) put(out, e);
    return out;
}

std::optional<Run> decode_run(std::string_view payload) {
    std::vector<std::string_view> fields;
    while (!payload.empty()) {
        size_t end = payload.find('\0');
        if (end == std::string_view::npos) return std::nullopt;
        fields.push_back(payload.substr(0, end));
        payload.remove_prefix(end + 1);
    }
    if (fields.size() < 2 || fields[1].empty()) return std::nullopt;
    Run run;
    run.cwd = fields[0];
    run.command = fields[1];
    for (size_t i = 2; i < fields.size(); ++i) {
        if (fields[i].find('=') == std::string_view::npos) return std::nullopt;
        run.environment.emplace_back(fields[i]);
    }
    return run;
}

int send_message(int fd, Kind kind, int32_t a, int32_t b, std::string_view payload, int pass_fd) {
    Header h{static_cast<uint32_t>(kind), static_cast<uint32_t>(payload.size()), a, b};
    char control[CMSG_SPACE(sizeof(int))] = {};
    iovec iov[2] = {{&h, sizeof h}, {const_cast<char*>(payload.data()), payload.size()}};
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = payload.empty() ? 1 : 2;
    if (pass_fd >= 0) {
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        std::memcpy(CMSG_DATA(c), &pass_fd, sizeof pass_fd);
    }
    size_t left = sizeof h + payload.size();
    while (left > 0) {
        ssize_t sent = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (sent < 0 && errno == EINTR) continue;
        if (sent < 0) return -errno;
        left -= static_cast<size_t>(sent);
        // The descriptor went with the first bytes; send the rest without it.
        msg.msg_control = nullptr;
        msg.msg_controllen = 0;
        while (sent > 0 && msg.msg_iovlen > 0) {
            size_t n = std::min(static_cast<size_t>(sent), msg.msg_iov[0].iov_len);
            msg.msg_iov[0].iov_base = static_cast<char*>(msg.msg_iov[0].iov_base) + n;
            msg.msg_iov[0].iov_len -= n;
            sent -= static_cast<ssize_t>(n);
            if (msg.msg_iov[0].iov_len == 0) {
                ++msg.msg_iov;
                --msg.msg_iovlen;
            }
        }
    }
    return 0;
}

int run_host(int fd) {
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigprocmask(SIG_BLOCK, &mask, nullptr);
    Fd children(signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!children) {
        std::perror("buildyard-workerd --step-host: signalfd");
        return 1;
    }
    if (send_message(fd, Kind::hello, static_cast<int32_t>(getuid()), static_cast<int32_t>(getgid())) < 0) {
        return 1;
    }
    pid_t step = -1;
    for (;;) {
        pollfd p[2] = {{fd, POLLIN, 0}, {children.get(), POLLIN, 0}};
        if (::poll(p, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return 1;
        }
        if (p[1].revents) {
            signalfd_siginfo info;
            while (::read(children.get(), &info, sizeof info) > 0) {
            }
            siginfo_t si{};
            if (step > 0 && waitid(P_PID, static_cast<id_t>(step), &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
                si.si_pid == step) {
                // The shell is a zombie until reaped, so its pid still names
                // the group: nothing the step started outlives it.
                ::kill(-step, SIGKILL);
                waitpid(step, nullptr, 0);
                step = -1;
                if (send_message(fd, Kind::exited, exit_status(si), 0) < 0) return 1;
            }
        }
        if (!p[0].revents) continue;
        Header h;
        Fd passed;
        int r = receive_header(fd, h, passed);
        if (r < 0) {
            // The worker is gone (or broke the protocol): so is its build.
            if (step > 0) ::kill(-step, SIGKILL);
            return r == -EPIPE ? 0 : 1;
        }
        if (h.kind == static_cast<uint32_t>(Kind::signal)) {
            if (step > 0) ::kill(-step, h.a);
            continue;
        }
        if (h.kind != static_cast<uint32_t>(Kind::run) || h.length > max_payload || step > 0 || !passed) {
            std::fprintf(stderr, "buildyard-workerd --step-host: unexpected message %u from the worker\n", h.kind);
            if (step > 0) ::kill(-step, SIGKILL);
            return 2;
        }
        std::string payload(h.length, '\0');
        if (read_full(fd, payload.data(), payload.size()) < 0) return 1;
        auto run = decode_run(payload);
        if (!run) {
            std::fprintf(stderr, "buildyard-workerd --step-host: a malformed step from the worker\n");
            return 2;
        }
        r = spawn_step(*run, passed.get(), step);
        if (r < 0) {
            step = -1;
            if (send_message(fd, Kind::failed, -r, 0) < 0) return 1;
        }
    }
}

}  // namespace by::worker::step_host
