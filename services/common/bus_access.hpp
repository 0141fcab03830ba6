// Who may change things: the daemons check a caller's credentials
// themselves, so that a permissive or broken bus policy opens nothing
// (buildyard-dbus(7), ACCESS).
#pragma once

#include <cstddef>
#include <deque>
#include <optional>
#include <set>
#include <string>
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

// Callers already admitted, by bus id and unique name. dbus-daemon takes a
// connection's credentials once, when it connects, and never gives its
// unique name to another connection, so the verdict holds for as long as
// the name is remembered, also once the caller is gone: the master sends
// latentd StopAll without waiting for the answer and exits, and by the time
// latentd handles the call the bus driver no longer knows the name.
// Only admissions are remembered, the oldest forgotten past `capacity`.
class AdmittedCallers {
public:
    explicit AdmittedCallers(std::size_t capacity = 256) : capacity_(capacity) {}
    bool contains(const std::string& key) const { return keys_.contains(key); }
    void add(const std::string& key);
    std::size_t size() const { return keys_.size(); }

private:
    std::size_t capacity_;
    std::set<std::string> keys_;
    std::deque<std::string> order_;  // oldest first
};

// For a method handler: 0 when the sender of `m` may administer; otherwise
// sets org.buildyard.Error.AccessDenied on `e` (saying that `action` needs
// root or group buildyard) and returns its negative errno.
int require_admin(sd_bus_message* m, sd_bus_error* e, std::string_view action);

}  // namespace by::bus
