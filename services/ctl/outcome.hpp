// How buildyardctl ends: exit codes, failures as values, and the messages
// that explain D-Bus errors to an admin. Pure code, no bus.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace by::ctl {

// Exit codes of buildyardctl (copied into buildyardctl(1); keep them in step):
//   0  success; for `submit --wait`: the build (or its last rerun) succeeded
//   1  `submit --wait`: the build failed (result "failure", or any result
//      not listed here); `reload`: the master rejected the new configuration
//      (org.buildyard.Error.ConfigInvalid), the old one stays in force
//   2  usage error (bad option, missing argument, malformed -p KEY=VALUE),
//      or a D-Bus error: the master is not running, permission denied, no
//      such worker/builder/build, build already finished, lost connection
//   3  `submit --wait`: the build ended with result "exception"
//   4  `submit --wait`: the build was cancelled (result "cancelled")
namespace exit_code {
inline constexpr int success = 0;
inline constexpr int failure = 1;
inline constexpr int usage = 2;
inline constexpr int bus = 2;
inline constexpr int exception = 3;
inline constexpr int cancelled = 4;
}  // namespace exit_code

// The exit code for a finished build's result ("success", "failure", ...).
int exit_code_for_result(std::string_view result);

// Something went wrong: what to tell the admin and how to exit.
struct Failure {
    int exit_code = exit_code::bus;
    std::string message;
};

// A value or the Failure that prevented it.
template <class T>
class [[nodiscard]] Expected {
public:
    Expected(T value) : v_(std::in_place_index<0>, std::move(value)) {}
    Expected(Failure failure) : v_(std::in_place_index<1>, std::move(failure)) {}

    bool ok() const { return v_.index() == 0; }
    explicit operator bool() const { return ok(); }
    T& operator*() { return std::get<0>(v_); }
    const T& operator*() const { return std::get<0>(v_); }
    T* operator->() { return &std::get<0>(v_); }
    const T* operator->() const { return &std::get<0>(v_); }
    const Failure& error() const { return std::get<1>(v_); }

private:
    std::variant<T, Failure> v_;
};

// Success or a Failure, for calls that return nothing.
using Status = Expected<std::monostate>;
inline Status ok_status() { return Status(std::monostate{}); }

// The message for a failed D-Bus call: `name` and `message` come from the
// sd_bus_error, `errno_value` (positive) from the call's return value, and
// `member` is the method that was called ("ReadLog"), which says what a
// refusal by the bus's policy was about.
std::string describe_bus_error(std::string_view name, std::string_view message, int errno_value,
                               std::string_view member = {});

// describe_bus_error() plus the exit code: 1 for ConfigInvalid, else 2.
Failure bus_failure(std::string_view name, std::string_view message, int errno_value,
                    std::string_view member = {});

// "cannot connect to the system bus ...: <strerror>", and what to do:
// `env_address` is $DBUS_SYSTEM_BUS_ADDRESS, empty when unset.
Failure connect_failure(int errno_value, std::string_view env_address = {});

}  // namespace by::ctl
