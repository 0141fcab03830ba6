// buildyard-latentd: arguments, the event loop and signals. Everything else
// is in LatentManager.
#include <iostream>
#include <string>

#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "common/config.hpp"
#include "common/daemon_main.hpp"
#include "common/env_knob.hpp"
#include "latent/latent_manager.hpp"

namespace {

int check_config(const std::string& path) {
    auto loaded = by::latent::load_config(path);
    if (!loaded.config) {
        return by::configuration_test_failed("buildyard-latentd", loaded.errors);
    }
    std::cout << "buildyard-latentd: configuration is valid: master '" << loaded.config->master.name << "', "
              << by::latent::count_latent_workers(*loaded.config) << " latent workers\n";
    return 0;
}

int run(by::Daemon& daemon) {
    sd_event* raw_event = daemon.event.get();
    // A testing aid, documented as one: see Timing::test_create_delay.
    const uint64_t test_create_delay = by::usec_from_env("BUILDYARD_LATENT_TEST_CREATE_DELAY", 0, {.zero_ok = true});
    by::latent::LatentManager manager(raw_event, daemon.bus.get(), daemon.config_path, daemon.state_directory,
                                      test_create_delay);
    std::string error;
    // READY=1 only once the first reconciliation is over: whoever is ordered
    // after latentd finds no leaks of a previous life.
    if (!manager.start(error, [&manager] {
            sd_notifyf(0, "READY=1\nSTATUS=%u instances, %llu leaks reaped", manager.live_instances(),
                       static_cast<unsigned long long>(manager.reaped_leaks()));
        })) {
        return by::failed_to_start(error);
    }
    by::DaemonSignals signals{
        .stopping_note = "; live instances keep running under their leases",
        .reload = [&manager] { manager.reload(); },
    };
    return by::run_daemon_loop(daemon, signals);
}

}  // namespace

int main(int argc, char** argv) {
    by::Daemon daemon;
    const by::DaemonProgram program{
        .name = "buildyard-latentd",
        .config_help = "the master's configuration ([master] name and the latent workers); drop-ins are read from "
                       "master.d/",
        .state_help = "where latent.db lives (default: $STATE_DIRECTORY or " BUILDYARD_LATENT_STATEDIR ")",
        .state_fallback = BUILDYARD_LATENT_STATEDIR,
        .check_config = check_config,
    };
    if (auto rc = by::open_daemon(argc, argv, program, daemon)) {
        return *rc;
    }
    int rc = run(daemon);
    // The bus flushed and closed, and the loop gone, before any _exit below.
    daemon.bus.reset();
    daemon.event.reset();
    // A backend call stuck past its deadline still runs on a thread that
    // nobody joins; exit without running static destructors under it.
    if (by::latent::CallRunner::detached_threads() > 0) {
        std::cout.flush();
        std::cerr.flush();
        _exit(rc);
    }
    return rc;
}
