// Workers attaching: over the system bus under the identity rule (the
// caller's unit is the worker's instance of buildyard-worker@.service, or its
// uid is trusted), or over TCP once the handshake has proved the worker's
// secret (remote.cpp).
#include <algorithm>
#include <cstring>

#include <unistd.h>

#include "common/bus.hpp"
#include "common/input_limits.hpp"
#include "common/log.hpp"
#include "common/text.hpp"
#include "master/worker_lifecycle.hpp"

namespace by::master {

namespace {

std::string describe_caller(const Caller& c) {
    std::string s = "sender " + c.sender;
    if (c.have_uid) s += ", uid " + std::to_string(c.uid);
    if (c.pid > 0) s += ", pid " + std::to_string(c.pid);
    if (!c.unit.empty()) s += ", unit " + c.unit;
    return s;
}

}  // namespace

Status WorkerLifecycle::attach(const Caller& caller, const std::string& name,
                               const std::map<std::string, std::string>& info, std::string& path) {
    // The identity rule: the caller's unit is this worker's instance of
    // buildyard-worker@.service, or its uid is ours or trusted.
    const std::string unit = "buildyard-worker@" + config::escape_unit_instance(name) + ".service";
    const auto& trusted = config_.master.trusted_uids;
    bool allowed = (!caller.unit.empty() && caller.unit == unit) ||
                   (caller.have_uid && (caller.uid == geteuid() ||
                                        std::find(trusted.begin(), trusted.end(), caller.uid) != trusted.end()));
    // The name is the caller's: one escaped line in the log, whatever it holds.
    const std::string shown = text::for_log(name, limits::name);
    if (!allowed) {
        log::write(log::Level::warning,
                   fmt::format("refused to attach worker '{}': caller is not trusted ({}); it must run as {} or "
                               "with a uid listed in trusted_uids",
                               shown, describe_caller(caller), unit),
                   {{"BUILDYARD_WORKER", shown}, {"MESSAGE_ID", std::string(log::id::auth_failed)}});
        return Status::fail(bus::error::AccessDenied,
                            "not allowed to attach as worker '" + name + "': run it as " + unit +
                                " or from a uid in trusted_uids");
    }
    Worker* w = workers_.find(name);
    if (!w || !w->configured) {
        log::write(log::Level::warning,
                   fmt::format("refused to attach unknown worker '{}' ({})", shown, describe_caller(caller)),
                   {{"BUILDYARD_WORKER", shown}, {"MESSAGE_ID", std::string(log::id::auth_failed)}});
        return Status::fail(bus::error::NoSuchWorker, "no worker named '" + name + "' is declared in the configuration");
    }
    if (w->cfg.type == config::WorkerType::latent) {
        log::write(log::Level::warning,
                   fmt::format("refused to attach latent worker '{}' over the system bus ({}); latent workers attach "
                               "over TCP with their start's token",
                               name, describe_caller(caller)),
                   {{"BUILDYARD_WORKER", name}, {"MESSAGE_ID", std::string(log::id::auth_failed)}});
        return Status::fail(bus::error::AccessDenied, "latent worker '" + name + "' attaches over TCP");
    }
    if (w->attached) {
        // Attached means its connection is alive: the bus tells us at once
        // when it goes away.
        log::write(log::Level::warning,
                   fmt::format("refused a second connection for worker '{}' ({}); it is attached as {}", name,
                               describe_caller(caller), w->bus_name),
                   {{"BUILDYARD_WORKER", name}});
        return Status::fail(bus::error::AlreadyAttached, "worker '" + name + "' is already attached");
    }
    sd_bus_track* t = nullptr;
    int r = sd_bus_track_new(bus_, &t, &WorkerLifecycle::on_track_gone, this);
    if (r >= 0) {
        w->track.reset(t);
        r = sd_bus_track_add_name(t, caller.sender.c_str());
    }
    if (r < 0) {
        w->track.reset();
        return Status::fail(bus::error::Internal, std::string("cannot track the worker's connection: ") + std::strerror(-r));
    }
    mark_attached(*w, caller.sender, info, describe_caller(caller));
    path = w->path;
    return Status::ok();
}

// The end of every attach, local or remote.
void WorkerLifecycle::mark_attached(Worker& w, const std::string& sender, const std::map<std::string, std::string>& info,
                                    const std::string& how) {
    workers_.link(w, sender, info, bus::now_realtime_usec());
    save(w);
    log::write(log::Level::info,
               fmt::format("worker {} attached ({}, host {})", w.cfg.name, how,
                           info.count("host") ? text::for_log(info.at("host"), limits::name) : "unknown"),
               {{"BUILDYARD_WORKER", w.cfg.name}, {"MESSAGE_ID", std::string(log::id::worker_attached)}});
    if (!w.cleanup.empty()) {
        // A worker kills what its previous run left before it attaches.
        end_cleanup(w, "worker " + w.cfg.name + " is back and has stopped what its previous run left");
    }
    metrics_.worker_attached();
    latent_->attached(w);
    changes_.worker(w);
    changes_.counters();
    // Not build_lifecycle_.dispatch() here: the worker must get the Attach reply before
    // any StartBuild, or it cannot know the call comes from its master.
    build_lifecycle_.request_dispatch();
}

Status WorkerLifecycle::attach_remote(const std::string& name, const std::string& sender, const std::string& peer,
                                      sd_bus* link, std::function<void(const std::string&)> drop_link,
                                      const std::map<std::string, std::string>& info, std::string& path) {
    Worker* w = workers_.find(name);
    if (!w || !w->configured) {
        return Status::fail(bus::error::NoSuchWorker, "no worker named '" + name + "' is declared in the configuration");
    }
    if (w->attached) {
        return Status::fail(bus::error::AlreadyAttached, "worker '" + name + "' is already attached");
    }
    if (w->cfg.type == config::WorkerType::latent && !key(*w)) {
        // Its machine was given up while the handshake went on.
        return Status::fail(bus::error::AuthFailed, "Authentication failed.");
    }
    w->link_bus = link;
    w->drop_link = std::move(drop_link);
    mark_attached(*w, sender, info, "connection " + sender + " from " + peer);
    path = w->path;
    return Status::ok();
}

}  // namespace by::master
