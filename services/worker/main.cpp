// buildyard-workerd: one worker. Attaches to the master on the system bus,
// or over TCP to a remote one, and runs the builds it is given. With
// --latent it is the worker inside a latent instance and attaches over TCP
// with the token of its start. See buildyard-workerd(8).

#include <cerrno>
#include <csignal>
#include <cstring>
#include <iostream>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>
#include <systemd/sd-event.h>

#include "common/config.hpp"
#include "common/log.hpp"
#include "common/program.hpp"
#include "common/raii.hpp"
#include "common/worker_config.hpp"
#include "worker/agent.hpp"
#include "worker/cloud_metadata.hpp"
#include "worker/latent_identity.hpp"
#include "worker/step_host.hpp"

namespace {

int on_terminate(sd_event_source*, const signalfd_siginfo* si, void* userdata) {
    auto* agent = static_cast<by::worker::Agent*>(userdata);
    agent->terminate(si->ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
    return 0;
}

int on_graceful(sd_event_source*, const signalfd_siginfo*, void* userdata) {
    static_cast<by::worker::Agent*>(userdata)->shut_down_gracefully("SIGUSR1");
    return 0;
}

int on_reload(sd_event_source*, const signalfd_siginfo*, void* userdata) {
    static_cast<by::worker::Agent*>(userdata)->reload();
    return 0;
}

// --latent: the identity of this start, in place of a configuration file.
std::optional<by::config::WorkerSelf> latent_self(const std::optional<by::worker::MetadataSource>& metadata) {
    auto sources = by::worker::read_latent_sources();
    auto resolved = by::worker::resolve_latent_identity(sources);
    if (resolved.none && metadata) {
        // Last, as it may wait on the network: the cloud's metadata service.
        const auto& source = *metadata;
        auto user_data = by::worker::fetch_user_data(source);
        sources.user_data = std::move(user_data.text);
        sources.user_data_source = user_data.description;
        sources.user_data_error = user_data.error;
        resolved = by::worker::resolve_latent_identity(sources);
    }
    if (!resolved.identity) {
        std::cerr << "buildyard-workerd: --latent: " << resolved.error << "\n";
        return std::nullopt;
    }
    auto& id = *resolved.identity;
    by::config::WorkerSelf self;
    self.name = id.name;
    self.masters = {id.master};
    self.password = id.token;  // the start's token is the Handshake1 key
    // The pin comes with the token; without one the master said tls = no.
    if (!id.master_fingerprint.empty()) {
        self.master_fingerprints = {id.master_fingerprint};
    }
    self.tls = !id.master_fingerprint.empty();
    const auto env = by::config::current_environment();
    self.basedir = env.state_directory.empty() ? "/var/lib/buildyard-worker/" + id.name : env.state_directory;
    by::log::write(by::log::Level::info,
                   fmt::format("latent worker {} of the master at {} (identity from {})", id.name, id.master,
                               id.source),
                   {{"BUILDYARD_WORKER", id.name}});
    return self;
}

std::optional<by::config::WorkerSelf> configured_self(const std::string& name, const by::worker::Options& opts) {
    if (!by::config::valid_worker_name(name)) {
        std::cerr << "buildyard-workerd: invalid worker name '" << name
                  << "': use 1-64 of A-Z a-z 0-9 . _ -, not starting with . or -\n";
        return std::nullopt;
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
        return std::nullopt;
    }
    return std::move(loaded.config);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc == 2 && std::string_view(argv[1]) == "--step-host") {
        // Started by systemd as a sandboxed build's service, its stdin a
        // socket to the worker; never by hand (worker/step_host.hpp).
        return by::worker::step_host::run_host(STDIN_FILENO);
    }
    by::log::init("buildyard-workerd");

    by::po::options_description options("Options");
    options.add_options()
        ("name", by::po::value<std::string>(), "worker name")
        ("latent", by::po::bool_switch(),
         "a latent worker: name, master and token from credentials, the environment, the kernel command line or "
         "the cloud's metadata service")
        ("metadata", by::po::value<std::string>()->default_value("ec2"),
         "with --latent: where the user data is: ec2 (IMDSv2), openstack (its metadata service), config-drive, "
         "or none")
        ("metadata-url", by::po::value<std::string>(),
         "with --latent: the metadata service's URL (default http://169.254.169.254), or the directory the config "
         "drive is mounted on (default /mnt/config)")
        ("config", by::po::value<std::string>(),
         "worker config file (default: " BUILDYARD_SYSCONFDIR "/workers/NAME.ini)")
        ("basedir", by::po::value<std::string>(), "directory the builds run in (overrides the config file)");
    by::po::variables_map vm;
    if (auto code = by::parse_arguments(argc, argv, "buildyard-workerd",
                                        "--name NAME [--config PATH] [--basedir DIR] | --latent [--basedir DIR] [--metadata KIND] [--metadata-url URL]",
                                        options, vm)) {
        return *code;
    }
    by::worker::Options opts;
    opts.latent = vm["latent"].as<bool>();
    if (opts.latent && (vm.count("name") || vm.count("config"))) {
        std::cerr << "buildyard-workerd: --latent takes the name from the instance's identity; "
                     "--name and --config do not go with it\nTry 'buildyard-workerd --help'.\n";
        return 2;
    }
    if (!opts.latent && (vm.count("metadata-url") || !vm["metadata"].defaulted())) {
        std::cerr << "buildyard-workerd: --metadata and --metadata-url go with --latent only\n"
                     "Try 'buildyard-workerd --help'.\n";
        return 2;
    }
    if (!opts.latent && !vm.count("name")) {
        std::cerr << "buildyard-workerd: the option '--name' is required (or --latent)\n"
                     "Try 'buildyard-workerd --help'.\n";
        return 2;
    }
    if (vm.count("basedir")) {
        opts.basedir = vm["basedir"].as<std::string>();
    }
    std::optional<by::config::WorkerSelf> self;
    if (opts.latent) {
        std::optional<by::worker::MetadataSource> metadata;
        if (const auto& kind = vm["metadata"].as<std::string>(); kind != "none") {
            const auto parsed = by::worker::parse_metadata_kind(kind);
            if (!parsed) {
                std::cerr << "buildyard-workerd: --metadata: '" << kind
                          << "' is not ec2, openstack, config-drive or none\n";
                return 2;
            }
            metadata.emplace();
            metadata->kind = *parsed;
            metadata->url = vm.count("metadata-url") ? vm["metadata-url"].as<std::string>()
                                                     : by::worker::default_metadata_url(*parsed);
        }
        self = latent_self(metadata);
    } else {
        std::string name = vm["name"].as<std::string>();
        opts.config_required = vm.count("config") > 0;
        opts.config_file = opts.config_required ? vm["config"].as<std::string>()
                                                : std::string(BUILDYARD_SYSCONFDIR) + "/workers/" + name + ".ini";
        self = configured_self(name, opts);
    }
    if (!self) {
        return 1;  // a configuration error, said above
    }
    // Inherited by every step, and applied to the build directories too.
    ::umask(self->umask);
    // sd-event handles these through signalfd and child sources, which only
    // works while they are blocked. Children get a clean mask (process.cpp).
    sigset_t mask;
    sigemptyset(&mask);
    for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGCHLD}) {
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

    by::worker::Agent agent(event.get(), std::move(*self), std::move(opts));

    struct {
        int sig;
        sd_event_signal_handler_t handler;
    } const handlers[] = {{SIGTERM, on_terminate}, {SIGINT, on_terminate}, {SIGHUP, on_reload}, {SIGUSR1, on_graceful}};
    by::SourcePtr signal_sources[std::size(handlers)];
    for (size_t i = 0; i < std::size(handlers); ++i) {
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
