// Latent workers as containers of a Docker Engine (or Podman's compatible
// service): one container per start, named buildyard-<master>-<worker> and
// labelled org.buildyard.{master,worker,start} from its creation, so the
// labels alone find it again. See buildyard.ini(5) for the docker.* keys.
//
// The worker inside learns its identity from the environment
// (BUILDYARD_WORKER_NAME, BUILDYARD_MASTER, BUILDYARD_TOKEN). The container
// runs `buildyard-workerd --latent`, unless the image has an entrypoint of
// its own: then the image decides how the worker starts (a wrapper script
// that prepares something first, say) and gets no command from us.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "common/config_docker.hpp"
#include "latent/backend.hpp"
#include "latent/docker/docker_client.hpp"

namespace by::latent {

class DockerBackend final : public Backend {
public:
    struct Options {
        // How long pulling an image may take (docker.pull = missing, always).
        std::chrono::milliseconds pull_timeout{300000};
        // The deadline of each other engine call.
        std::chrono::milliseconds call_timeout = docker::default_timeout;
        // Lines of the container's log in a health report.
        unsigned log_tail_lines = 50;
    };

    DockerBackend() : DockerBackend(Options{}) {}
    explicit DockerBackend(Options options);

    // create: a container with this worker's name that carries this
    //   master's and this worker's labels is a leftover of an earlier start
    //   (latentd never runs two starts of one worker): it is removed first.
    //   One without those labels is not ours: create() fails and leaves it
    //   alone.
    // destroy: stops the container (SIGTERM, SIGKILL after the grace) and
    //   removes it. A container of another start, or not labelled as ours,
    //   is left alone.
    // list: the containers labelled with `master` on every engine the
    //   docker workers name. On failure `value` still holds what the engines
    //   that answered showed.
    // remove: removes found.id if it still carries found.tag; on the engine
    //   list() found it on, else the worker's.
    // check: gone: no container, one of another start, or one that exited
    //   ("container exited with status N"), with the end of its log.
    BY_LATENT_BACKEND_OVERRIDES;

    static std::string container_name(const Tag& tag) { return instance_name(tag); }
    // The body of POST /containers/create for `spec`. Pure, for the tests.
    static docker::Json container_body(const StartSpec& spec, const config::DockerOptions& options,
                                       bool image_has_entrypoint);

    static constexpr const char* label_master = "org.buildyard.master";
    static constexpr const char* label_worker = "org.buildyard.worker";
    static constexpr const char* label_start = "org.buildyard.start";

private:
    Outcome<bool> ensure_image(docker::Client& client, const config::DockerOptions& options, bool& has_entrypoint,
                               const Cancelled& cancelled);
    Outcome<bool> clear_leftover(docker::Client& client, const Tag& tag, const Cancelled& cancelled);
    std::string log_tail(docker::Client& client, const std::string& id, const Cancelled& cancelled);

    Options options_;
    // Which engine list() found each container on, for remove() of a leftover
    // whose worker is no longer configured.
    std::mutex found_mutex_;
    std::map<std::string, std::string> found_on_;
};

}  // namespace by::latent
