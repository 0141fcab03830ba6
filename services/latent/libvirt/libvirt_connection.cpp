#include "latent/libvirt/libvirt_connection.hpp"

#include <libvirt/virterror.h>
#include <libxml/parser.h>

#include "latent/libvirt/libvirt_domain_xml.hpp"

namespace by::latent::libvirt {

namespace {

// libvirt prints every error to stderr unless given a handler; ours keep
// them as values (virGetLastErrorMessage) for the caller to report once.
void ignore_error(void*, virErrorPtr) {}

std::once_flag init_once;

std::string describe(int state, int reason) {
    switch (state) {
    case VIR_DOMAIN_RUNNING: return "running";
    case VIR_DOMAIN_BLOCKED: return "blocked";
    case VIR_DOMAIN_SHUTDOWN: return "shutting down";
    case VIR_DOMAIN_PMSUSPENDED: return "suspended by the guest";
    case VIR_DOMAIN_PAUSED:
        switch (reason) {
        case VIR_DOMAIN_PAUSED_IOERROR: return "paused after an I/O error";
        case VIR_DOMAIN_PAUSED_CRASHED: return "paused after the guest crashed";
        case VIR_DOMAIN_PAUSED_SHUTTING_DOWN: return "paused while shutting down";
        default: return "paused";
        }
    case VIR_DOMAIN_SHUTOFF:
        switch (reason) {
        case VIR_DOMAIN_SHUTOFF_SHUTDOWN: return "shut off: the guest shut down";
        case VIR_DOMAIN_SHUTOFF_DESTROYED: return "shut off: destroyed";
        case VIR_DOMAIN_SHUTOFF_CRASHED: return "shut off: the guest crashed";
        case VIR_DOMAIN_SHUTOFF_FAILED: return "shut off: it failed to start";
        default: return "shut off";
        }
    case VIR_DOMAIN_CRASHED: return "crashed";
    default: return "in no known state";
    }
}

}  // namespace

ConnectionPool::ConnectionPool() {
    std::call_once(init_once, [] {
        // Both must run once before threads use the libraries.
        virInitialize();
        xmlInitParser();
        virSetErrorFunc(nullptr, ignore_error);
    });
}

Outcome<ConnectPtr> ConnectionPool::get(const std::string& uri) {
    Entry* entry = nullptr;
    {
        std::lock_guard lock(mutex_);
        auto& slot = entries_[uri];
        if (!slot) {
            slot = std::make_unique<Entry>();
        }
        entry = slot.get();  // entries are never erased, so this stays valid
    }
    std::lock_guard lock(entry->mutex);
    // Without a libvirt event loop nothing reads the socket between calls,
    // so a restarted daemon shows only when a call fails: ask a cheap one
    // first, and open a new connection if it fails.
    unsigned long version = 0;
    if (entry->connection && virConnectIsAlive(entry->connection.get()) == 1 &&
        virConnectGetLibVersion(entry->connection.get(), &version) == 0) {
        return {entry->connection, ""};
    }
    ConnectPtr c = own_connection(virConnectOpen(uri.c_str()));
    if (!c) {
        return {nullptr, "cannot connect to " + uri + ": " + last_error()};
    }
    entry->connection = c;
    return {c, ""};
}

std::vector<ConnectPtr> ConnectionPool::open_connections() const {
    std::vector<Entry*> entries;
    {
        std::lock_guard lock(mutex_);
        for (const auto& [uri, entry] : entries_) {
            entries.push_back(entry.get());
        }
    }
    std::vector<ConnectPtr> out;
    for (Entry* e : entries) {
        std::lock_guard lock(e->mutex);
        if (e->connection) {
            out.push_back(e->connection);
        }
    }
    return out;
}

std::string last_error() {
    const char* m = virGetLastErrorMessage();
    return m ? m : "unknown error";
}

Outcome<DomainPtr> find_domain(virConnectPtr connection, const std::string& name) {
    DomainPtr d(virDomainLookupByName(connection, name.c_str()));
    if (!d && virGetLastErrorCode() != VIR_ERR_NO_DOMAIN) {
        return {nullptr, "cannot look up domain " + name + ": " + last_error()};
    }
    return {std::move(d), ""};
}

Outcome<std::optional<Tag>> domain_tag(virDomainPtr domain) {
    CStringPtr element(virDomainGetMetadata(domain, VIR_DOMAIN_METADATA_ELEMENT, tag_namespace, 0));
    if (!element) {
        const int code = virGetLastErrorCode();
        if (code == VIR_ERR_NO_DOMAIN_METADATA || code == VIR_ERR_NO_DOMAIN) {
            return {};
        }
        const char* name = virDomainGetName(domain);
        return {std::nullopt, "cannot read the metadata of domain " + std::string(name ? name : "?") + ": " +
                                  last_error()};
    }
    return {parse_tag_element(element.get()), ""};
}

DomainState domain_state(virDomainPtr domain) {
    int state = 0;
    int reason = 0;
    if (virDomainGetState(domain, &state, &reason, 0) < 0) {
        return {false, false, "gone"};
    }
    const bool harmful_pause =
        state == VIR_DOMAIN_PAUSED && (reason == VIR_DOMAIN_PAUSED_IOERROR || reason == VIR_DOMAIN_PAUSED_CRASHED);
    const bool running = (state == VIR_DOMAIN_RUNNING || state == VIR_DOMAIN_BLOCKED ||
                          state == VIR_DOMAIN_SHUTDOWN || state == VIR_DOMAIN_PAUSED) &&
                         !harmful_pause;
    return {true, running, describe(state, reason)};
}

}  // namespace by::latent::libvirt
