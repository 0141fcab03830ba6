#include "ctl/outcome.hpp"

#include <cstring>

#include <fmt/format.h>

#include "common/bus.hpp"

namespace by::ctl {
namespace {

constexpr std::string_view buildyard_error_prefix = "org.buildyard.Error.";
constexpr std::string_view default_system_bus = "unix:path=/run/dbus/system_bus_socket";

struct ErrorSentence {
    std::string_view name;  // after "org.buildyard.Error."
    std::string_view sentence;
    bool message_says_it = false;  // the master's message alone is clear
};

// A short sentence per error of the contract; the master's message follows it.
constexpr ErrorSentence sentences[] = {
    {"NoSuchWorker", "no such worker"},
    {"NoSuchBuilder", "no such builder"},
    {"NoSuchBuild", "no such build"},
    {"InvalidArgument", "invalid argument"},
    {"AccessDenied", "access denied"},
    {"AuthFailed", "authentication failed"},
    {"AlreadyAttached", "the worker is already attached"},
    {"NotAttached", "the worker is not attached"},
    {"AlreadyFinished", "build already finished", true},
    {"ConfigInvalid", "the new configuration was rejected; the old one stays in force"},
    {"Busy", "the master is busy"},
    {"Internal", "internal error in buildyard-masterd"},
};

// "SENTENCE: MESSAGE", with the message on lines of its own when it has
// several (ConfigInvalid lists one FILE:LINE error per line).
std::string join_sentence(std::string_view sentence, std::string_view message) {
    if (message.empty()) {
        return std::string(sentence);
    }
    if (message.find('\n') != std::string_view::npos) {
        return fmt::format("{}:\n{}", sentence, message);
    }
    return fmt::format("{}: {}", sentence, message);
}

}  // namespace

int exit_code_for_result(std::string_view result) {
    if (result == "success") {
        return exit_code::success;
    }
    if (result == "exception") {
        return exit_code::exception;
    }
    if (result == "cancelled") {
        return exit_code::cancelled;
    }
    return exit_code::failure;
}

namespace {

// What the bus's policy refused: the system bus lets only root and the group
// buildyard send these (dbus/org.buildyard.Master1.conf).
std::string_view refused_action(std::string_view member) {
    if (member == "ReadLog") {
        return "reading build logs";
    }
    if (member == "SubmitBuild") {
        return "submitting builds";
    }
    return "changing Buildyard";
}

}  // namespace

std::string describe_bus_error(std::string_view name, std::string_view message, int errno_value,
                               std::string_view member) {
    if (name == "org.freedesktop.DBus.Error.ServiceUnknown" ||
        name == "org.freedesktop.DBus.Error.NameHasNoOwner") {
        return fmt::format("buildyard-masterd is not running (nothing owns {} on the system bus)",
                           by::bus::master_name);
    }
    if (name == "org.freedesktop.DBus.Error.AccessDenied") {
        // The bus's own text ("Rejected send message, 2 matched rules; ...")
        // says nothing an admin can act on.
        return fmt::format("permission denied: {} needs root or membership in group buildyard",
                           refused_action(member));
    }
    if (name.starts_with(buildyard_error_prefix)) {
        std::string_view shortname = name.substr(buildyard_error_prefix.size());
        for (const auto& s : sentences) {
            if (s.name == shortname) {
                return s.message_says_it && !message.empty() ? std::string(message)
                                                             : join_sentence(s.sentence, message);
            }
        }
        return join_sentence(shortname, message);
    }
    if (!message.empty()) {
        return name.empty() ? std::string(message) : fmt::format("{} ({})", message, name);
    }
    if (!name.empty()) {
        return std::string(name);
    }
    return errno_value > 0 ? std::strerror(errno_value) : "unknown error";
}

Failure bus_failure(std::string_view name, std::string_view message, int errno_value,
                    std::string_view member) {
    int code = name == by::bus::error::ConfigInvalid ? exit_code::failure : exit_code::bus;
    return Failure{code, describe_bus_error(name, message, errno_value, member)};
}

Failure connect_failure(int errno_value, std::string_view env_address) {
    if (env_address.empty()) {
        return Failure{exit_code::bus,
                       fmt::format("cannot connect to the system bus at {}: {}\n"
                                   "Is dbus running (systemctl status dbus)? For a private bus, such as the one "
                                   "`tests/quickstart.sh --keep` leaves running, set "
                                   "DBUS_SYSTEM_BUS_ADDRESS=unix:path=DIR/bus as it prints.",
                                   default_system_bus, std::strerror(errno_value))};
    }
    return Failure{exit_code::bus,
                   fmt::format("cannot connect to the system bus at DBUS_SYSTEM_BUS_ADDRESS={}: {}\n"
                               "That bus is gone (was the quickstart stopped?); unset DBUS_SYSTEM_BUS_ADDRESS "
                               "to use the machine's system bus.",
                               env_address, std::strerror(errno_value))};
}

}  // namespace by::ctl
