// buildyard-masterd: arguments, the event loop and signals. Everything else
// is in Master.
#include <iostream>

#include <systemd/sd-daemon.h>

#include "common/config.hpp"
#include "common/daemon_main.hpp"
#include "master/master.hpp"
#include "master/remote.hpp"

namespace {

int check_config(const std::string& path) {
    auto loaded = by::config::load_for_master(path);
    if (!loaded.config) {
        return by::configuration_test_failed("buildyard-masterd", loaded.errors);
    }
    for (const auto& w : loaded.config->warnings) {
        std::cerr << "warning: " << w.str() << "\n";
    }
    std::cout << "buildyard-masterd: configuration is valid: " << loaded.config->workers.size() << " workers, "
              << loaded.config->builders.size() << " builders, from";
    for (const auto& f : loaded.config->files) {
        std::cout << " " << f;
    }
    std::cout << "\n";
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    by::Daemon daemon;
    const by::DaemonProgram program{
        .name = "buildyard-masterd",
        .config_help = "master configuration; drop-ins are read from master.d/ beside it",
        .state_help = "where the state database and build logs live (default: $STATE_DIRECTORY or " BUILDYARD_STATEDIR
                      ")",
        .state_fallback = BUILDYARD_STATEDIR,
        .check_config = check_config,
    };
    if (auto rc = by::open_daemon(argc, argv, program, daemon)) {
        return *rc;
    }
    sd_event* raw_event = daemon.event.get();

    by::master::Master master(raw_event, daemon.bus.get(), daemon.config_path, daemon.state_directory);
    std::string error;
    if (!master.start(error)) {
        return by::failed_to_start(error);
    }
    auto timeouts = [](const by::config::Master& m) {
        return by::master::Remote::Timeouts{m.auth_timeout_usec, m.duplicate_ping_timeout_usec};
    };
    by::master::Remote remote(raw_event, master, master.metrics(), master.state_directory(),
                              timeouts(master.config().master));
    if (!remote.load_identity(master.config().master, error) || !remote.start(master.config().master.listen, error)) {
        return by::failed_to_start(error);
    }
    master.on_reloaded([&remote, &timeouts](const by::config::Config& c) {
        remote.set_timeouts(timeouts(c.master));
        remote.reload_identity(c.master);
        remote.relisten(c.master.listen);
        remote.keepalives_changed();
    });
    by::DaemonSignals signals{
        // While the bus is still open: leaving the loop flushes and closes it.
        .stopping = [&master] { master.stopping(); },
        .reload = [&master] { master.reload(); },
    };
    sd_notify(0, "READY=1");
    return by::run_daemon_loop(daemon, signals);
}
