// Latent workers as OpenStack servers, through Keystone v3 and Nova's REST
// API (libcurl, nlohmann-json). One server per start, named
// buildyard-MASTER-WORKER and created with the metadata buildyard:owner =
// MASTER, buildyard:worker = NAME and buildyard:start = START: the
// metadata alone finds it again. The worker inside learns its identity from
// the server's user data (and config drive, under openstack.config_drive),
// which buildyard-workerd --latent reads from the metadata service. See
// buildyard.ini(5) for the openstack.* keys and buildyard-latentd(8) for
// clouds.yaml and the role the backend needs.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "common/config_openstack.hpp"
#include "latent/backend.hpp"
#include "latent/openstack/openstack_api.hpp"
#include "latent/openstack/openstack_session.hpp"

namespace by::latent {

class OpenStackBackend final : public Backend {
public:
    struct Options {
        std::chrono::milliseconds http_timeout{30000};
        std::function<double()> jitter;         // random in [0.5, 1] unless a test fixes it
        std::function<int64_t()> now;           // seconds since the epoch; the system clock unless given
        std::function<const char*(const char*)> getenv;  // std::getenv unless given
    };

    OpenStackBackend() : OpenStackBackend(Options{}) {}
    explicit OpenStackBackend(Options options);

    // create: resolves openstack.flavor, .image and .network to IDs, POST
    //   /servers, then waits for ACTIVE; ERROR is a failed start whose
    //   error is Nova's fault message. Returns the server's ID.
    // destroy: DELETE of the servers with `tag`'s metadata, then waits
    //   until Nova no longer lists them. Nova gives no grace: the worker
    //   gets none.
    // list: the servers with buildyard:owner = `master` in every project
    //   the openstack workers log in to, those being deleted left out.
    // remove: deletes found.id if it still carries found.tag.
    // check: gone: no server of the start, or one in ERROR, SHUTOFF,
    //   DELETED or being deleted.
    BY_LATENT_BACKEND_OVERRIDES;

private:
    // The session of a worker's cloud (clouds.yaml and the credential read
    // anew each time; the session, and its token, kept while they match).
    Outcome<std::shared_ptr<openstack::Session>> session_of(const config::OpenStackOptions& o);
    Outcome<openstack::Resolved> resolve(openstack::Session& s, const config::OpenStackOptions& o,
                                         const Cancelled& cancelled);
    Outcome<std::optional<openstack::Server>> get_server(openstack::Session& s, const std::string& id,
                                                         const Cancelled& cancelled);
    Outcome<std::vector<openstack::Server>> servers(openstack::Session& s, const Cancelled& cancelled);
    Outcome<openstack::Server> wait_active(openstack::Session& s, const std::string& id, const Cancelled& cancelled);
    // DELETE, then until GET answers 404. false: there was nothing to delete.
    Outcome<bool> delete_server(openstack::Session& s, const std::string& id, const Cancelled& cancelled);

    Options options_;
    std::mutex mutex_;
    std::map<std::string, std::shared_ptr<openstack::Session>> sessions_;  // by Cloud::session_key()
    // The server of each start create() made, and the session list() found
    // each server through: a cache only, the metadata remain the truth.
    std::map<std::string, std::string> server_of_start_;
    std::map<std::string, std::shared_ptr<openstack::Session>> found_on_;
};

}  // namespace by::latent
