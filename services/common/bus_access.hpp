// Who may change things: the daemons check a caller's credentials
// themselves, so that a permissive or broken bus policy opens nothing
// (buildyard-dbus(7), ACCESS).
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include <sys/types.h>
#include <systemd/sd-bus.h>

namespace by::bus {

// Members of this group administer Buildyard; the master runs as the user
// of the same name (which latentd lets in as it does the master itself).
inline constexpr const char* admin_group = "buildyard";
inline constexpr const char* master_user = "buildyard";

// What the bus driver vouches for about a caller; unknown parts are nullopt.
struct CallerCreds {
    std::optional<uid_t> uid;
    std::optional<std::vector<gid_t>> groups;  // every group of the caller's process
};

// The rule, free of I/O: uid 0, one of `own_uids` (the daemon's own uid and
// the master's user), or membership in `admin_gid`. Unknown credentials deny.
bool may_administer(const CallerCreds& c, const std::vector<uid_t>& own_uids, std::optional<gid_t> admin_gid);

// For a method handler: 0 when the sender of `m` may administer; otherwise
// sets org.buildyard.Error.AccessDenied on `e` (saying that `action` needs
// root or group buildyard) and returns its negative errno.
int require_admin(sd_bus_message* m, sd_bus_error* e, std::string_view action);

}  // namespace by::bus
