// A sandboxed build's unit: a transient service, since a scope's processes
// are the worker's and carry none of systemd's exec settings. Its main
// process is this program as the step host (step_host.hpp), its stdin a
// socket to the worker; the host runs each step the worker sends it, so the
// steps get everything the service has: PrivateTmp=, ProtectSystem=,
// ProtectHome=, NoNewPrivileges= and, under strict, DynamicUser= with the
// build directory as the one writable place. Usage, stop and leftovers are
// a scope's (isolation_systemd.cpp).
#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/epoll.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.hpp"
#include "worker/isolation_systemd.hpp"

namespace by::worker {

namespace {

// A DynamicUser= build gets a new uid each time: its directory must be its.
// Walked by descriptor, each directory opened relative to its parent with
// O_NOFOLLOW, so that what a step left behind (a directory swapped for a
// symlink) cannot steer root's chown outside the tree; other file systems
// mounted inside are left alone. `error` keeps the first failure.
void chown_dir(int fd, dev_t dev, uid_t uid, gid_t gid, unsigned depth, int& error) {
    if (::fchown(fd, uid, gid) < 0 && error == 0) error = errno;
    if (depth >= 256) return;
    int listing = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    DIR* dir = listing >= 0 ? fdopendir(listing) : nullptr;
    if (!dir) {
        if (listing >= 0) ::close(listing);
        if (error == 0) error = errno;
        return;
    }
    while (dirent* e = readdir(dir)) {
        if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
        struct stat st {};
        if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) continue;  // gone meanwhile
        if (!S_ISDIR(st.st_mode)) {
            if (fchownat(fd, e->d_name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0 && error == 0) error = errno;
            continue;
        }
        Fd sub(openat(fd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (sub && fstat(sub.get(), &st) == 0 && st.st_dev == dev) {
            chown_dir(sub.get(), dev, uid, gid, depth + 1, error);
        }
    }
    closedir(dir);
}

int chown_tree(const std::string& path, uid_t uid, gid_t gid) {
    Fd root(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    struct stat st {};
    if (!root || fstat(root.get(), &st) < 0) return -errno;
    int error = 0;
    chown_dir(root.get(), st.st_dev, uid, gid, 0, error);
    return -error;
}

}  // namespace

int SystemdUnits::run_hosted(uint64_t id, HostedStep step, const config::BuildLimits& limits, unsigned kill_timeout,
                             Exited exited) {
    auto [it, fresh] = units_.try_emplace(id);
    Unit& u = it->second;
    if (!fresh && (!u.service || u.exited || u.released)) {
        return -EBUSY;  // one step at a time, in a service of its own
    }
    if (!fresh && !u.host) {
        return -ECONNRESET;  // its host died after the last step
    }
    u.exited = std::move(exited);
    u.pending = std::move(step);
    if (!fresh) {
        int r = u.host_ready ? send_step(id, u) : 0;
        if (r < 0) {
            u.exited = nullptr;
            u.pending.reset();
            kill_unit(u);  // the stream may be cut mid-message: no more steps
        }
        return r;
    }
    u.service = true;
    u.sandbox = limits.sandbox;
    u.cwd = u.pending->cwd;
    u.name = build_unit_name(worker_, id, true);
    int r = start_service(id, u, limits, kill_timeout);
    if (r < 0) {
        units_.erase(id);
    }
    return r;
}

int SystemdUnits::start_service(uint64_t id, Unit& u, const config::BuildLimits& limits, unsigned kill_timeout) {
    if (exe_.empty()) {
        return -ENOENT;  // /proc/self/exe was unreadable: no host to start
    }
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0) {
        return -errno;
    }
    Fd ours(pair[0]), theirs(pair[1]);
    // A step's request is written at once; a host stopped (by a step under
    // strict, which shares its user) must not hold the worker for long.
    const timeval send_timeout{10, 0};
    setsockopt(ours.get(), SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof send_timeout);
    sd_event_source* io = nullptr;
    int r = sd_event_add_io(event_, &io, ours.get(), EPOLLIN, on_host_io, this);
    if (r < 0) {
        return r;
    }
    u.host_io.reset(io);
    u.host = std::move(ours);

    const bool strict = limits.sandbox == config::Sandbox::strict;
    MessagePtr m;
    r = open_start(u, m);
    if (r >= 0) r = sd_bus_message_append(m.get(), "(sv)", "Type", "s", "exec");
    if (r >= 0)
        r = sd_bus_message_append(m.get(), "(sv)", "ExecStart", "a(sasb)", 1, exe_.c_str(), 2, exe_.c_str(),
                                  "--step-host", 0);
    if (r >= 0) r = sd_bus_message_append(m.get(), "(sv)", "StandardInputFileDescriptor", "h", theirs.get());
    if (r >= 0) r = sd_bus_message_append(m.get(), "(sv)", "StandardOutput", "s", "journal");
    if (r >= 0) r = sd_bus_message_append(m.get(), "(sv)", "StandardError", "s", "journal");
    // standard: PrivateTmp=, ProtectSystem=full, ProtectHome=read-only,
    // NoNewPrivileges=; strict: also DynamicUser=, and all of the file
    // system read-only but the build directory (ProtectSystem=strict).
    if (r >= 0) r = sd_bus_message_append(m.get(), "(sv)", "PrivateTmp", "b", 1);
    if (r >= 0) r = sd_bus_message_append(m.get(), "(sv)", "ProtectSystem", "s", strict ? "strict" : "full");
    if (r >= 0) r = sd_bus_message_append(m.get(), "(sv)", "ProtectHome", "s", "read-only");
    if (r >= 0) r = sd_bus_message_append(m.get(), "(sv)", "NoNewPrivileges", "b", 1);
    if (r >= 0 && strict) r = sd_bus_message_append(m.get(), "(sv)", "DynamicUser", "b", 1);
    if (r >= 0 && strict) r = sd_bus_message_append(m.get(), "(sv)", "ReadWritePaths", "as", 1, u.cwd.c_str());
    // The build directory as the worker sees it, even under the private
    // /tmp (a worker whose base directory is in /tmp).
    if (r >= 0)
        r = sd_bus_message_append(m.get(), "(sv)", "BindPaths", "a(ssbt)", 1, u.cwd.c_str(), u.cwd.c_str(), 0,
                                  static_cast<uint64_t>(MS_REC));
    return r < 0 ? r : send_start(id, u, m, limits, kill_timeout);
}

int SystemdUnits::on_host_io(sd_event_source*, int fd, uint32_t, void* userdata) {
    auto* self = static_cast<SystemdUnits*>(userdata);
    auto find = [self, fd]() -> Unit* {
        for (auto& [id, u] : self->units_) {
            if (u.host.get() == fd) return &u;
        }
        return nullptr;
    };
    Unit* u = find();
    if (!u) {
        return 0;
    }
    uint64_t id = 0;
    for (auto& [k, v] : self->units_) {
        if (&v == u) id = k;
    }
    // At most 64 messages per dispatch: a host (under strict, a step may
    // have taken it over) cannot keep the loop to itself.
    for (int messages = 0; messages < 64;) {
        char buf[256];
        ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return 0;
        if (n <= 0) {
            // The host is gone (the service stopped, or a step killed it).
            self->host_lost(id, -ECONNRESET);
            return 0;
        }
        u->inbox.append(buf, static_cast<size_t>(n));
        while (u->inbox.size() >= sizeof(step_host::Header)) {
            step_host::Header h;
            std::memcpy(&h, u->inbox.data(), sizeof h);
            u->inbox.erase(0, sizeof h);
            ++messages;
            self->host_message(id, h);
            u = find();  // the step's end may have ended the build
            if (!u || !u->host) return 0;
        }
    }
    return 0;
}

void SystemdUnits::kill_unit(const Unit& u) {
    // Through systemd, not the host: it works whatever state the host is in.
    sd_bus_call_method_async(bus_.get(), nullptr, systemd_name, systemd_path, manager_iface, "KillUnit", nullptr,
                             nullptr, "ssi", u.name.c_str(), "all", SIGKILL);
}

void SystemdUnits::host_lost(uint64_t id, int error) {
    auto it = units_.find(id);
    if (it == units_.end()) {
        return;
    }
    Unit& u = it->second;
    u.host_io.reset();
    u.host.reset();
    u.host_ready = false;
    kill_unit(u);
    step_done(id, error);
}

void SystemdUnits::host_message(uint64_t id, const step_host::Header& h) {
    Unit& u = units_.at(id);
    switch (static_cast<step_host::Kind>(h.kind)) {
    case step_host::Kind::hello:
        if (u.host_ready) break;  // once only: a second one is not the host speaking
        host_ready(id, u, static_cast<uid_t>(h.a), static_cast<gid_t>(h.b));
        return;
    case step_host::Kind::exited:
        step_done(id, h.a);
        return;
    case step_host::Kind::failed:
        step_done(id, -h.a);
        return;
    default:
        break;
    }
    log::warning("the step host of build {} broke the protocol (message {}); stopping its unit", id, h.kind);
    host_lost(id, -EPROTO);
}

void SystemdUnits::host_ready(uint64_t id, Unit& u, uid_t uid, gid_t gid) {
    u.host_ready = true;
    if (u.sandbox == config::Sandbox::strict) {
        if (int r = chown_tree(u.cwd, uid, gid); r < 0) {
            log::warning("cannot give {} to build {}'s user {}: {}", u.cwd, id, uid, std::strerror(-r));
        }
    }
    if (u.pending) {
        if (int r = send_step(id, u); r < 0) {
            host_lost(id, r);
        }
    }
}

int SystemdUnits::send_step(uint64_t id, Unit& u) {
    (void)id;
    step_host::Run run{u.pending->cwd, u.pending->command, std::move(u.pending->environment)};
    Fd output = std::move(u.pending->output);
    u.pending.reset();
    int r = step_host::send_message(u.host.get(), step_host::Kind::run, 0, 0, step_host::encode_run(run),
                                    output.get());
    if (r >= 0 && u.pending_signal) {
        r = step_host::send_message(u.host.get(), step_host::Kind::signal, u.pending_signal, 0);
        u.pending_signal = 0;
    }
    return r;
}

void SystemdUnits::signal_hosted(uint64_t id, int sig) {
    auto it = units_.find(id);
    if (it == units_.end() || !it->second.host) {
        return;
    }
    Unit& u = it->second;
    if (sig == SIGKILL) {
        // The last word goes through systemd: a host that a step stopped or
        // took over cannot hold it back. The host dies too, and its end of
        // file ends the step.
        kill_unit(u);
        return;
    }
    if (u.pending) {
        u.pending_signal = sig;  // sent right after the step, once the host is up
        return;
    }
    if (step_host::send_message(u.host.get(), step_host::Kind::signal, sig, 0) < 0) {
        kill_unit(u);  // the stream may be cut mid-message; SIGKILL it is
    }
}

void SystemdUnits::step_done(uint64_t id, int status) {
    auto it = units_.find(id);
    if (it == units_.end() || !it->second.exited) {
        return;
    }
    auto exited = std::move(it->second.exited);
    it->second.exited = nullptr;
    it->second.pending.reset();
    exited(status);
}

}  // namespace by::worker
