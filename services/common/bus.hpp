// Small sd-bus helpers shared by the daemons and buildyardctl.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <systemd/sd-bus.h>

#include "common/raii.hpp"

namespace by::bus {

inline constexpr const char* master_name = "org.buildyard.Master1";
inline constexpr const char* master_path = "/org/buildyard/Master1";
inline constexpr const char* worker_prefix = "/org/buildyard/Master1/worker";
inline constexpr const char* builder_prefix = "/org/buildyard/Master1/builder";
inline constexpr const char* build_prefix = "/org/buildyard/Master1/build";
inline constexpr const char* agent_path = "/org/buildyard/Agent1";
inline constexpr const char* latent_name = "org.buildyard.Latent1";
inline constexpr const char* latent_path = "/org/buildyard/Latent1";

inline constexpr const char* master_iface = "org.buildyard.Master1";
inline constexpr const char* worker_iface = "org.buildyard.Worker1";
inline constexpr const char* builder_iface = "org.buildyard.Builder1";
inline constexpr const char* build_iface = "org.buildyard.Build1";
inline constexpr const char* link_iface = "org.buildyard.WorkerLink1";
inline constexpr const char* agent_iface = "org.buildyard.Agent1";
inline constexpr const char* latent_iface = "org.buildyard.Latent1";

// Error names of the public contract (buildyard-dbus(7)).
namespace error {
inline constexpr const char* NoSuchWorker = "org.buildyard.Error.NoSuchWorker";
inline constexpr const char* NoSuchBuilder = "org.buildyard.Error.NoSuchBuilder";
inline constexpr const char* NoSuchBuild = "org.buildyard.Error.NoSuchBuild";
inline constexpr const char* InvalidArgument = "org.buildyard.Error.InvalidArgument";
inline constexpr const char* AccessDenied = "org.buildyard.Error.AccessDenied";
inline constexpr const char* AuthFailed = "org.buildyard.Error.AuthFailed";
inline constexpr const char* AlreadyAttached = "org.buildyard.Error.AlreadyAttached";
inline constexpr const char* NotAttached = "org.buildyard.Error.NotAttached";
inline constexpr const char* AlreadyFinished = "org.buildyard.Error.AlreadyFinished";
inline constexpr const char* ConfigInvalid = "org.buildyard.Error.ConfigInvalid";
inline constexpr const char* Busy = "org.buildyard.Error.Busy";
inline constexpr const char* Internal = "org.buildyard.Error.Internal";
// Latent1 (buildyard-latentd).
inline constexpr const char* BackendFailed = "org.buildyard.Error.BackendFailed";
inline constexpr const char* Timeout = "org.buildyard.Error.Timeout";
inline constexpr const char* NoSuchInstance = "org.buildyard.Error.NoSuchInstance";
}  // namespace error

// sd_bus_error_set with `message` made UTF-8 first: an error reply whose
// text is not UTF-8 cannot be sent, and sd-bus then closes the connection.
int set_error(sd_bus_error* e, const char* name, std::string_view message);

using StringMap = std::map<std::string, std::string>;

// a{ss}
int read_string_map(sd_bus_message* m, StringMap& out);
int append_string_map(sd_bus_message* m, const StringMap& map);
// as
int read_strv(sd_bus_message* m, std::vector<std::string>& out);
int append_strv(sd_bus_message* m, const std::vector<std::string>& v);

// sd_bus_path_encode / _decode with std::string. path_decode() takes only
// the path path_encode() makes: other escapes of the same text are not it.
std::string path_encode(const char* prefix, const std::string& id);
std::optional<std::string> path_decode(const char* path, const char* prefix);

// Opens the system bus (DBUS_SYSTEM_BUS_ADDRESS moves it). Negative errno on failure.
int open_system(BusPtr& out);

// Microseconds since the epoch (CLOCK_REALTIME), as the contract's timestamps.
uint64_t now_realtime_usec();

}  // namespace by::bus
