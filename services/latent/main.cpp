// buildyard-latentd: arguments, the event loop and signals. Everything else
// is in LatentManager.
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>

#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "common/bus.hpp"
#include "common/config.hpp"
#include "common/daemon.hpp"
#include "common/log.hpp"
#include "common/program.hpp"
#include "latent/latent_manager.hpp"

namespace {

int check_config(const std::string& path) {
    auto loaded = by::latent::load_config(path);
    if (!loaded.config) {
        for (const auto& e : loaded.errors) {
            std::cerr << e.str() << "\n";
        }
        std::cerr << "buildyard-latentd: configuration test failed\n";
        return 1;
    }
    std::cout << "buildyard-latentd: configuration is valid: master '" << loaded.config->master.name << "', "
              << by::latent::count_latent_workers(*loaded.config) << " latent workers\n";
    return 0;
}

int on_terminate(sd_event_source* s, const signalfd_siginfo* si, void*) {
    by::log::info("received {}, stopping; live instances keep running under their leases",
                  strsignal(static_cast<int>(si->ssi_signo)));
    sd_notify(0, "STOPPING=1");
    return sd_event_exit(sd_event_source_get_event(s), 0);
}

int on_reload(sd_event_source*, const signalfd_siginfo*, void* userdata) {
    sd_notify(0, "RELOADING=1");
    static_cast<by::latent::LatentManager*>(userdata)->reload();
    sd_notify(0, "READY=1");
    return 0;
}

int run(const std::string& config_path, const std::string& state_dir, const by::latent::Timing& timing) {
    by::EventPtr event;
    by::BusPtr bus;
    if (!by::open_daemon_loop(event, bus)) {
        return 1;
    }
    sd_event* raw_event = event.get();

    by::latent::LatentManager manager(raw_event, bus.get(), config_path, state_dir, timing);
    std::string error;
    // READY=1 only once the first reconciliation is over: whoever is ordered
    // after latentd finds no leaks of a previous life.
    if (!manager.start(error, [&manager] {
            sd_notifyf(0, "READY=1\nSTATUS=%u instances, %llu leaks reaped", manager.live_instances(),
                       static_cast<unsigned long long>(manager.reaped_leaks()));
        })) {
        by::log::error("{}", error);
        sd_notifyf(0, "STATUS=failed to start: %s", error.c_str());
        return 1;
    }
    sd_event_add_signal(raw_event, nullptr, SIGTERM, on_terminate, nullptr);
    sd_event_add_signal(raw_event, nullptr, SIGINT, on_terminate, nullptr);
    sd_event_add_signal(raw_event, nullptr, SIGHUP, on_reload, &manager);

    int r = sd_event_loop(raw_event);
    if (r < 0) {
        by::log::error("event loop failed: {}", std::strerror(-r));
        return 1;
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    by::po::options_description options("Options");
    options.add_options()
        ("config", by::po::value<std::string>()->default_value(BUILDYARD_SYSCONFDIR "/master.ini"),
         "the master's configuration ([master] name and the latent workers); drop-ins are read from master.d/")
        ("check-config", "validate the configuration, print any errors, and exit 0 (valid) or 1")
        ("state-directory", by::po::value<std::string>(),
         "where latent.db lives (default: $STATE_DIRECTORY or " BUILDYARD_LATENT_STATEDIR ")");
    by::po::variables_map vm;
    if (auto rc = by::parse_arguments(argc, argv, "buildyard-latentd", "[OPTIONS]", options, vm)) {
        return *rc;
    }
    const std::string config_path = vm["config"].as<std::string>();
    if (vm.count("check-config")) {
        return check_config(config_path);
    }
    by::log::init("buildyard-latentd");
    std::vector<std::string> bad;
    auto timing = by::latent::Timing::from_environment([](const char* n) { return std::getenv(n); }, bad);
    for (const auto& b : bad) {
        by::log::warning("ignoring {}: expected a number of seconds", b);
    }
    const std::string state_dir = by::state_directory(
        vm.count("state-directory") ? vm["state-directory"].as<std::string>() : std::string(), BUILDYARD_LATENT_STATEDIR);
    if (state_dir.empty()) {
        return 1;
    }
    int rc = run(config_path, state_dir, timing);
    // A backend call stuck past its deadline still runs on a thread that
    // nobody joins; exit without running static destructors under it.
    if (by::latent::CallRunner::detached_threads() > 0) {
        std::cout.flush();
        std::cerr.flush();
        _exit(rc);
    }
    return rc;
}
