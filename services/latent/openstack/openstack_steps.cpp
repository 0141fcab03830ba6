// The OpenStack backend's steps: the session of a worker's cloud, names to
// IDs, one server, every server, the wait for ACTIVE and a delete to the
// end.
#include <cstdlib>
#include <ctime>
#include <random>

#include "common/config_values.hpp"
#include "latent/http_call.hpp"
#include "latent/openstack/openstack_backend.hpp"

namespace by::latent {

using openstack::Server;
using openstack::Session;

OpenStackBackend::OpenStackBackend(Options options) : options_(std::move(options)) {
    if (!options_.jitter) {
        options_.jitter = [] {
            thread_local std::mt19937 rng{std::random_device{}()};
            return std::uniform_real_distribution<double>(0.5, 1.0)(rng);
        };
    }
    if (!options_.now) {
        options_.now = [] { return static_cast<int64_t>(std::time(nullptr)); };
    }
    if (!options_.getenv) {
        options_.getenv = [](const char* name) { return std::getenv(name); };
    }
}

Outcome<std::shared_ptr<Session>> OpenStackBackend::session_of(const config::OpenStackOptions& o) {
    using Result = std::shared_ptr<Session>;
    std::string path = o.clouds_file;
    if (path.empty()) {
        const char* env = options_.getenv("OS_CLIENT_CONFIG_FILE");
        path = env && *env ? env : config::openstack_default_clouds_file;
    }
    std::string error;
    const auto text = config::detail::read_file(path, 1 << 20, error);
    if (!text) {
        return failed<Result>("cannot read clouds.yaml " + path + ": " + error);
    }
    std::optional<std::string> secret;
    if (!o.credential.empty()) {
        const std::string what = "openstack.credential " + o.credential;
        const char* dir = options_.getenv("CREDENTIALS_DIRECTORY");
        if (!dir || !*dir) {
            return failed<Result>(what + ": CREDENTIALS_DIRECTORY is not set (add LoadCredential=" + o.credential +
                                  ":PATH to buildyard-latentd.service)");
        }
        secret = config::detail::read_credential(dir, o.credential, error);
        if (!secret) {
            return failed<Result>(what + ": " + error);
        }
    }
    auto cloud = openstack::parse_clouds_yaml(*text, o.cloud, secret, error);
    if (!cloud) {
        return failed<Result>("clouds.yaml " + path + ": " + error);
    }
    const std::string key = cloud->session_key();
    std::lock_guard lock(mutex_);
    auto& s = sessions_[key];
    if (!s) {
        s = std::make_shared<Session>(std::move(*cloud),
                                      Session::Options{options_.http_timeout, options_.jitter, options_.now});
    }
    return succeeded(s);
}

Outcome<openstack::Resolved> OpenStackBackend::resolve(Session& s, const config::OpenStackOptions& o,
                                                       const Cancelled& cancelled) {
    using openstack::Named;
    openstack::Resolved out;
    auto one = [&](const std::string& what, const std::string& wanted, const std::string& type,
                   const std::vector<std::string>& paths, const std::string& key) -> Outcome<std::string> {
        std::vector<Named> candidates;
        for (const auto& path : paths) {
            auto r = s.call(type, "GET", path, "", cancelled, {404});
            if (!r.ok()) {
                return failed<std::string>("looking up " + what + " '" + wanted + "': " + r.error);
            }
            if (r.value.status != 404) {
                auto found = openstack::parse_named(r.value.body, key);
                candidates.insert(candidates.end(), found.begin(), found.end());
            }
        }
        std::string error;
        auto id = openstack::resolve(what, wanted, candidates, error);
        if (!id) {
            return failed<std::string>("openstack." + what + ": " + error);
        }
        return succeeded(*id);
    };
    auto flavor = one("flavor", o.flavor, "compute", {"/flavors"}, "flavors");
    if (!flavor.ok()) {
        return failed<openstack::Resolved>(flavor.error);
    }
    out.flavor_id = flavor.value;
    auto image = one("image", o.image, "image", {"/images?name=" + url_escape(o.image), "/images/" + url_escape(o.image)},
                     "images");
    if (!image.ok()) {
        return failed<openstack::Resolved>(image.error);
    }
    out.image_id = image.value;
    if (o.network.empty()) {
        out.network = "auto";
    } else if (o.network == "none" || o.network == "auto") {
        out.network = o.network;
    } else {
        auto network = one("network", o.network, "network",
                           {"/networks?name=" + url_escape(o.network), "/networks/" + url_escape(o.network)},
                           "networks");
        if (!network.ok()) {
            return failed<openstack::Resolved>(network.error);
        }
        out.network = network.value;
    }
    return succeeded(out);
}

Outcome<std::optional<Server>> OpenStackBackend::get_server(Session& s, const std::string& id,
                                                            const Cancelled& cancelled) {
    auto r = s.call("compute", "GET", "/servers/" + url_escape(id), "", cancelled, {404});
    if (!r.ok()) {
        return failed<std::optional<Server>>(r.error);
    }
    if (r.value.status == 404) {
        return succeeded(std::optional<Server>());
    }
    auto server = openstack::parse_server(r.value.body);
    if (!server) {
        return failed<std::optional<Server>>("GET /servers/" + id + ": the answer is not a server");
    }
    return succeeded(std::move(server));
}

Outcome<std::vector<Server>> OpenStackBackend::servers(Session& s, const Cancelled& cancelled) {
    std::vector<Server> out;
    std::string marker;
    for (unsigned pages = 0; pages < 100; ++pages) {
        auto r = s.call("compute", "GET",
                        "/servers/detail?limit=1000" + (marker.empty() ? "" : "&marker=" + url_escape(marker)), "",
                        cancelled);
        if (!r.ok()) {
            return failed<std::vector<Server>>(r.error);
        }
        std::string error;
        auto page = openstack::parse_servers(r.value.body, marker, error);
        if (!error.empty()) {
            return failed<std::vector<Server>>(error);
        }
        out.insert(out.end(), page.begin(), page.end());
        if (marker.empty()) {
            break;
        }
    }
    return succeeded(std::move(out));
}

Outcome<Server> OpenStackBackend::wait_active(Session& s, const std::string& id, const Cancelled& cancelled) {
    for (unsigned n = 0;; ++n) {
        if (!pause(poll_interval(n), cancelled)) {
            return failed<Server>("server " + id + " was not ACTIVE in time: " + cancelled_message);
        }
        auto got = get_server(s, id, cancelled);
        if (!got.ok()) {
            return failed<Server>(got.error);
        }
        if (!got.value) {
            return failed<Server>("server " + id + " was deleted before it was ACTIVE");
        }
        const Server& server = *got.value;
        if (server.status == "ACTIVE") {
            return succeeded(server);
        }
        if (server.status == "ERROR") {
            return failed<Server>("server " + id + " went into ERROR: " +
                                  (server.fault.empty() ? "Nova gave no fault message" : server.fault));
        }
        if (openstack::ending(server)) {
            return failed<Server>(openstack::status_text(server) + " before it was ACTIVE");
        }
    }
}

Outcome<bool> OpenStackBackend::delete_server(Session& s, const std::string& id, const Cancelled& cancelled) {
    const std::string path = "/servers/" + url_escape(id);
    auto r = s.call("compute", "DELETE", path, "", cancelled, {404});
    if (!r.ok()) {
        return failed<bool>(r.error);
    }
    if (r.value.status == 404) {
        return succeeded(false);
    }
    for (unsigned n = 0;; ++n) {
        if (!pause(poll_interval(n), cancelled)) {
            return failed<bool>("server " + id + " was still listed: " + cancelled_message);
        }
        auto got = get_server(s, id, cancelled);
        if (!got.ok()) {
            return failed<bool>(got.error);
        }
        if (!got.value || got.value->status == "DELETED") {
            return succeeded(true);
        }
        if (got.value->status == "ERROR" && got.value->task_state.empty()) {
            // A delete that failed leaves the server in ERROR: ask again.
            auto again = s.call("compute", "DELETE", path, "", cancelled, {404});
            if (!again.ok()) {
                return failed<bool>(again.error);
            }
        }
    }
}

}  // namespace by::latent
