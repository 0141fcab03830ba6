// Workers coming and going: attach under the identity rule, detach, pause,
// shutdown.
#include <algorithm>
#include <cerrno>
#include <cstring>

#include <unistd.h>

#include "common/input_limits.hpp"
#include "common/log.hpp"
#include "common/text.hpp"
#include "master/master.hpp"

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

Status Master::attach(const Caller& caller, const std::string& name, const std::map<std::string, std::string>& info,
                      std::string& path) {
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
    Worker* w = find_worker(name);
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
    int r = sd_bus_track_new(bus_, &t, &Master::on_track_gone, this);
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
void Master::mark_attached(Worker& w, const std::string& sender, const std::map<std::string, std::string>& info,
                           const std::string& how) {
    workers_.link(w, sender, info, bus::now_realtime_usec());
    save_worker(w);
    log::write(log::Level::info,
               fmt::format("worker {} attached ({}, host {})", w.cfg.name, how,
                           info.count("host") ? text::for_log(info.at("host"), limits::name) : "unknown"),
               {{"BUILDYARD_WORKER", w.cfg.name}, {"MESSAGE_ID", std::string(log::id::worker_attached)}});
    if (!w.cleanup.empty()) {
        // A worker kills what its previous run left before it attaches.
        end_cleanup(w, "worker " + w.cfg.name + " is back and has stopped what its previous run left");
    }
    metrics_.worker_attached();
    if (latent_) {
        latent_->attached(w);
    }
    emit_worker(w);
    counters_changed();
    // Not dispatch() here: the worker must get the Attach reply before
    // any StartBuild, or it cannot know the call comes from its master.
    request_dispatch();
}

Status Master::attach_remote(const std::string& name, const std::string& sender, const std::string& peer,
                             sd_bus* link, std::function<void(const std::string&)> drop_link,
                             const std::map<std::string, std::string>& info, std::string& path) {
    Worker* w = find_worker(name);
    if (!w || !w->configured) {
        return Status::fail(bus::error::NoSuchWorker, "no worker named '" + name + "' is declared in the configuration");
    }
    if (w->attached) {
        return Status::fail(bus::error::AlreadyAttached, "worker '" + name + "' is already attached");
    }
    if (w->cfg.type == config::WorkerType::latent && !worker_key(*w)) {
        // Its machine was given up while the handshake went on.
        return Status::fail(bus::error::AuthFailed, "Authentication failed.");
    }
    w->link_bus = link;
    w->drop_link = std::move(drop_link);
    mark_attached(*w, sender, info, "connection " + sender + " from " + peer);
    path = w->path;
    return Status::ok();
}

void Master::link_lost(const std::string& sender, const std::string& reason) {
    if (Worker* w = worker_by_sender(sender)) {
        w->drop_link = nullptr;  // the connection is closing already
        detach(*w, DetachCause::connection_closed, reason, true);
    }
}

void Master::drop_worker(const std::string& name, DetachCause cause, const std::string& reason) {
    if (Worker* w = find_worker(name)) {
        detach(*w, cause, reason, true);
    }
}

int Master::new_agent_call(const Worker& w, const char* member, MessagePtr& out) {
    sd_bus_message* m = nullptr;
    // A remote link is peer to peer: no destination.
    const char* destination = w.link_bus ? nullptr : w.bus_name.c_str();
    int r = sd_bus_message_new_method_call(link_bus(w), &m, destination, bus::agent_path, bus::agent_iface, member);
    out.reset(m);
    return r;
}

std::optional<RemoteWorker> Master::remote_worker(const std::string& name) {
    const Worker* w = find_worker(name);
    if (!w) {
        return std::nullopt;
    }
    return RemoteWorker{.cfg = &w->cfg,
                       .configured = w->configured,
                       .attached = w->attached,
                       .link = w->bus_name,
                       .key = worker_key(*w)};
}

int Master::serve_link_object(sd_bus* link, std::vector<SlotPtr>& slots) {
    return register_link_object(*this, link, slots);
}

int Master::tell_worker_keepalive(const std::string& name, uint64_t interval, sd_bus_message_handler_t callback,
                                  void* userdata, SlotPtr& slot) {
    const Worker* w = find_worker(name);
    if (!w || !w->attached) {
        return -ENOTCONN;
    }
    MessagePtr m;
    int r = new_agent_call(*w, "SetKeepalive", m);
    if (r >= 0) r = sd_bus_message_append(m.get(), "t", interval);
    sd_bus_slot* s = nullptr;
    if (r >= 0) r = sd_bus_call_async(link_bus(*w), &s, m.get(), callback, userdata, 0);
    if (r >= 0) slot.reset(s);
    return r;
}

int Master::ping_worker(const std::string& name, uint64_t timeout_usec, sd_bus_message_handler_t callback,
                        void* userdata, SlotPtr& slot) {
    const Worker* w = find_worker(name);
    if (!w || !w->attached) {
        return -ENOTCONN;
    }
    MessagePtr m;
    int r = new_agent_call(*w, "Ping", m);
    sd_bus_slot* s = nullptr;
    if (r >= 0) r = sd_bus_call_async(link_bus(*w), &s, m.get(), callback, userdata, timeout_usec);
    if (r >= 0) slot.reset(s);
    return r;
}

int Master::on_track_gone(sd_bus_track* track, void* userdata) {
    auto* m = static_cast<Master*>(userdata);
    for (const auto& [name, w] : m->workers_.all()) {
        if (w->track.get() == track) {
            m->detach(*w, DetachCause::connection_closed, "its connection to the bus closed", true);
            break;
        }
    }
    return 0;
}

void Master::detach(Worker& w, DetachCause cause, const std::string& reason, bool lost) {
    if (!w.attached) {
        return;
    }
    metrics_.worker_detached(cause);
    const std::string name = w.cfg.name;
    if (w.link_bus) {
        // StartBuild calls still out on a closing connection get no reply.
        builds_.link_closed(w.link_bus);
    }
    auto drop_link = workers_.unlink(w, bus::now_realtime_usec());
    save_worker(w);
    log::write(log::Level::notice,
               fmt::format("worker {} detached: {}; {} running builds will be rerun once their processes are gone", name,
                           reason, w.running.size()),
               {{"BUILDYARD_WORKER", name}, {"MESSAGE_ID", std::string(log::id::worker_detached)}});
    if (drop_link) {
        drop_link(reason);
    }
    if (lost && w.configured && !w.latent) {
        hold_for_cleanup(w, reason);
    }
    // In one commit; ending them takes each off w. A build whose end
    // waits for the store keeps that end.
    std::vector<std::pair<uint64_t, Ending>> endings;
    for (uint64_t id : w.running) {
        if (ActiveBuild* ab = builds_.active(id); ab && !ab->ending) {
            endings.emplace_back(id, Ending{Result::retry, -1, 0, "worker " + name + " detached: " + reason});
        }
    }
    end_builds(endings);
    workers_.take_running(w);
    workers_.take_held(w);
    if (latent_) {
        latent_->detached(w);
    }
    emit_worker(w);
    counters_changed();
    if (!w.configured) {
        forget_worker(name);  // w is gone from here on
    }
    dispatch();
}

Status Master::link_shutdown(const std::string& sender) {
    Worker* w = worker_by_sender(sender);
    if (!w) {
        return Status::fail(bus::error::NotAttached, "not an attached worker");
    }
    log::write(log::Level::notice, fmt::format("worker {} asks for a graceful shutdown", w->cfg.name),
               {{"BUILDYARD_WORKER", w->cfg.name}});
    return shutdown(*w, true);
}

Status Master::link_detach(const std::string& sender, const std::string& reason) {
    Worker* w = worker_by_sender(sender);
    if (!w) {
        return Status::fail(bus::error::NotAttached, "this connection has not attached as a worker");
    }
    detach(*w, DetachCause::worker_request, "the worker said: " + text::for_log(reason));
    return Status::ok();
}

void Master::stop_worker(Worker& w, DetachCause cause, const std::string& reason) {
    if (!w.attached) {
        return;
    }
    // Fire and forget: the worker exits, and its builds are ours to rerun.
    // A worker removed from the configuration gets Remove first, so that it
    // exits non-zero for systemd to see; a worker too old to know Remove
    // ignores it (no reply is expected) and takes the Stop after it.
    for (const char* member : {w.configured ? nullptr : "Remove", "Stop"}) {
        MessagePtr m;
        if (member && new_agent_call(w, member, m) >= 0) {
            sd_bus_message_append(m.get(), "s", reason.c_str());
            sd_bus_message_set_expect_reply(m.get(), 0);
            sd_bus_send(link_bus(w), m.get(), nullptr);
        }
    }
    detach(w, cause, reason);
}

// Called when a worker's load drops: a removed or shutting-down worker
// leaves once it has nothing left to run.
void Master::settle_worker(Worker& w) {
    if (!w.attached || !w.running.empty()) {
        return;
    }
    if (!w.configured) {
        stop_worker(w, DetachCause::removed, "removed from the master's configuration");
    } else if (w.shutting_down) {
        stop_worker(w, DetachCause::shutdown, "graceful shutdown requested");
    }
}

Status Master::pause(Worker& w, const std::string& reason) {
    const bool was = w.paused;
    const std::string was_reason = w.pause_reason;
    workers_.set_paused(w, true, reason);
    if (!save_worker(w)) {
        workers_.set_paused(w, was, was_reason);
        return Status::fail(bus::error::Internal, "cannot record the pause: " + store_->error());
    }
    log::write(log::Level::notice, fmt::format("worker {} paused: {}", w.cfg.name, reason.empty() ? "-" : text::for_log(reason)),
               {{"BUILDYARD_WORKER", w.cfg.name}});
    emit_worker(w);
    return Status::ok();
}

Status Master::unpause(Worker& w) {
    const bool was = w.paused;
    const std::string was_reason = w.pause_reason;
    workers_.set_paused(w, false, {});
    if (!save_worker(w)) {
        workers_.set_paused(w, was, was_reason);
        return Status::fail(bus::error::Internal, "cannot record the unpause: " + store_->error());
    }
    log::write(log::Level::notice, fmt::format("worker {} unpaused", w.cfg.name), {{"BUILDYARD_WORKER", w.cfg.name}});
    emit_worker(w);
    dispatch();
    return Status::ok();
}

Status Master::shutdown(Worker& w, bool graceful) {
    if (w.latent) {
        const bool attached = w.attached;
        if (!latent_->shutdown(w, graceful)) {
            return Status::fail(bus::error::NotAttached, "latent worker '" + w.cfg.name + "' has no machine running");
        }
        if (attached && !graceful) {
            stop_worker(w, DetachCause::shutdown, "shutdown requested");  // its builds end retry now
        }
        return Status::ok();
    }
    if (!w.attached) {
        return Status::fail(bus::error::NotAttached, "worker '" + w.cfg.name + "' is not attached");
    }
    if (graceful) {
        workers_.set_shutting_down(w);
        log::write(log::Level::notice,
                   fmt::format("worker {} shuts down once its {} running builds end", w.cfg.name, w.running.size()),
                   {{"BUILDYARD_WORKER", w.cfg.name}});
        emit_worker(w);
        settle_worker(w);
    } else {
        stop_worker(w, DetachCause::shutdown, "shutdown requested");
    }
    return Status::ok();
}

}  // namespace by::master
