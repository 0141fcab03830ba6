#include "ctl/args.hpp"

#include <charconv>
#include <ostream>

#include <fmt/format.h>

namespace by::ctl {

CommandLine split_command_line(const std::vector<std::string>& args) {
    CommandLine cl;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        bool is_option = a.size() > 1 && a[0] == '-';
        if (a == "--") {
            if (i + 1 < args.size()) {
                cl.command = args[i + 1];
                cl.arguments.assign(args.begin() + static_cast<std::ptrdiff_t>(i) + 2, args.end());
            }
            break;
        }
        if (!is_option) {
            cl.command = a;
            cl.arguments.assign(args.begin() + static_cast<std::ptrdiff_t>(i) + 1, args.end());
            break;
        }
        cl.global.push_back(a);
    }
    return cl;
}

std::optional<int> parse_command_arguments(const CommandHelp& help,
                                           const std::vector<std::string>& args,
                                           po::options_description& options,
                                           const po::options_description* hidden,
                                           const po::positional_options_description* positional,
                                           po::variables_map& vm, std::ostream& out,
                                           std::ostream& err) {
    options.add_options()                                   //
        ("json", "print one JSON document instead of text")  //
        ("help,h", "show this help and exit");
    po::options_description all;
    all.add(options);
    if (hidden) {
        all.add(*hidden);
    }
    try {
        po::command_line_parser parser(args);
        parser.options(all);
        if (positional) {
            parser.positional(*positional);
        } else {
            // No operands: any word is an error, reported by Boost.
            static const po::positional_options_description none;
            parser.positional(none);
        }
        po::store(parser.run(), vm);
        if (vm.count("help")) {
            out << "Usage: " << program_name << " [--json] " << help.name;
            if (!help.synopsis.empty()) {
                out << " " << help.synopsis;
            }
            out << "\n\n" << help.summary << "\n\n" << options << "\n";
            return exit_code::success;
        }
        po::notify(vm);
    } catch (const po::error& e) {
        return usage_error(err, help.name, e.what());
    }
    return std::nullopt;
}

int usage_error(std::ostream& err, const std::string& command, const std::string& message) {
    err << program_name << ": " << message << "\nTry '" << program_name;
    if (!command.empty()) {
        err << " " << command;
    }
    err << " --help'.\n";
    return exit_code::usage;
}

Expected<std::pair<std::string, std::string>> parse_property(const std::string& arg) {
    auto eq = arg.find('=');
    if (eq == std::string::npos) {
        return Failure{exit_code::usage,
                       fmt::format("invalid property '{}': expected KEY=VALUE", arg)};
    }
    if (eq == 0) {
        return Failure{exit_code::usage,
                       fmt::format("invalid property '{}': the key is empty", arg)};
    }
    return std::pair{arg.substr(0, eq), arg.substr(eq + 1)};
}

Expected<StringMap> parse_properties(const std::vector<std::string>& args) {
    StringMap props;
    for (const auto& a : args) {
        auto kv = parse_property(a);
        if (!kv) {
            return kv.error();
        }
        props[kv->first] = kv->second;
    }
    return props;
}

Expected<uint64_t> parse_number(const std::string& arg, const std::string& what) {
    uint64_t n = 0;
    const char* begin = arg.data();
    const char* end = arg.data() + arg.size();
    // from_chars takes no sign and no blanks; only digits are left to reject.
    auto [ptr, ec] = std::from_chars(begin, end, n);
    if (arg.empty() || ec != std::errc() || ptr != end) {
        return Failure{exit_code::usage,
                       fmt::format("invalid {} '{}': expected a non-negative number", what, arg)};
    }
    return n;
}

}  // namespace by::ctl
