#include "ctl/commands.hpp"

#include <iostream>
#include <string_view>

namespace by::ctl {
namespace {

constexpr Command table[] = {
    {"status", "", "Show the master's state in brief",
     "Show the master's version and name, the number of declared workers, and how many\n"
     "workers are connected and how many builds are running and pending.",
     run_status},
    {"workers", "", "List the workers",
     "List the workers: type, state, running builds and the limit, when the worker\n"
     "connected, its host, and notes such as a pause and its reason.",
     run_workers},
    {"builds", "[--limit N]", "List the newest builds",
     "List the newest builds first: 20 of them, or N with --limit (0: all).", run_builds},
    {"submit", "BUILDER [-p KEY=VALUE]... [--wait]", "Submit a build and print its id",
     "Submit a build of BUILDER with the given properties and print its id. With --wait,\n"
     "wait until the request has a final result, following reruns of builds that ended\n"
     "\"retry\", print \"build ID: RESULT\" and exit 0 (success), 1 (failure),\n"
     "3 (exception) or 4 (cancelled).",
     run_submit},
    {"log", "ID [--follow]", "Print a build's log",
     "Print the log of build ID as it is. With --follow, keep printing new output\n"
     "until the build has finished. With --json, print one object with the id, path,\n"
     "state, result and the whole log (after --follow: once the build has finished).",
     run_log},
    {"cancel", "ID", "Cancel a build", "Cancel build ID, pending or running.", run_cancel},
    {"pause", "NAME [--reason TEXT]", "Give a worker no new builds",
     "Give worker NAME no new builds until it is unpaused; its running builds go on.",
     run_pause},
    {"unpause", "NAME", "Let a paused worker take builds", "Let worker NAME take builds again.",
     run_unpause},
    {"shutdown", "NAME [--graceful]", "Stop a worker",
     "Stop worker NAME now, its running builds ending \"retry\", or with --graceful\n"
     "once its running builds have finished.",
     run_shutdown},
    {"reload", "", "Make the master re-read its configuration",
     "Make the master re-read master.ini and master.d/. A configuration with errors is\n"
     "rejected, the old one stays in force, and the errors are printed (exit code 1).",
     run_reload},
};

const Command* find(std::string_view name) {
    for (const auto& c : table) {
        if (name == c.name) {
            return &c;
        }
    }
    return nullptr;
}

}  // namespace

std::span<const Command> commands() { return table; }

std::optional<int> parse_invocation(const Invocation& inv, const char* name,
                                    po::options_description& options,
                                    const po::options_description* hidden,
                                    const po::positional_options_description* positional,
                                    po::variables_map& vm) {
    const Command* c = find(name);
    CommandHelp help{name, c ? c->synopsis : "", c ? c->description : ""};
    return parse_command_arguments(help, inv.arguments, options, hidden, positional, vm,
                                   std::cout, std::cerr);
}

std::optional<int> parse_build_id_invocation(const Invocation& inv, const char* name,
                                             po::options_description& options, po::variables_map& vm,
                                             uint64_t& id) {
    po::options_description hidden;
    hidden.add_options()("id", po::value<std::string>());
    po::positional_options_description positional;
    positional.add("id", 1);
    if (auto rc = parse_invocation(inv, name, options, &hidden, &positional, vm)) {
        return rc;
    }
    if (!vm.count("id")) {
        return usage_error(std::cerr, name, "missing ID");
    }
    auto parsed = parse_number(vm["id"].as<std::string>(), "build id");
    if (!parsed) {
        return usage_error(std::cerr, name, parsed.error().message);
    }
    id = *parsed;
    return std::nullopt;
}

bool wants_json(const Invocation& inv, const po::variables_map& vm) {
    return inv.json || vm.count("json") > 0;
}

int report(const Failure& failure) {
    std::cout.flush();
    std::cerr << program_name << ": " << failure.message << "\n";
    return failure.exit_code;
}

int print_json(const nlohmann::json& document) {
    std::cout << dump_json(document) << "\n";
    return exit_code::success;
}

}  // namespace by::ctl
