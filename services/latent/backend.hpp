// What buildyard-latentd asks of a backend (libvirt, Docker, EC2,
// OpenStack). Every call blocks and runs on a thread of its own, never
// on the event loop; latentd puts a deadline on each and forgets a call that
// misses it (whatever the late call made is then reaped as a leak). A backend
// keeps no state of its own about starts: the tags on what it creates are the
// truth, so a latentd killed at any moment can find everything again.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/config.hpp"

namespace by::latent {

// The owner tag on every domain, container and overlay.
struct Tag {
    std::string master;  // [master] name
    std::string worker;
    std::string start;   // 32 lowercase hex digits

    friend bool operator==(const Tag&, const Tag&) = default;
};

// One start, as the master asked for it.
struct StartSpec {
    Tag tag;
    std::string master_address;  // HOST:PORT the worker inside dials
    std::string token;           // one-time secret of this start
    std::string master_fingerprint;  // the master's TLS certificate, for the worker to pin; empty: tls = no
    const config::Worker* worker = nullptr;  // type = latent; its backend_options
};

// What the worker inside gets through the same channel: its token and the
// master's fingerprint.
struct StartSecrets {
    std::string token;
    std::string master_fingerprint;
};

// Something tagged that a backend found: a live instance or a leftover.
struct Found {
    Tag tag;
    std::string kind;  // "domain", "overlay", "container"
    std::string id;    // domain name, overlay path, container id
    bool running = false;
};

enum class Health { running, gone };

struct HealthReport {
    Health health = Health::running;
    std::string reason;    // why it is gone ("domain shut off", "container exited with status 3")
    std::string log_tail;  // last lines of its console or log, if any
};

// An error carries the backend's own message, to be logged and put in the
// failed build's log.
template <class T>
struct Outcome {
    T value{};
    std::string error;  // empty: success
    bool ok() const { return error.empty(); }
};

template <class T>
Outcome<T> failed(std::string error) {
    Outcome<T> o;
    o.error = std::move(error);
    return o;
}

template <class T>
Outcome<T> succeeded(T value) {
    Outcome<T> o;
    o.value = std::move(value);
    return o;
}

// Set by latentd when a call's deadline has passed; a backend checks it
// between steps and gives up early where it can.
using Cancelled = std::atomic<bool>;

class Backend {
public:
    virtual ~Backend() = default;

    // Creates and boots the instance of `spec`, tagged with spec.tag before
    // anything is created, so a crash halfway leaves only tagged leftovers.
    // Returns the instance's id (domain or container name).
    virtual Outcome<std::string> create(const StartSpec& spec, const Cancelled& cancelled) = 0;

    // Stops the instance of `tag` (orderly, with `grace_usec` for it, then
    // forced) and removes everything of it: domain, overlay, container.
    // Nothing to remove is success.
    virtual Outcome<bool> destroy(const Tag& tag, const config::Worker* worker, uint64_t grace_usec,
                                  const Cancelled& cancelled) = 0;

    // Everything tagged with `master` that this backend can see through the
    // configuration of `workers` (each latent worker of this backend may
    // name another libvirt URI or Docker host). Untagged things and things of
    // other masters are never listed.
    virtual Outcome<std::vector<Found>> list(const std::string& master,
                                             const std::vector<const config::Worker*>& workers,
                                             const Cancelled& cancelled) = 0;

    // Removes one leftover that list() found.
    virtual Outcome<bool> remove(const Found& found, const config::Worker* worker, const Cancelled& cancelled) = 0;

    // Whether the instance of `tag` still runs.
    virtual Outcome<HealthReport> check(const Tag& tag, const config::Worker* worker,
                                        const Cancelled& cancelled) = 0;
};

// A backend class declares its overrides of the five calls above with
// this, so that their signatures are written once, in Backend; beside it,
// each backend says what the calls do in its world.
#define BY_LATENT_BACKEND_OVERRIDES                                                                               \
    Outcome<std::string> create(const StartSpec& spec, const Cancelled& cancelled) override;                      \
    Outcome<bool> destroy(const Tag& tag, const config::Worker* worker, uint64_t grace_usec,                      \
                          const Cancelled& cancelled) override;                                                   \
    Outcome<std::vector<Found>> list(const std::string& master, const std::vector<const config::Worker*>& workers, \
                                     const Cancelled& cancelled) override;                                        \
    Outcome<bool> remove(const Found& found, const config::Worker* worker, const Cancelled& cancelled) override;  \
    Outcome<HealthReport> check(const Tag& tag, const config::Worker* worker, const Cancelled& cancelled) override

// "buildyard-MASTER-WORKER": the name of a worker's domain or container,
// unique per master and worker, as latentd never runs two starts of one
// worker.
inline std::string instance_name(const Tag& tag) { return "buildyard-" + tag.master + "-" + tag.worker; }

// The user data of a start, as buildyard-workerd --latent reads it from a
// cloud's metadata service or config drive: "buildyard.worker=NAME",
// "buildyard.master=HOST:PORT", "buildyard.token=TOKEN", one a line, and
// "buildyard.master_fingerprint=..." when the master has one for the worker
// to pin. The EC2 and OpenStack backends send it so.
std::string user_data(const StartSpec& spec);

// The backend for `name` ("libvirt", "docker", "ec2", "openstack"), or nullptr if unknown.
std::unique_ptr<Backend> make_backend(const std::string& name, const std::string& state_directory);

}  // namespace by::latent
