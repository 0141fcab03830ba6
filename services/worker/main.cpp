// buildyard-workerd: one worker. Attaches to the master on the system bus,
// or over TCP to a remote one, and runs the builds it is given. See buildyard-workerd(8).

#include <cerrno>
#include <csignal>
#include <cstring>
#include <iostream>
#include <string>

#include <systemd/sd-event.h>

#include "common/config.hpp"
#include "common/log.hpp"
#include "common/program.hpp"
#include "common/raii.hpp"
#include "common/worker_config.hpp"
#include "worker/agent.hpp"

namespace {

int on_terminate(sd_event_source*, const signalfd_siginfo* si, void* userdata) {
    auto* agent = static_cast<by::worker::Agent*>(userdata);
    agent->terminate(si->ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
    return 0;
}

int on_reload(sd_event_source*, const signalfd_siginfo*, void* userdata) {
    static_cast<by::worker::Agent*>(userdata)->reload();
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    by::log::init("buildyard-workerd");

    by::po::options_description options("Options");
    options.add_options()
        ("name", by::po::value<std::string>()->required(), "worker name")
        ("config", by::po::value<std::string>(),
         "worker config file (default: " BUILDYARD_SYSCONFDIR "/workers/NAME.ini)")
        ("basedir", by::po::value<std::string>(), "directory the builds run in (overrides the config file)");
    by::po::variables_map vm;
    if (auto code = by::parse_arguments(argc, argv, "buildyard-workerd", "--name NAME [--config PATH] [--basedir DIR]",
                                        options, vm)) {
        return *code;
    }

    std::string name = vm["name"].as<std::string>();
    if (!by::config::valid_worker_name(name)) {
        std::cerr << "buildyard-workerd: invalid worker name '" << name
                  << "': use 1-64 of A-Z a-z 0-9 . _ -, not starting with . or -\n";
        return 1;
    }
    by::worker::Options opts;
    opts.config_required = vm.count("config") > 0;
    opts.config_file = opts.config_required ? vm["config"].as<std::string>()
                                            : std::string(BUILDYARD_SYSCONFDIR) + "/workers/" + name + ".ini";
    if (vm.count("basedir")) {
        opts.basedir = vm["basedir"].as<std::string>();
    }

    auto loaded = by::config::load_worker(name, opts.config_file, opts.config_required,
                                          by::config::current_environment());
    if (!loaded.errors.empty() || !loaded.config) {
        for (const auto& e : loaded.errors) {
            std::cerr << e.str() << "\n";
        }
        if (loaded.errors.empty()) {
            std::cerr << opts.config_file << ": cannot be loaded\n";
        }
        return 1;
    }
    // sd-event handles these through signalfd and child sources, which only
    // works while they are blocked. Children get a clean mask (process.cpp).
    sigset_t mask;
    sigemptyset(&mask);
    for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGCHLD}) {
        sigaddset(&mask, sig);
    }
    if (sigprocmask(SIG_BLOCK, &mask, nullptr) < 0) {
        by::log::error("cannot block signals: {}", std::strerror(errno));
        return 1;
    }

    sd_event* raw_event = nullptr;
    int r = sd_event_default(&raw_event);
    if (r < 0) {
        by::log::error("cannot create the event loop: {}", std::strerror(-r));
        return 1;
    }
    by::EventPtr event(raw_event);
    r = sd_event_set_watchdog(event.get(), true);
    if (r < 0) {
        by::log::warning("cannot enable the watchdog: {}", std::strerror(-r));
    }

    by::worker::Agent agent(event.get(), std::move(*loaded.config), std::move(opts));

    by::SourcePtr signal_sources[3];
    struct {
        int sig;
        sd_event_signal_handler_t handler;
    } const handlers[] = {{SIGTERM, on_terminate}, {SIGINT, on_terminate}, {SIGHUP, on_reload}};
    for (size_t i = 0; i < 3; ++i) {
        sd_event_source* s = nullptr;
        r = sd_event_add_signal(event.get(), &s, handlers[i].sig, handlers[i].handler, &agent);
        if (r < 0) {
            by::log::error("cannot watch signal {}: {}", handlers[i].sig, std::strerror(-r));
            return 1;
        }
        signal_sources[i].reset(s);
    }

    if (agent.start() < 0) {
        return 1;  // start() said why
    }
    r = sd_event_loop(event.get());
    if (r < 0) {
        by::log::error("event loop failed: {}", std::strerror(-r));
        return 1;
    }
    return r;
}
