#include "common/daemon_main.hpp"

#include <csignal>
#include <cstring>
#include <iostream>

#include <systemd/sd-daemon.h>

#include "common/daemon.hpp"
#include "common/log.hpp"
#include "common/program.hpp"

namespace by {

namespace {

int on_terminate(sd_event_source* s, const signalfd_siginfo* si, void* userdata) {
    auto* signals = static_cast<DaemonSignals*>(userdata);
    log::info("received {}, stopping{}", strsignal(static_cast<int>(si->ssi_signo)), signals->stopping_note);
    sd_notify(0, "STOPPING=1");
    if (signals->stopping) {
        signals->stopping();
    }
    return sd_event_exit(sd_event_source_get_event(s), 0);
}

int on_reload(sd_event_source*, const signalfd_siginfo*, void* userdata) {
    sd_notify(0, "RELOADING=1");
    static_cast<DaemonSignals*>(userdata)->reload();
    sd_notify(0, "READY=1");
    return 0;
}

}  // namespace

std::optional<int> open_daemon(int argc, char** argv, const DaemonProgram& program, Daemon& daemon) {
    po::options_description options("Options");
    options.add_options()
        ("config", po::value<std::string>()->default_value(BUILDYARD_SYSCONFDIR "/master.ini"), program.config_help)
        ("check-config", "validate the configuration, print any errors, and exit 0 (valid) or 1")
        ("state-directory", po::value<std::string>(), program.state_help);
    po::variables_map vm;
    if (auto rc = parse_arguments(argc, argv, program.name, "[OPTIONS]", options, vm)) {
        return rc;
    }
    daemon.config_path = vm["config"].as<std::string>();
    if (vm.count("check-config")) {
        return program.check_config(daemon.config_path);
    }
    log::init(program.name);
    daemon.state_directory = state_directory(
        vm.count("state-directory") ? vm["state-directory"].as<std::string>() : std::string(), program.state_fallback);
    if (daemon.state_directory.empty() || !open_daemon_loop(daemon.event, daemon.bus)) {
        return 1;
    }
    return std::nullopt;
}

int configuration_test_failed(const char* program, const std::vector<config::Error>& errors) {
    for (const auto& e : errors) {
        std::cerr << e.str() << "\n";
    }
    std::cerr << program << ": configuration test failed\n";
    return 1;
}

int failed_to_start(const std::string& error) {
    log::error("{}", error);
    sd_notifyf(0, "STATUS=failed to start: %s", error.c_str());
    return 1;
}

int run_daemon_loop(Daemon& daemon, DaemonSignals& signals) {
    sd_event* event = daemon.event.get();
    sd_event_add_signal(event, nullptr, SIGTERM, on_terminate, &signals);
    sd_event_add_signal(event, nullptr, SIGINT, on_terminate, &signals);
    if (signals.reload) {
        sd_event_add_signal(event, nullptr, SIGHUP, on_reload, &signals);
    }
    const int r = sd_event_loop(event);
    if (r < 0) {
        log::error("event loop failed: {}", std::strerror(-r));
        return 1;
    }
    return r;  // the code given to sd_event_exit()
}

}  // namespace by
