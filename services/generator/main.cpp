// buildyard-generator: a systemd generator. Reads master.ini and master.d/
// and makes buildyard-workers.target want buildyard-worker@NAME.service for
// each worker of type local. See buildyard-workerd(8).
//
// systemd runs it at boot and on every daemon-reload as
//   buildyard-generator NORMAL_DIR EARLY_DIR LATE_DIR
// It never fails the boot: a config that does not load is logged, nothing
// is generated, and it exits 0.

#include <cstdlib>
#include <string>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include "common/config.hpp"
#include "common/program.hpp"
#include "common/raii.hpp"
#include "generator/generate.hpp"

namespace {

// Generators run before the journal, so systemd's own generators log to the
// kernel log. We do that too when systemd runs us ($SYSTEMD_SCOPE is set for
// generators), and write to stderr otherwise.
void report(int priority, const std::string& message) {
    if (std::getenv("SYSTEMD_SCOPE")) {
        by::Fd kmsg(open("/dev/kmsg", O_WRONLY | O_NOCTTY | O_CLOEXEC));
        if (kmsg.get() >= 0) {
            const std::string line = fmt::format("<{}>buildyard-generator[{}]: {}\n", priority, getpid(), message);
            if (write(kmsg.get(), line.data(), line.size()) == static_cast<ssize_t>(line.size())) {
                return;
            }
        }
    }
    const std::string line = fmt::format("buildyard-generator: {}\n", message);
    [[maybe_unused]] auto n = write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace

int main(int argc, char** argv) {
    by::po::options_description options("Options");
    options.add_options()
        ("config", by::po::value<std::string>()->default_value(BUILDYARD_SYSCONFDIR "/master.ini"),
         "master config file; its master.d/ is read too");
    by::po::options_description hidden;
    hidden.add_options()("dirs", by::po::value<std::vector<std::string>>(), "output directories");
    by::po::positional_options_description positional;
    positional.add("dirs", 3);
    by::po::variables_map vm;
    if (auto code = by::parse_arguments(argc, argv, "buildyard-generator",
                                        "[--config PATH] NORMAL_DIR [EARLY_DIR LATE_DIR]", options, vm, &positional,
                                        &hidden)) {
        return *code;
    }
    if (!vm.count("dirs") || vm["dirs"].as<std::vector<std::string>>().size() == 2) {
        report(3, "usage: buildyard-generator [--config PATH] NORMAL_DIR [EARLY_DIR LATE_DIR]");
        return 1;
    }
    const std::string normal_dir = vm["dirs"].as<std::vector<std::string>>()[0];
    const std::string config_file = vm["config"].as<std::string>();

    if (access(config_file.c_str(), F_OK) != 0) {
        return 0;  // not configured yet: no local workers
    }
    auto env = by::config::current_environment();
    env.read_secrets = false;
    const auto loaded = by::config::load(config_file, env);
    if (!loaded.config) {
        report(3, fmt::format("{} does not load, so no local worker is started:", config_file));
        for (const auto& e : loaded.errors) {
            report(3, e.str());
        }
        return 0;
    }
    const auto units = by::generator::local_worker_units(*loaded.config);
    const auto errors = by::generator::write_wants(normal_dir, units, BUILDYARD_WORKER_TEMPLATE);
    for (const auto& e : errors) {
        report(3, e);
    }
    return 0;
}
