#include "latent/docker/docker_backend.hpp"

#include <set>

namespace by::latent {

namespace {

using docker::Client;
using docker::Json;

const std::string cancelled_message = "cancelled: the call's deadline passed";

// The engine options of `worker`, or the defaults (the default socket) when
// there is no worker, as for a leftover of a worker no longer configured.
Outcome<config::DockerOptions> options_of(const config::Worker* worker) {
    if (!worker) {
        return succeeded(config::DockerOptions{});
    }
    std::string error;
    auto o = config::docker_options(worker->backend_options, error);
    if (!o) {
        return failed<config::DockerOptions>("worker " + worker->name + ": " + error);
    }
    return succeeded(std::move(*o));
}

std::string label(const std::map<std::string, std::string>& labels, const char* key) {
    auto it = labels.find(key);
    return it == labels.end() ? "" : it->second;
}

bool tagged(const std::map<std::string, std::string>& labels, const Tag& tag) {
    return label(labels, DockerBackend::label_master) == tag.master &&
           label(labels, DockerBackend::label_worker) == tag.worker &&
           label(labels, DockerBackend::label_start) == tag.start;
}

bool of_worker(const std::map<std::string, std::string>& labels, const Tag& tag) {
    return label(labels, DockerBackend::label_master) == tag.master &&
           label(labels, DockerBackend::label_worker) == tag.worker;
}

unsigned grace_seconds(uint64_t grace_usec) {
    return static_cast<unsigned>(std::min<uint64_t>((grace_usec + 999999) / 1000000, 3600));
}

}  // namespace

DockerBackend::DockerBackend(Options options) : options_(std::move(options)) {}

Json DockerBackend::container_body(const StartSpec& spec, const config::DockerOptions& options,
                                   bool image_has_entrypoint) {
    Json env = Json::array();
    for (const auto& e : options.env) {
        env.push_back(e);
    }
    // After the admin's entries: the config refuses BUILDYARD_* there anyway.
    env.push_back("BUILDYARD_WORKER_NAME=" + spec.tag.worker);
    env.push_back("BUILDYARD_MASTER=" + spec.master_address);
    env.push_back("BUILDYARD_TOKEN=" + spec.token);
    if (!spec.master_fingerprint.empty()) {
        env.push_back("BUILDYARD_MASTER_FINGERPRINT=" + spec.master_fingerprint);
    }

    Json host = {{"NetworkMode", options.network}};
    if (!options.binds.empty()) {
        host["Binds"] = options.binds;
    }
    if (options.memory_bytes) {
        host["Memory"] = options.memory_bytes;
    }
    if (options.nano_cpus) {
        host["NanoCpus"] = options.nano_cpus;
    }
    Json body = {
        {"Image", options.image},
        {"Env", env},
        {"Labels",
         {{label_master, spec.tag.master}, {label_worker, spec.tag.worker}, {label_start, spec.tag.start}}},
        {"HostConfig", host},
    };
    if (!image_has_entrypoint) {
        body["Cmd"] = {"buildyard-workerd", "--latent"};
    }
    return body;
}

Outcome<bool> DockerBackend::ensure_image(Client& client, const config::DockerOptions& options, bool& has_entrypoint,
                                          const Cancelled& cancelled) {
    if (options.pull == config::DockerPull::always) {
        if (auto pulled = client.pull_image(options.image, cancelled, options_.pull_timeout); !pulled.ok()) {
            return failed<bool>(pulled.error);
        }
    }
    auto image = client.inspect_image(options.image, cancelled, options_.call_timeout);
    if (!image.ok()) {
        return failed<bool>(image.error);
    }
    if (!image.value.exists && options.pull == config::DockerPull::missing) {
        if (auto pulled = client.pull_image(options.image, cancelled, options_.pull_timeout); !pulled.ok()) {
            return failed<bool>(pulled.error + " (docker.pull = missing: the image is not on the engine)");
        }
        image = client.inspect_image(options.image, cancelled, options_.call_timeout);
        if (!image.ok()) {
            return failed<bool>(image.error);
        }
    }
    if (!image.value.exists) {
        return failed<bool>("image " + options.image + " is not on the Docker engine at unix://" +
                            client.socket_path() +
                            (options.pull == config::DockerPull::never ? " (docker.pull = never)" : ""));
    }
    has_entrypoint = !image.value.entrypoint.empty();
    return succeeded(true);
}

Outcome<bool> DockerBackend::clear_leftover(Client& client, const Tag& tag, const Cancelled& cancelled) {
    const std::string name = container_name(tag);
    auto existing = client.inspect(name, cancelled, options_.call_timeout);
    if (!existing.ok()) {
        return failed<bool>(existing.error);
    }
    if (!existing.value.exists) {
        return succeeded(false);
    }
    if (!of_worker(existing.value.labels, tag)) {
        return failed<bool>("a container named " + name +
                            " exists without the labels of this master and worker; it is not ours, so it is left "
                            "alone: remove or rename it");
    }
    if (auto removed = client.remove(existing.value.id, cancelled, options_.call_timeout); !removed.ok()) {
        return failed<bool>(removed.error);
    }
    return succeeded(true);
}

Outcome<std::string> DockerBackend::create(const StartSpec& spec, const Cancelled& cancelled) {
    if (!spec.worker) {
        return failed<std::string>("no worker configuration for start " + spec.tag.start);
    }
    auto options = options_of(spec.worker);
    if (!options.ok()) {
        return failed<std::string>(options.error);
    }
    Client client(options.value.socket_path);
    bool has_entrypoint = false;
    if (auto image = ensure_image(client, options.value, has_entrypoint, cancelled); !image.ok()) {
        return failed<std::string>(image.error);
    }
    if (auto cleared = clear_leftover(client, spec.tag, cancelled); !cleared.ok()) {
        return failed<std::string>(cleared.error);
    }
    if (cancelled) {
        return failed<std::string>(cancelled_message);
    }
    const std::string name = container_name(spec.tag);
    auto id = client.create(name, container_body(spec, options.value, has_entrypoint), cancelled,
                            options_.call_timeout);
    if (!id.ok()) {
        return failed<std::string>(id.error);
    }
    if (cancelled) {
        return failed<std::string>(cancelled_message);  // latentd's destroy() or reaper removes it
    }
    if (auto started = client.start(id.value, cancelled, options_.call_timeout); !started.ok()) {
        // What the runtime said (no such executable, ...) is in the error;
        // the created container goes now rather than at the next reap.
        client.remove(id.value, cancelled, options_.call_timeout);
        return failed<std::string>(started.error);
    }
    return succeeded(name);
}

Outcome<bool> DockerBackend::destroy(const Tag& tag, const config::Worker* worker, uint64_t grace_usec,
                                     const Cancelled& cancelled) {
    auto options = options_of(worker);
    if (!options.ok()) {
        return failed<bool>(options.error);
    }
    Client client(options.value.socket_path);
    auto state = client.inspect(container_name(tag), cancelled, options_.call_timeout);
    if (!state.ok()) {
        return failed<bool>(state.error);
    }
    if (!state.value.exists || !tagged(state.value.labels, tag)) {
        return succeeded(false);  // nothing of this start: another start's container is the reaper's to judge
    }
    if (state.value.running && grace_usec > 0) {
        if (auto stopped = client.stop(state.value.id, grace_seconds(grace_usec), cancelled); !stopped.ok()) {
            return failed<bool>(stopped.error);
        }
    }
    if (cancelled) {
        return failed<bool>(cancelled_message);
    }
    auto removed = client.remove(state.value.id, cancelled, options_.call_timeout);
    if (!removed.ok()) {
        return failed<bool>(removed.error);
    }
    return succeeded(true);
}

Outcome<std::vector<Found>> DockerBackend::list(const std::string& master,
                                                const std::vector<const config::Worker*>& workers,
                                                const Cancelled& cancelled) {
    std::set<std::string> sockets;
    for (const auto* w : workers) {
        if (w && w->backend == "docker") {
            if (auto options = options_of(w); options.ok()) {
                sockets.insert(options.value.socket_path);
            }
        }
    }
    Outcome<std::vector<Found>> out;
    for (const auto& socket : sockets) {
        if (cancelled) {
            out.error = cancelled_message;
            break;
        }
        Client client(socket);
        auto listed = client.list({std::string(label_master) + "=" + master}, true, cancelled, options_.call_timeout);
        if (!listed.ok()) {
            out.error += (out.error.empty() ? "" : "; ") + listed.error;
            continue;
        }
        std::lock_guard lock(found_mutex_);
        for (const auto& c : listed.value) {
            Found f;
            f.tag = {label(c.labels, label_master), label(c.labels, label_worker), label(c.labels, label_start)};
            // The filter is the engine's; the check is ours. A container
            // missing a label was not made by a backend of ours.
            if (f.tag.master != master || f.tag.worker.empty() || f.tag.start.empty()) {
                continue;
            }
            f.kind = "container";
            f.id = c.id;
            f.running = c.state == "running";
            found_on_[c.id] = socket;
            out.value.push_back(std::move(f));
        }
    }
    return out;
}

Outcome<bool> DockerBackend::remove(const Found& found, const config::Worker* worker, const Cancelled& cancelled) {
    std::string socket;
    {
        std::lock_guard lock(found_mutex_);
        if (auto it = found_on_.find(found.id); it != found_on_.end()) {
            socket = it->second;
        }
    }
    if (socket.empty()) {
        auto options = options_of(worker);
        if (!options.ok()) {
            return failed<bool>(options.error);
        }
        socket = options.value.socket_path;
    }
    Client client(socket);
    auto state = client.inspect(found.id, cancelled, options_.call_timeout);
    if (!state.ok()) {
        return failed<bool>(state.error);
    }
    if (!state.value.exists || !tagged(state.value.labels, found.tag)) {
        return succeeded(false);
    }
    auto removed = client.remove(state.value.id, cancelled, options_.call_timeout);
    if (removed.ok()) {
        std::lock_guard lock(found_mutex_);
        found_on_.erase(found.id);
    }
    return removed;
}

std::string DockerBackend::log_tail(Client& client, const std::string& id, const Cancelled& cancelled) {
    auto logs = client.logs(id, options_.log_tail_lines, cancelled, options_.call_timeout);
    return logs.ok() ? logs.value : "(no log: " + logs.error + ")";
}

Outcome<HealthReport> DockerBackend::check(const Tag& tag, const config::Worker* worker, const Cancelled& cancelled) {
    auto options = options_of(worker);
    if (!options.ok()) {
        return failed<HealthReport>(options.error);
    }
    Client client(options.value.socket_path);
    const std::string name = container_name(tag);
    // An engine that cannot be reached is an error, not "gone": the
    // container may well run on, and the next check will tell.
    auto state = client.inspect(name, cancelled, options_.call_timeout);
    if (!state.ok()) {
        return failed<HealthReport>(state.error);
    }
    HealthReport report;
    const auto& s = state.value;
    if (!s.exists) {
        report.health = Health::gone;
        report.reason = "container " + name + " is gone";
        return succeeded(report);
    }
    if (!tagged(s.labels, tag)) {
        report.health = Health::gone;
        report.reason = "container " + name + " belongs to another start";
        return succeeded(report);
    }
    if (s.status != "exited" && s.status != "dead" && s.status != "removing" && s.status != "stopped") {
        return succeeded(report);
    }
    report.health = Health::gone;
    if (s.status == "dead") {
        report.reason = "container is dead (the engine could not stop or remove it)";
    } else {
        report.reason = "container exited with status " + std::to_string(s.exit_code);
    }
    if (s.oom_killed) {
        report.reason += " (killed: out of memory, docker.memory)";
    }
    if (!s.error.empty()) {
        report.reason += ": " + s.error;
    }
    report.log_tail = log_tail(client, s.id, cancelled);
    return succeeded(report);
}

}  // namespace by::latent
