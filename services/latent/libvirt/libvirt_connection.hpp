// Connections to libvirt, one per URI, kept open for the life of the backend
// (test:///default forgets every domain when its connection closes) and
// reopened when a daemon connection dies. Safe to use from many threads.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "latent/backend.hpp"
#include "latent/libvirt/libvirt_handles.hpp"

namespace by::latent::libvirt {

class ConnectionPool {
public:
    ConnectionPool();

    // The open connection to `uri`, opened (virConnectOpen, never prompting)
    // on first use or after it died.
    Outcome<ConnectPtr> get(const std::string& uri);

    // Every connection open now.
    std::vector<ConnectPtr> open_connections() const;

private:
    struct Entry {
        std::mutex mutex;  // held while opening, which can take seconds
        ConnectPtr connection;
    };
    mutable std::mutex mutex_;  // guards the map only
    std::map<std::string, std::unique_ptr<Entry>> entries_;
};

// The message of this thread's last libvirt error.
std::string last_error();

// The domain called `name`; a null pointer and no error if there is none.
Outcome<DomainPtr> find_domain(virConnectPtr connection, const std::string& name);

// The owner tag in the domain's metadata; nothing and no error if the
// domain is untagged (or has just gone).
Outcome<std::optional<Tag>> domain_tag(virDomainPtr domain);

// "running", "shut off (destroyed)", ... from virDomainGetState.
struct DomainState {
    bool exists = false;
    bool running = false;  // running, blocked or paused for a harmless reason
    std::string description;
};
DomainState domain_state(virDomainPtr domain);

}  // namespace by::latent::libvirt
