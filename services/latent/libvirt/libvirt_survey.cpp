// What the libvirt backend finds on its hosts: the domains and overlays
// tagged with a master (list), the removal of one of them (remove), and
// whether a start's domain still runs, with the end of its log (check).
// libvirt_backend.cpp makes and ends the domain and overlay of a start.
#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <set>

#include <libvirt/virterror.h>

#include "latent/libvirt/libvirt_backend.hpp"
#include "latent/libvirt/libvirt_backend_shared.hpp"
#include "latent/libvirt/libvirt_domain_xml.hpp"

namespace by::latent {

namespace {

constexpr size_t log_tail_lines = 50;
constexpr std::streamoff log_tail_bytes = 64 * 1024;

// The last lines of a log file, reading no more than its end.
std::string tail_of_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return "";
    }
    in.seekg(0, std::ios::end);
    const std::streamoff size = in.tellg();
    in.seekg(std::max<std::streamoff>(0, size - log_tail_bytes));
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    size_t lines = 0;
    size_t pos = text.size();
    if (pos > 0 && text[pos - 1] == '\n') {
        --pos;
    }
    while (pos > 0) {
        const size_t nl = text.rfind('\n', pos - 1);
        if (nl == std::string::npos) {
            return text;
        }
        if (++lines == log_tail_lines) {
            return text.substr(nl + 1);
        }
        pos = nl;
    }
    return text;
}

}  // namespace

Outcome<std::vector<Found>> LibvirtBackend::list(const std::string& master,
                                                 const std::vector<const config::Worker*>& workers,
                                                 const Cancelled& cancelled) {
    Outcome<std::vector<Found>> out;
    std::vector<std::string> errors;
    std::set<std::string> uris;
    std::set<std::string> dirs;
    for (const config::Worker* w : workers) {
        if (w && !libvirt::option(w, "uri").empty()) {
            uris.insert(libvirt::option(w, "uri"));
            dirs.insert(overlay_dir(w));
        }
    }
    // Domains before overlays: remove() in this order stops a domain before
    // its disk goes.
    for (const auto& uri : uris) {
        if (cancelled) {
            errors.emplace_back(libvirt::cancelled_message);
            break;
        }
        auto conn = connections_.get(uri);
        if (!conn.ok()) {
            errors.push_back(conn.error);
            continue;
        }
        virDomainPtr* raw = nullptr;
        const int n = virConnectListAllDomains(conn.value.get(), &raw, 0);
        if (n < 0) {
            errors.push_back("cannot list the domains on " + uri + ": " + libvirt::last_error());
            continue;
        }
        std::vector<DomainPtr> domains;
        for (int i = 0; i < n; ++i) {
            domains.emplace_back(raw[i]);
        }
        std::free(raw);
        for (const auto& d : domains) {
            auto tag = libvirt::domain_tag(d.get());
            if (!tag.ok()) {
                errors.push_back(tag.error);
            } else if (tag.value && tag.value->master == master) {
                out.value.push_back(
                    Found{*tag.value, "domain", virDomainGetName(d.get()), libvirt::domain_state(d.get()).running});
            }
        }
    }
    for (const auto& dir : dirs) {
        auto overlays = libvirt::list_overlays(dir, master);
        if (!overlays.ok()) {
            errors.push_back(overlays.error);
        }
        out.value.insert(out.value.end(), overlays.value.begin(), overlays.value.end());
    }
    out.error = libvirt::join(errors);
    return out;
}

Outcome<bool> LibvirtBackend::remove(const Found& found, const config::Worker* worker, const Cancelled& cancelled) {
    if (found.kind == "overlay") {
        if (libvirt::parse_overlay_path(found.id) != found.tag) {
            return {false, found.id + " is not an overlay of start " + found.tag.start + ": left alone"};
        }
        return libvirt::remove_overlay(found.id);
    }
    if (found.kind != "domain") {
        return {false, "the libvirt backend has no " + found.kind + " to remove"};
    }
    auto conns = connections_for(worker);
    if (!conns.ok()) {
        return {false, conns.error};
    }
    std::vector<std::string> errors;
    for (const auto& conn : conns.value) {
        auto domain = libvirt::find_domain(conn.get(), found.id);
        if (!domain.ok() || !domain.value) {
            if (!domain.ok()) {
                errors.push_back(domain.error);
            }
            continue;
        }
        auto owner = libvirt::domain_tag(domain.value.get());
        if (!owner.ok()) {
            errors.push_back(owner.error);
        } else if (owner.value != found.tag) {
            errors.push_back("domain " + found.id + " changed since it was listed (" +
                             libvirt::describe_owner(owner.value) + "): left alone");
        } else if (auto problem = stop_domain(conn.get(), domain.value.get(), 0, cancelled); !problem.empty()) {
            errors.push_back(problem);
        }
    }
    if (worker) {
        if (auto removed = libvirt::remove_overlay(libvirt::overlay_path(overlay_dir(worker), found.tag));
            !removed.ok()) {
            errors.push_back(removed.error);
        }
    }
    return {errors.empty(), libvirt::join(errors)};
}

std::string LibvirtBackend::log_tail(const std::string& uri, const std::string& name,
                                     const std::string& domain_xml) const {
    for (const auto& path : libvirt::console_log_files(domain_xml)) {
        if (auto tail = tail_of_file(path); !tail.empty()) {
            return tail;
        }
    }
    // Without a console log, qemu's own log says at least why it ended.
    if (uri == "qemu:///system") {
        return tail_of_file("/var/log/libvirt/qemu/" + name + ".log");
    }
    return "";
}

Outcome<HealthReport> LibvirtBackend::check(const Tag& tag, const config::Worker* worker,
                                            const Cancelled& cancelled) {
    if (auto problem = libvirt::tag_problem(tag); !problem.empty()) {
        return {{}, problem};
    }
    if (!worker) {
        return {{}, "no configuration for worker " + tag.worker};
    }
    if (cancelled) {
        return {{}, libvirt::cancelled_message};
    }
    const std::string uri = libvirt::option(worker, "uri");
    auto conn = connections_.get(uri);
    if (!conn.ok()) {
        return {{}, conn.error};
    }
    const std::string name = domain_name(tag);
    auto domain = libvirt::find_domain(conn.value.get(), name);
    if (!domain.ok()) {
        return {{}, domain.error};
    }
    HealthReport report;
    report.health = Health::gone;
    std::string xml_for_logs;
    if (!domain.value) {
        report.reason = "domain " + name + " is gone (it shut down, crashed or was destroyed)";
    } else {
        auto owner = libvirt::domain_tag(domain.value.get());
        if (!owner.ok()) {
            return {{}, owner.error};
        }
        const auto state = libvirt::domain_state(domain.value.get());
        if (owner.value != tag) {
            report.reason = "domain " + name + " is not this start's: " + libvirt::describe_owner(owner.value);
        } else if (state.running) {
            report.health = Health::running;
            return {report, ""};
        } else {
            report.reason = "domain " + name + " is " + state.description;
        }
        CStringPtr xml(virDomainGetXMLDesc(domain.value.get(), 0));
        if (xml) {
            xml_for_logs = xml.get();
        }
    }
    if (xml_for_logs.empty()) {
        // A transient domain leaves nothing behind; its template names the
        // same log files.
        xml_for_logs = libvirt::read_file(libvirt::option(worker, "xml")).value;
    }
    report.log_tail = log_tail(uri, name, xml_for_logs);
    return {report, ""};
}

}  // namespace by::latent
