// Argument parsing shared by every program: Boost.Program_options with
// --help and --version handled the same way everywhere.
#pragma once

#include <optional>
#include <string>

#include <boost/program_options.hpp>

namespace by {

namespace po = boost::program_options;

// Parses argv into vm. Returns an exit code when the program should stop
// now (after --help, --version or a usage error), nullopt to go on.
std::optional<int> parse_arguments(int argc, char** argv, const std::string& program,
                                   const std::string& synopsis, po::options_description& options,
                                   po::variables_map& vm,
                                   const po::positional_options_description* positional = nullptr,
                                   const po::options_description* hidden = nullptr);

}  // namespace by
