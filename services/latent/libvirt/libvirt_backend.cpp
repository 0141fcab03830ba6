#include "latent/libvirt/libvirt_backend.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include <libvirt/virterror.h>
#include <unistd.h>

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

constexpr size_t log_tail_lines = 50;
constexpr std::streamoff log_tail_bytes = 64 * 1024;

std::string option(const config::Worker* w, const std::string& key) {
    if (!w) {
        return "";
    }
    auto it = w->backend_options.find("libvirt." + key);
    return it == w->backend_options.end() ? "" : it->second;
}

template <class T>
T number_option(const config::Worker* w, const std::string& key) {
    // The config loader has checked the value; a bad one reads as unset.
    const std::string text = option(w, key);
    T value = 0;
    std::from_chars(text.data(), text.data() + text.size(), value);
    return value;
}

Outcome<std::string> read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return {"", std::string(std::strerror(errno))};
    }
    std::ostringstream s;
    s << in.rdbuf();
    return {s.str(), ""};
}

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

std::string join(const std::vector<std::string>& parts) {
    std::string out;
    for (const auto& p : parts) {
        out += (out.empty() ? "" : "; ") + p;
    }
    return out;
}

std::string describe_owner(const std::optional<Tag>& tag) {
    if (!tag) {
        return "it carries no buildyard tag";
    }
    return "it belongs to worker " + tag->worker + " of master " + tag->master + " (start " + tag->start + ")";
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

const char* const cancelled_message = "cancelled: the call's deadline passed";

}  // namespace

LibvirtBackend::LibvirtBackend(Options options) : options_(std::move(options)) {}

std::string LibvirtBackend::overlay_dir(const config::Worker* worker) const {
    if (auto dir = option(worker, "overlay_dir"); !dir.empty()) {
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
    const std::string uri = option(w, "uri");
    const std::string template_path = option(w, "xml");
    if (uri.empty() || template_path.empty()) {
        return {"", "worker " + tag.worker + " has no libvirt.uri or libvirt.xml"};
    }
    if (cancelled) {
        return {"", cancelled_message};
    }
    auto template_xml = read_file(template_path);
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
                        describe_owner(owner.value) + "; rename or remove it"};
    }

    libvirt::DomainSettings settings{name, tag, spec.master_address, spec.token, "",
                                     number_option<unsigned long long>(w, "memory"), number_option<unsigned>(w, "cpus"),
                                     spec.master_fingerprint};
    OverlayGuard overlay;
    if (const std::string base = option(w, "base_image"); !base.empty()) {
        if (cancelled) {
            return {"", cancelled_message};
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
        return {"", cancelled_message};
    }
    DomainPtr domain(virDomainCreateXML(conn.value.get(), xml.value.c_str(), 0));
    if (!domain) {
        return {"", "libvirt could not start domain " + name + " on " + uri + ": " + libvirt::last_error()};
    }
    if (cancelled) {
        // Nobody waits for this domain any more; removing it now spares the
        // reaper the work.
        virDomainDestroy(domain.get());
        return {"", cancelled_message};
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
    auto conn = connections_.get(option(worker, "uri"));
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
    if (const std::string file = test_domain_file(option(worker, "uri"), name); !file.empty()) {
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
    return {errors.empty(), join(errors)};
}

Outcome<std::vector<Found>> LibvirtBackend::list(const std::string& master,
                                                 const std::vector<const config::Worker*>& workers,
                                                 const Cancelled& cancelled) {
    Outcome<std::vector<Found>> out;
    std::vector<std::string> errors;
    std::set<std::string> uris;
    std::set<std::string> dirs;
    for (const config::Worker* w : workers) {
        if (w && !option(w, "uri").empty()) {
            uris.insert(option(w, "uri"));
            dirs.insert(overlay_dir(w));
        }
    }
    // Domains before overlays: remove() in this order stops a domain before
    // its disk goes.
    for (const auto& uri : uris) {
        if (cancelled) {
            errors.emplace_back(cancelled_message);
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
    out.error = join(errors);
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
            errors.push_back("domain " + found.id + " changed since it was listed (" + describe_owner(owner.value) +
                             "): left alone");
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
    return {errors.empty(), join(errors)};
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
        return {{}, cancelled_message};
    }
    const std::string uri = option(worker, "uri");
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
            report.reason = "domain " + name + " is not this start's: " + describe_owner(owner.value);
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
        xml_for_logs = read_file(option(worker, "xml")).value;
    }
    report.log_tail = log_tail(uri, name, xml_for_logs);
    return {report, ""};
}

}  // namespace by::latent
