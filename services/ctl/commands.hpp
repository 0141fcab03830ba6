// The commands of buildyardctl. Each one parses its own arguments, talks to
// the master through a Client and returns the process's exit code.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ctl/args.hpp"
#include "ctl/outcome.hpp"
#include "ctl/value.hpp"

namespace by::ctl {

struct Invocation {
    std::vector<std::string> arguments;  // after the command's name
    bool json = false;                   // --json given before the command
};

struct Command {
    const char* name;
    const char* synopsis;  // arguments, for the global --help
    const char* summary;      // a few words, for the global --help
    const char* description;  // for COMMAND --help
    int (*run)(const Invocation&);
};

// Every command, in the order `buildyardctl --help` lists them.
std::span<const Command> commands();

// Parses a command's own arguments (see parse_command_arguments) with the
// help text from commands(); stdout and stderr are the streams.
std::optional<int> parse_invocation(const Invocation& inv, const char* name,
                                    po::options_description& options,
                                    const po::options_description* hidden,
                                    const po::positional_options_description* positional,
                                    po::variables_map& vm);

// For commands taking one build ID: parses the arguments with `options`
// and sets `id`. Returns an exit code when the command should stop now.
std::optional<int> parse_build_id_invocation(const Invocation& inv, const char* name,
                                             po::options_description& options, po::variables_map& vm,
                                             uint64_t& id);

// --json before or after the command.
bool wants_json(const Invocation& inv, const po::variables_map& vm);

// Prints "buildyardctl: MESSAGE" on stderr and returns the failure's exit code.
int report(const Failure& failure);

// Prints a JSON document (and a newline) on stdout; returns exit_code::success.
int print_json(const nlohmann::json& document);

// Each in its own file: commands_query.cpp, commands_build.cpp,
// commands_log.cpp, commands_admin.cpp.
int run_status(const Invocation& inv);
int run_workers(const Invocation& inv);
int run_builds(const Invocation& inv);
int run_submit(const Invocation& inv);
int run_cancel(const Invocation& inv);
int run_log(const Invocation& inv);
int run_pause(const Invocation& inv);
int run_unpause(const Invocation& inv);
int run_shutdown(const Invocation& inv);
int run_reload(const Invocation& inv);

}  // namespace by::ctl
