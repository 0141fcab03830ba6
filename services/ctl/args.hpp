// Command-line parsing of buildyardctl that needs no bus: splitting global
// options from the command, each command's own options, KEY=VALUE
// properties and build ids.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

#include "ctl/outcome.hpp"
#include "ctl/value.hpp"

namespace by::ctl {

namespace po = boost::program_options;

inline constexpr const char* program_name = "buildyardctl";

// argv after the program name, split at the command: the global options
// before it (none of them takes a value), the command, and its arguments.
// A "--" among the global options ends them; the word after it is the command.
struct CommandLine {
    std::vector<std::string> global;
    std::optional<std::string> command;
    std::vector<std::string> arguments;
};
CommandLine split_command_line(const std::vector<std::string>& args);

// What `buildyardctl COMMAND --help` prints.
struct CommandHelp {
    std::string name;      // "submit"
    std::string synopsis;  // "BUILDER [-p KEY=VALUE]... [--wait]"
    std::string summary;   // what the command does, a few lines
};

// Parses a command's arguments into vm. Adds --help (prints the command's
// help to out) and --json (the global option, also accepted after the
// command). Returns an exit code when the command should stop now: 0 after
// --help, exit_code::usage after an error (reported on err), nullopt to go on.
std::optional<int> parse_command_arguments(const CommandHelp& help,
                                           const std::vector<std::string>& args,
                                           po::options_description& options,
                                           const po::options_description* hidden,
                                           const po::positional_options_description* positional,
                                           po::variables_map& vm, std::ostream& out,
                                           std::ostream& err);

// Reports a usage error of a command on err ("buildyardctl: MESSAGE" and a
// hint to --help) and returns exit_code::usage.
int usage_error(std::ostream& err, const std::string& command, const std::string& message);

// "KEY=VALUE": splits at the first '='; the value may be empty or contain
// '=', the key may not be empty.
Expected<std::pair<std::string, std::string>> parse_property(const std::string& arg);

// Every -p argument; a later KEY replaces an earlier one.
Expected<StringMap> parse_properties(const std::vector<std::string>& args);

// A non-negative decimal number (a build id, a --limit); `what` names it in
// the error ("build id").
Expected<uint64_t> parse_number(const std::string& arg, const std::string& what);

}  // namespace by::ctl
