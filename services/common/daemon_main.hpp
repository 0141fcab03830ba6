// The skeleton of main() that buildyard-masterd and buildyard-latentd
// share: the options both take, the log, the state directory, the event loop
// with the bus, a start-up failure said to systemd, and the signals (SIGTERM
// and SIGINT stop, SIGHUP reloads).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/config.hpp"
#include "common/raii.hpp"

namespace by {

struct DaemonProgram {
    const char* name;            // "buildyard-masterd"
    const char* config_help;     // --config's help
    const char* state_help;      // --state-directory's help
    const char* state_fallback;  // without --state-directory or $STATE_DIRECTORY
    // --check-config: validates `config_path`, prints what is wrong and
    // returns the exit code.
    std::function<int(const std::string& config_path)> check_config;
};

struct Daemon {
    std::string config_path;      // --config
    std::string state_directory;  // created if missing
    EventPtr event;               // with the watchdog on
    BusPtr bus;                   // the system bus, attached to `event`
};

// Parses --config (default SYSCONFDIR/master.ini), --check-config and
// --state-directory, then starts the log, the state directory and the loop.
// Returns an exit code when main() should return now (--help, a usage error,
// --check-config, a failure, which is logged), nullopt to go on.
std::optional<int> open_daemon(int argc, char** argv, const DaemonProgram& program, Daemon& daemon);

// --check-config's answer to an invalid configuration: each error on
// stderr, then "PROGRAM: configuration test failed"; returns 1.
int configuration_test_failed(const char* program, const std::vector<config::Error>& errors);

// Logs why the daemon cannot start and says it to systemd; returns 1.
int failed_to_start(const std::string& error);

struct DaemonSignals {
    std::string stopping_note{};       // after "received SIGTERM, stopping" in the log
    std::function<void()> stopping{};  // on SIGTERM and SIGINT, while the bus is still open
    std::function<void()> reload{};    // on SIGHUP, between RELOADING=1 and READY=1
};

// Runs the loop until SIGTERM or SIGINT, reloading on SIGHUP; returns the
// exit code. `signals` must outlive the loop.
int run_daemon_loop(Daemon& daemon, DaemonSignals& signals);

}  // namespace by
