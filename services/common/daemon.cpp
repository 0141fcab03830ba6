#include "common/daemon.hpp"

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>

#include "common/bus.hpp"
#include "common/log.hpp"

namespace by {

bool open_daemon_loop(EventPtr& event, BusPtr& bus) {
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, nullptr);
    std::signal(SIGPIPE, SIG_IGN);

    sd_event* raw = nullptr;
    if (int r = sd_event_new(&raw); r < 0) {
        log::error("cannot create the event loop: {}", std::strerror(-r));
        return false;
    }
    event.reset(raw);
    sd_event_set_watchdog(raw, true);
    if (int r = bus::open_system(bus); r < 0) {
        log::error("cannot connect to the system bus: {}", std::strerror(-r));
        return false;
    }
    if (int r = sd_bus_attach_event(bus.get(), raw, SD_EVENT_PRIORITY_NORMAL); r < 0) {
        log::error("cannot attach the bus to the event loop: {}", std::strerror(-r));
        return false;
    }
    return true;
}

std::string state_directory(const std::string& chosen, const char* fallback) {
    std::string dir = chosen;
    if (dir.empty()) {
        // systemd's StateDirectory= may list several, separated by ':'.
        const char* s = std::getenv("STATE_DIRECTORY");
        dir = s && *s ? std::string(s).substr(0, std::string(s).find(':')) : fallback;
    }
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) {
        log::error("cannot create the state directory {}: {}", dir, ec.message());
        return {};
    }
    return dir;
}

Fd lock_state_directory(const std::string& dir, const char* program, std::string& error) {
    Fd lock(::open((dir + "/lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640));
    if (!lock || flock(lock.get(), LOCK_EX | LOCK_NB) < 0) {
        error = fmt::format("cannot lock {}/lock: {}{}", dir, std::strerror(errno),
                            errno == EWOULDBLOCK ? fmt::format(" (another {} uses this state directory)", program) : "");
        return Fd();
    }
    return lock;
}

}  // namespace by
