// buildyard-masterd: arguments, the event loop and signals. Everything else
// is in Master.
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>

#include <systemd/sd-daemon.h>

#include "common/bus.hpp"
#include "common/config.hpp"
#include "common/daemon.hpp"
#include "common/log.hpp"
#include "common/program.hpp"
#include "master/master.hpp"
#include "master/remote.hpp"

namespace {

int check_config(const std::string& path) {
    auto loaded = by::config::load_for_master(path);
    if (!loaded.config) {
        for (const auto& e : loaded.errors) {
            std::cerr << e.str() << "\n";
        }
        std::cerr << "buildyard-masterd: configuration test failed\n";
        return 1;
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

int on_terminate(sd_event_source* s, const signalfd_siginfo* si, void* userdata) {
    by::log::info("received {}, stopping", strsignal(static_cast<int>(si->ssi_signo)));
    sd_notify(0, "STOPPING=1");
    // While the bus is still open: leaving the loop flushes and closes it.
    static_cast<by::master::Master*>(userdata)->stopping();
    return sd_event_exit(sd_event_source_get_event(s), 0);
}

int on_reload(sd_event_source*, const signalfd_siginfo*, void* userdata) {
    sd_notify(0, "RELOADING=1");
    static_cast<by::master::Master*>(userdata)->reload();
    sd_notify(0, "READY=1");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    by::po::options_description options("Options");
    options.add_options()
        ("config", by::po::value<std::string>()->default_value(BUILDYARD_SYSCONFDIR "/master.ini"),
         "master configuration; drop-ins are read from master.d/ beside it")
        ("check-config", "validate the configuration, print any errors, and exit 0 (valid) or 1")
        ("state-directory", by::po::value<std::string>(),
         "where the state database and build logs live (default: $STATE_DIRECTORY or " BUILDYARD_STATEDIR ")");
    by::po::variables_map vm;
    if (auto rc = by::parse_arguments(argc, argv, "buildyard-masterd", "[OPTIONS]", options, vm)) {
        return *rc;
    }
    const std::string config_path = vm["config"].as<std::string>();
    if (vm.count("check-config")) {
        return check_config(config_path);
    }
    by::log::init("buildyard-masterd");
    const std::string state_dir = by::state_directory(
        vm.count("state-directory") ? vm["state-directory"].as<std::string>() : std::string(), BUILDYARD_STATEDIR);
    if (state_dir.empty()) {
        return 1;
    }

    by::EventPtr event;
    by::BusPtr bus;
    if (!by::open_daemon_loop(event, bus)) {
        return 1;
    }
    sd_event* raw_event = event.get();

    by::master::Master master(raw_event, bus.get(), config_path, state_dir);
    std::string error;
    if (!master.start(error)) {
        by::log::error("{}", error);
        sd_notifyf(0, "STATUS=failed to start: %s", error.c_str());
        return 1;
    }
    by::master::Remote remote(raw_event, master, by::master::Remote::timeouts_from_environment());
    if (!remote.load_identity(master.config().master, error) || !remote.start(master.config().master.listen, error)) {
        by::log::error("{}", error);
        sd_notifyf(0, "STATUS=failed to start: %s", error.c_str());
        return 1;
    }
    master.on_reloaded([&remote](const by::config::Config& c) {
        remote.reload_identity(c.master);
        remote.relisten(c.master.listen);
        remote.keepalives_changed();
    });
    sd_event_add_signal(raw_event, nullptr, SIGTERM, on_terminate, &master);
    sd_event_add_signal(raw_event, nullptr, SIGINT, on_terminate, &master);
    sd_event_add_signal(raw_event, nullptr, SIGHUP, on_reload, &master);

    sd_notify(0, "READY=1");
    int r = sd_event_loop(raw_event);
    if (r < 0) {
        by::log::error("event loop failed: {}", std::strerror(-r));
        return 1;
    }
    return 0;
}
