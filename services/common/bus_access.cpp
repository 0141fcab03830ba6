#include "common/bus_access.hpp"

#include <algorithm>
#include <string>

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <fmt/format.h>

#include "common/bus.hpp"
#include "common/raii.hpp"

namespace by::bus {

bool may_administer(const CallerCreds& c, const std::vector<uid_t>& own_uids, std::optional<gid_t> admin_gid) {
    if (c.uid && (*c.uid == 0 || std::find(own_uids.begin(), own_uids.end(), *c.uid) != own_uids.end())) {
        return true;
    }
    if (!admin_gid) {
        return false;
    }
    return c.groups && std::find(c.groups->begin(), c.groups->end(), *admin_gid) != c.groups->end();
}

void AdmittedCallers::add(const std::string& key) {
    if (capacity_ == 0 || !keys_.insert(key).second) {
        return;
    }
    order_.push_back(key);
    if (order_.size() > capacity_) {
        keys_.erase(order_.front());
        order_.pop_front();
    }
}

namespace {

std::vector<uid_t> own_uids() {
    std::vector<uid_t> uids{geteuid()};
    struct passwd pw {};
    struct passwd* found = nullptr;
    std::string buffer(16384, '\0');
    if (getpwnam_r(master_user, &pw, buffer.data(), buffer.size(), &found) == 0 && found) {
        uids.push_back(found->pw_uid);
    }
    return uids;
}

std::optional<gid_t> admin_gid() {
    // Looked up per call: the group may be created after the daemon starts.
    struct group g {};
    struct group* found = nullptr;
    std::string buffer(16384, '\0');
    if (getgrnam_r(admin_group, &g, buffer.data(), buffer.size(), &found) != 0 || !found) {
        return std::nullopt;
    }
    return found->gr_gid;
}

// Asks the bus driver (GetConnectionCredentials): dbus-daemon takes uid and
// groups from the caller's socket (SO_PEERCRED, SO_PEERGROUPS), so they
// cannot be raced the way /proc can. sd-bus 252 reads no UnixGroupIDs itself.
CallerCreds creds_of(sd_bus_message* m) {
    CallerCreds c;
    sd_bus* bus = sd_bus_message_get_bus(m);
    const char* sender = sd_bus_message_get_sender(m);
    if (!sender || sd_bus_is_bus_client(bus) <= 0) {
        return c;  // peer to peer: nobody vouches for the caller
    }
    sd_bus_error error = SD_BUS_ERROR_NULL;
    sd_bus_message* raw = nullptr;
    int r = sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                               "GetConnectionCredentials", &error, &raw, "s", sender);
    sd_bus_error_free(&error);
    if (r < 0) {
        return c;
    }
    MessagePtr reply(raw);
    if (sd_bus_message_enter_container(raw, 'a', "{sv}") < 0) {
        return c;
    }
    while (sd_bus_message_enter_container(raw, 'e', "sv") > 0) {
        const char* key = nullptr;
        if (sd_bus_message_read_basic(raw, 's', &key) < 0) {
            return c;
        }
        const std::string_view k = key;
        if (k == "UnixUserID") {
            uint32_t uid = 0;
            if (sd_bus_message_read(raw, "v", "u", &uid) < 0) return c;
            c.uid = uid;
        } else if (k == "UnixGroupIDs") {
            if (sd_bus_message_enter_container(raw, 'v', "au") < 0) return c;
            const void* data = nullptr;
            size_t size = 0;
            if (sd_bus_message_read_array(raw, 'u', &data, &size) < 0) return c;
            const auto* gids = static_cast<const uint32_t*>(data);
            c.groups = std::vector<gid_t>(gids, gids + size / sizeof(uint32_t));
            if (sd_bus_message_exit_container(raw) < 0) return c;
        } else if (sd_bus_message_skip(raw, "v") < 0) {
            return c;
        }
        if (sd_bus_message_exit_container(raw) < 0) {
            return c;
        }
    }
    return c;
}

// "BUSID UNIQUENAME" of a call over a bus (unique names are per bus), or
// empty: peer to peer, nobody vouches for the caller.
std::string caller_key(sd_bus_message* m) {
    sd_bus* bus = sd_bus_message_get_bus(m);
    const char* sender = sd_bus_message_get_sender(m);
    sd_id128_t id{};
    if (!sender || sd_bus_is_bus_client(bus) <= 0 || sd_bus_get_bus_id(bus, &id) < 0) {
        return {};
    }
    char text[SD_ID128_STRING_MAX];
    return std::string(sd_id128_to_string(id, text)) + " " + sender;
}

}  // namespace

int require_admin(sd_bus_message* m, sd_bus_error* e, std::string_view action) {
    static AdmittedCallers admitted;
    const std::string key = caller_key(m);
    if (!key.empty() && admitted.contains(key)) {
        return 0;
    }
    if (may_administer(creds_of(m), own_uids(), admin_gid())) {
        if (!key.empty()) {
            admitted.add(key);
        }
        return 0;
    }
    return set_error(e, error::AccessDenied,
                     fmt::format("{} needs root, the daemon's own user, user {} or a member of group {}", action,
                                 master_user, admin_group));
}

}  // namespace by::bus
