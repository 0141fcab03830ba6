// A start's domain and overlay: made from the worker's template and base
// image (create), and stopped and removed again (destroy).
// libvirt_survey.cpp lists, removes and checks what is found on the hosts.
#include "latent/libvirt/libvirt_backend.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <thread>

#include <libvirt/virterror.h>
#include <unistd.h>

#include "latent/libvirt/libvirt_backend_shared.hpp"
#include "latent/libvirt/libvirt_domain_xml.hpp"

namespace by::latent {

namespace {

// Test knob: with libvirt's test driver nothing boots, so an integration
// test plays the guest. It reads the domain XML that a guest would be given
// (with its token) from this directory. Only for test: URIs.
std::string test_domain_file(const std::string& uri, const std::string& name) {
    const char* dir = std::getenv("BUILDYARD_LATENT_TEST_DOMAIN_DIR");
    if (!dir || !*dir || !uri.starts_with("test:")) {
        return "";
    }
    return std::string(dir) + "/" + name + ".xml";
}

template <class T>
T number_option(const config::Worker* w, const std::string& key) {
    // The config loader has checked the value; a bad one reads as unset.
    const std::string text = libvirt::option(w, key);
    T value = 0;
    std::from_chars(text.data(), text.data() + text.size(), value);
    return value;
}

// Removes the overlay when it goes out of scope, unless kept: create() then
// leaves nothing behind on any early return.
struct OverlayGuard {
    std::string path;
    bool keep = false;
    ~OverlayGuard() {
        if (!path.empty() && !keep) {
            libvirt::remove_overlay(path);
        }
    }
};

}  // namespace

LibvirtBackend::LibvirtBackend(Options options) : options_(std::move(options)) {}

std::string LibvirtBackend::overlay_dir(const config::Worker* worker) const {
    if (auto dir = libvirt::option(worker, "overlay_dir"); !dir.empty()) {
        return dir;
    }
    // latentd's StateDirectory= when it runs without one given.
    const std::string state = options_.state_directory.empty() ? "/var/lib/buildyard-latent" : options_.state_directory;
    return state + "/overlays";
}

Outcome<std::string> LibvirtBackend::create(const StartSpec& spec, const Cancelled& cancelled) {
    const config::Worker* w = spec.worker;
    const Tag& tag = spec.tag;
    if (!w) {
        return {"", "no configuration for worker " + tag.worker};
    }
    if (auto problem = libvirt::tag_problem(tag); !problem.empty()) {
        return {"", problem};
    }
    const std::string uri = libvirt::option(w, "uri");
    const std::string template_path = libvirt::option(w, "xml");
    if (uri.empty() || template_path.empty()) {
        return {"", "worker " + tag.worker + " has no libvirt.uri or libvirt.xml"};
    }
    if (cancelled) {
        return {"", libvirt::cancelled_message};
    }
    auto template_xml = libvirt::read_file(template_path);
    if (!template_xml.ok()) {
        return {"", "cannot read domain template " + template_path + ": " + template_xml.error};
    }
    auto conn = connections_.get(uri);
    if (!conn.ok()) {
        return {"", conn.error};
    }
    const std::string name = domain_name(tag);
    // libvirt refuses a second domain of the same name anyway; asking first
    // gives the admin a message that says whose it is.
    auto existing = libvirt::find_domain(conn.value.get(), name);
    if (!existing.ok()) {
        return {"", existing.error};
    }
    if (existing.value) {
        auto owner = libvirt::domain_tag(existing.value.get());
        const auto state = libvirt::domain_state(existing.value.get());
        if (owner.value && owner.value->master == tag.master && owner.value->worker == tag.worker) {
            return {"", "worker " + tag.worker + " already has a domain on " + uri + ": " + name + " of start " +
                            owner.value->start + " (" + state.description +
                            "); it must be stopped before another start"};
        }
        return {"", "a domain named " + name + " already exists on " + uri + " and is not this worker's: " +
                        libvirt::describe_owner(owner.value) + "; rename or remove it"};
    }

    libvirt::DomainSettings settings{name, tag, spec.master_address, spec.token, "",
                                     number_option<unsigned long long>(w, "memory"), number_option<unsigned>(w, "cpus"),
                                     spec.master_fingerprint};
    OverlayGuard overlay;
    if (const std::string base = libvirt::option(w, "base_image"); !base.empty()) {
        if (cancelled) {
            return {"", libvirt::cancelled_message};
        }
        settings.overlay = libvirt::overlay_path(overlay_dir(w), tag);
        auto made = libvirt::create_overlay({options_.qemu_img, options_.qemu_img_timeout_usec}, base,
                                            settings.overlay, cancelled);
        if (!made.ok()) {
            return {"", made.error};
        }
        overlay.path = settings.overlay;
    }
    auto xml = libvirt::edit_domain_template(template_xml.value, settings);
    if (!xml.ok()) {
        return {"", "domain template " + template_path + ": " + xml.error};
    }
    if (cancelled) {
        return {"", libvirt::cancelled_message};
    }
    DomainPtr domain(virDomainCreateXML(conn.value.get(), xml.value.c_str(), 0));
    if (!domain) {
        return {"", "libvirt could not start domain " + name + " on " + uri + ": " + libvirt::last_error()};
    }
    if (cancelled) {
        // Nobody waits for this domain any more; removing it now spares the
        // reaper the work.
        virDomainDestroy(domain.get());
        return {"", libvirt::cancelled_message};
    }
    overlay.keep = true;
    if (const std::string file = test_domain_file(uri, name); !file.empty()) {
        std::ofstream(file) << xml.value;
    }
    return {name, ""};
}

std::string LibvirtBackend::stop_domain(virConnectPtr connection, virDomainPtr domain, uint64_t grace_usec,
                                        const Cancelled& cancelled) const {
    const std::string name = virDomainGetName(domain) ? virDomainGetName(domain) : "?";
    char uuid[VIR_UUID_STRING_BUFLEN] = {};
    virDomainGetUUIDString(domain, uuid);
    // Asks by UUID each time: a transient domain that shut down is gone,
    // and a new one of the same name is not this one.
    auto active = [&] {
        DomainPtr d(virDomainLookupByUUIDString(connection, uuid));
        return d && virDomainIsActive(d.get()) == 1;
    };
    if (active() && grace_usec > 0 && !cancelled && virDomainShutdown(domain) == 0) {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(grace_usec);
        // A cancelled call skips the rest of the grace: nobody waits for it.
        while (active() && !cancelled && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(std::chrono::microseconds(
                std::min<uint64_t>(options_.shutdown_poll_usec, grace_usec)));
        }
    }
    if (active() && virDomainDestroy(domain) < 0 && active()) {
        return "cannot destroy domain " + name + ": " + libvirt::last_error();
    }
    DomainPtr still(virDomainLookupByUUIDString(connection, uuid));
    if (still && virDomainIsPersistent(still.get()) == 1 && virDomainUndefine(still.get()) < 0) {
        return "cannot undefine domain " + name + ": " + libvirt::last_error();
    }
    return "";
}

Outcome<std::vector<ConnectPtr>> LibvirtBackend::connections_for(const config::Worker* worker) {
    if (!worker) {
        return {connections_.open_connections(), ""};
    }
    auto conn = connections_.get(libvirt::option(worker, "uri"));
    if (!conn.ok()) {
        return {{}, conn.error};
    }
    return {{conn.value}, ""};
}

Outcome<bool> LibvirtBackend::destroy(const Tag& tag, const config::Worker* worker, uint64_t grace_usec,
                                      const Cancelled& cancelled) {
    if (auto problem = libvirt::tag_problem(tag); !problem.empty()) {
        return {false, problem};
    }
    std::vector<std::string> errors;
    auto conns = connections_for(worker);
    if (!conns.ok()) {
        errors.push_back(conns.error);
    }
    const std::string name = domain_name(tag);
    if (const std::string file = test_domain_file(libvirt::option(worker, "uri"), name); !file.empty()) {
        ::unlink(file.c_str());
    }
    for (const auto& conn : conns.value) {
        auto domain = libvirt::find_domain(conn.get(), name);
        if (!domain.ok()) {
            errors.push_back(domain.error);
            continue;
        }
        if (!domain.value) {
            continue;
        }
        // A domain of another start (a leak) or of someone else is not this
        // call's to stop.
        auto owner = libvirt::domain_tag(domain.value.get());
        if (!owner.ok()) {
            errors.push_back(owner.error);
        } else if (owner.value == tag) {
            if (auto problem = stop_domain(conn.get(), domain.value.get(), grace_usec, cancelled); !problem.empty()) {
                errors.push_back(problem);
            }
        }
    }
    // Always, even when the domain would not go: a running qemu keeps its
    // open file, and the disk space comes back when it ends.
    if (auto removed = libvirt::remove_overlay(libvirt::overlay_path(overlay_dir(worker), tag)); !removed.ok()) {
        errors.push_back(removed.error);
    }
    return {errors.empty(), libvirt::join(errors)};
}

}  // namespace by::latent
