// Latent workers as libvirt domains: one transient domain per start, named
// buildyard-<master>-<worker>, made from the worker's template with the tag
// in its <metadata>, booting from a fresh qcow2 overlay on the base image.
// See buildyard.ini(5) for the libvirt.* keys. libvirt_backend.cpp makes
// and ends a start's domain and overlay (create, destroy); libvirt_survey.cpp
// looks at what is on the hosts (list, remove, check).
#pragma once

#include <cstdint>
#include <string>

#include "latent/backend.hpp"
#include "latent/libvirt/libvirt_connection.hpp"
#include "latent/libvirt/libvirt_overlay.hpp"

namespace by::latent {

class LibvirtBackend final : public Backend {
public:
    struct Options {
        // latentd's state directory; the default overlay_dir is
        // <state_directory>/overlays.
        std::string state_directory;
        // The program that makes overlays, and how long it may take.
        std::string qemu_img = "qemu-img";
        uint64_t qemu_img_timeout_usec = 60'000'000;
        // How often destroy() looks whether a shut-down domain has gone.
        uint64_t shutdown_poll_usec = 200'000;
    };

    explicit LibvirtBackend(Options options);

    // list: on failure (a URI that cannot be reached, a directory that
    //   cannot be read), `value` still holds what the other URIs and
    //   directories showed.
    // remove: a domain is removed only if it still carries found.tag, an
    //   overlay only if its path is found.tag's. Without `worker`, a domain
    //   is looked for on every URI this backend has connected to.
    // check: gone: no domain, a domain of another start, or one not
    //   running; the log tail is the end of its serial or console log file,
    //   if it has one.
    BY_LATENT_BACKEND_OVERRIDES;

    // The connection used for `uri`, opened on first use and kept. Tests
    // use it to look into (and change) the same test:///default world.
    Outcome<ConnectPtr> connection(const std::string& uri) { return connections_.get(uri); }

    static std::string domain_name(const Tag& tag) { return instance_name(tag); }
    // libvirt.overlay_dir, or <state_directory>/overlays.
    std::string overlay_dir(const config::Worker* worker) const;

private:
    Outcome<std::vector<ConnectPtr>> connections_for(const config::Worker* worker);
    std::string stop_domain(virConnectPtr connection, virDomainPtr domain, uint64_t grace_usec,
                            const Cancelled& cancelled) const;
    std::string log_tail(const std::string& uri, const std::string& name, const std::string& domain_xml) const;

    Options options_;
    libvirt::ConnectionPool connections_;
};

}  // namespace by::latent
