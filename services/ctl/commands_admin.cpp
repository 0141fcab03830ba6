// pause, unpause, shutdown, reload: the commands that change the master.
#include <iostream>

#include <nlohmann/json.hpp>

#include "ctl/client.hpp"
#include "ctl/commands.hpp"

namespace by::ctl {
namespace {

// Parses "COMMAND NAME [options]" and resolves NAME with GetWorker. On
// success the client is connected and worker_path set; otherwise the exit
// code is returned.
std::optional<int> resolve_worker(const Invocation& inv, const char* command,
                                  po::options_description& options, po::variables_map& vm,
                                  std::optional<Client>& client, std::string& worker_path) {
    po::options_description hidden;
    hidden.add_options()("name", po::value<std::string>());
    po::positional_options_description positional;
    positional.add("name", 1);
    if (auto rc = parse_invocation(inv, command, options, &hidden, &positional, vm)) {
        return rc;
    }
    if (!vm.count("name")) {
        return usage_error(std::cerr, command, "missing NAME");
    }
    auto c = Client::connect();
    if (!c) {
        return report(c.error());
    }
    auto path = c->get_worker(vm["name"].as<std::string>());
    if (!path) {
        return report(path.error());
    }
    client.emplace(std::move(*c));
    worker_path = std::move(*path);
    return std::nullopt;
}

int finish(const Invocation& inv, const po::variables_map& vm, const Status& status) {
    if (!status) {
        return report(status.error());
    }
    return wants_json(inv, vm) ? print_json({{"ok", true}}) : exit_code::success;
}

}  // namespace

int run_pause(const Invocation& inv) {
    po::options_description options("Options");
    options.add_options()  //
        ("reason,r", po::value<std::string>()->default_value("")->value_name("TEXT"),
         "why the worker is paused; shown by `workers`");
    po::variables_map vm;
    std::optional<Client> client;
    std::string path;
    if (auto rc = resolve_worker(inv, "pause", options, vm, client, path)) {
        return *rc;
    }
    return finish(inv, vm, client->pause(path, vm["reason"].as<std::string>()));
}

int run_unpause(const Invocation& inv) {
    po::options_description options("Options");
    po::variables_map vm;
    std::optional<Client> client;
    std::string path;
    if (auto rc = resolve_worker(inv, "unpause", options, vm, client, path)) {
        return *rc;
    }
    return finish(inv, vm, client->unpause(path));
}

int run_shutdown(const Invocation& inv) {
    po::options_description options("Options");
    options.add_options()  //
        ("graceful", "let the running builds finish first");
    po::variables_map vm;
    std::optional<Client> client;
    std::string path;
    if (auto rc = resolve_worker(inv, "shutdown", options, vm, client, path)) {
        return *rc;
    }
    return finish(inv, vm, client->shutdown(path, vm.count("graceful") > 0));
}

int run_reload(const Invocation& inv) {
    po::options_description options("Options");
    po::variables_map vm;
    if (auto rc = parse_invocation(inv, "reload", options, nullptr, nullptr, vm)) {
        return *rc;
    }
    auto client = Client::connect();
    if (!client) {
        return report(client.error());
    }
    // ConfigInvalid maps to exit code 1 with the master's FILE:LINE errors.
    if (auto status = client->reload(); !status) {
        return report(status.error());
    }
    // What is now in force, from the master itself.
    auto described = client->describe();
    if (!described) {
        return report(described.error());
    }
    const auto state = nlohmann::json::parse(*described, nullptr, false);
    if (state.is_discarded() || !state.contains("workers") || !state.contains("builders")) {
        return report(Failure{exit_code::bus, "reloaded, but the master's Describe reply is not the expected JSON"});
    }
    const auto workers = state["workers"].size();
    const auto builders = state["builders"].size();
    if (wants_json(inv, vm)) {
        return print_json({{"ok", true}, {"workers", workers}, {"builders", builders}});
    }
    std::cout << "reloaded: " << workers << (workers == 1 ? " worker, " : " workers, ") << builders
              << (builders == 1 ? " builder\n" : " builders\n");
    return exit_code::success;
}

}  // namespace by::ctl
