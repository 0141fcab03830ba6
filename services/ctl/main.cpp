// buildyardctl: the admin's command line for buildyard-masterd.
// Usage: buildyardctl [--json] COMMAND [ARGS]; exit codes in ctl/outcome.hpp.
#include <iostream>

#include <fmt/format.h>

#include "common/program.hpp"
#include "ctl/args.hpp"
#include "ctl/commands.hpp"

namespace {

std::string synopsis() {
    std::string s = "[--json] COMMAND [ARGS]\n\nCommands:\n";
    for (const auto& c : by::ctl::commands()) {
        std::string head = c.synopsis[0] ? fmt::format("{} {}", c.name, c.synopsis) : c.name;
        s += fmt::format("  {:<42} {}\n", head, c.summary);
    }
    s += "\n'buildyardctl COMMAND --help' shows a command's options.";
    return s;
}

}  // namespace

int main(int argc, char** argv) {
    using namespace by::ctl;
    std::vector<std::string> args(argv + 1, argv + argc);
    CommandLine cl = split_command_line(args);

    // Global options go through the shared parser (--help, --version).
    std::vector<char*> global_argv{argv[0]};
    for (auto& g : cl.global) {
        global_argv.push_back(g.data());
    }
    by::po::options_description options("Options");
    options.add_options()("json", "print one JSON document instead of text");
    by::po::variables_map vm;
    if (auto rc = by::parse_arguments(static_cast<int>(global_argv.size()), global_argv.data(),
                                      program_name, synopsis(), options, vm)) {
        return *rc;
    }
    if (!cl.command) {
        return usage_error(std::cerr, "", "no command given");
    }
    for (const auto& c : commands()) {
        if (*cl.command == c.name) {
            return c.run(Invocation{cl.arguments, vm.count("json") > 0});
        }
    }
    return usage_error(std::cerr, "", fmt::format("unknown command '{}'", *cl.command));
}
