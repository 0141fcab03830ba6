// buildyard-latentd: arguments, the event loop and signals. Everything else
// is in LatentManager.
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "common/config.hpp"
#include "common/daemon_main.hpp"
#include "common/log.hpp"
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

int run(by::Daemon& daemon, const by::latent::Timing& timing) {
    sd_event* raw_event = daemon.event.get();
    by::latent::LatentManager manager(raw_event, daemon.bus.get(), daemon.config_path, daemon.state_directory,
                                      timing);
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
    std::vector<std::string> bad;
    auto timing = by::latent::Timing::from_environment([](const char* n) { return std::getenv(n); }, bad);
    for (const auto& b : bad) {
        by::log::warning("ignoring {}: expected a number of seconds", b);
    }
    int rc = run(daemon, timing);
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
