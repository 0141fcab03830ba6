#include "common/program.hpp"

#include <iostream>

#include "version.hpp"

namespace by {

std::optional<int> parse_arguments(int argc, char** argv, const std::string& program,
                                   const std::string& synopsis, po::options_description& options,
                                   po::variables_map& vm,
                                   const po::positional_options_description* positional,
                                   const po::options_description* hidden) {
    options.add_options()("help,h", "show this help and exit")("version", "show the version and exit");
    po::options_description all;
    all.add(options);
    if (hidden) {
        all.add(*hidden);
    }
    try {
        po::command_line_parser parser(argc, argv);
        parser.options(all);
        if (positional) {
            parser.positional(*positional);
        }
        const po::parsed_options parsed = parser.run();
        // Without a positional description, Boost drops positional words
        // silently ("--check-config FILE" would check the default file).
        for (const auto& option : parsed.options) {
            if (option.string_key.empty() && !option.original_tokens.empty()) {
                std::cerr << program << ": unexpected argument '" << option.original_tokens.front()
                          << "'\nUsage: " << program << " " << synopsis << "\nTry '" << program << " --help'.\n";
                return 2;
            }
        }
        po::store(parsed, vm);
        if (vm.count("help")) {
            std::cout << "Usage: " << program << " " << synopsis << "\n\n" << options << "\n";
            return 0;
        }
        if (vm.count("version")) {
            std::cout << program << " " << BUILDYARD_VERSION << "\n";
            return 0;
        }
        po::notify(vm);
    } catch (const po::error& e) {
        std::cerr << program << ": " << e.what() << "\nTry '" << program << " --help'.\n";
        return 2;
    }
    return std::nullopt;
}

}  // namespace by
