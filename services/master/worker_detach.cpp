// Workers leaving: they say so, their link is lost, they are stopped, or a
// removed or shutting-down worker leaves once its builds have ended. Their
// running builds end retry (or, for a lost worker, wait for its cleanup
// first: worker_cleanup.cpp).
#include "common/bus.hpp"
#include "common/log.hpp"
#include "common/text.hpp"
#include "master/agent_call.hpp"
#include "master/worker_lifecycle.hpp"

namespace by::master {

void WorkerLifecycle::link_lost(const std::string& sender, const std::string& reason) {
    if (Worker* w = workers_.by_sender(sender)) {
        w->drop_link = nullptr;  // the connection is closing already
        detach(*w, DetachCause::connection_closed, reason, true);
    }
}

void WorkerLifecycle::drop(const std::string& name, DetachCause cause, const std::string& reason) {
    if (Worker* w = workers_.find(name)) {
        detach(*w, cause, reason, true);
    }
}

void WorkerLifecycle::let_go_remote(const std::string& why) {
    std::vector<std::string> remote;
    for (const auto& [name, w] : workers_.all()) {
        if (w->attached && w->link_bus) {
            remote.push_back(name);
        }
    }
    for (const auto& name : remote) {
        if (Worker* w = workers_.find(name)) {
            detach(*w, DetachCause::fenced, why, false);
        }
    }
}

int WorkerLifecycle::on_track_gone(sd_bus_track* track, void* userdata) {
    auto* m = static_cast<WorkerLifecycle*>(userdata);
    for (const auto& [name, w] : m->workers_.all()) {
        if (w->track.get() == track) {
            m->detach(*w, DetachCause::connection_closed, "its connection to the bus closed", true);
            break;
        }
    }
    return 0;
}

void WorkerLifecycle::detach(Worker& w, DetachCause cause, const std::string& reason, bool lost) {
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
    save(w);
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
    build_lifecycle_.end_builds(endings);
    workers_.take_running(w);
    workers_.take_held(w);
    latent_->detached(w);
    changes_.worker(w);
    changes_.counters();
    if (!w.configured) {
        forget(name);  // w is gone from here on
    }
    build_lifecycle_.dispatch();
}

Status WorkerLifecycle::link_detach(const std::string& sender, const std::string& reason) {
    Worker* w = workers_.by_sender(sender);
    if (!w) {
        return Status::fail(bus::error::NotAttached, "this connection has not attached as a worker");
    }
    detach(*w, DetachCause::worker_request, "the worker said: " + text::for_log(reason));
    return Status::ok();
}

void WorkerLifecycle::stop(Worker& w, DetachCause cause, const std::string& reason) {
    if (!w.attached) {
        return;
    }
    // Fire and forget: the worker exits, and its builds are ours to rerun.
    // A worker removed from the configuration gets Remove first, so that it
    // exits non-zero for systemd to see; a worker too old to know Remove
    // ignores it (no reply is expected) and takes the Stop after it.
    for (const char* member : {w.configured ? nullptr : "Remove", "Stop"}) {
        MessagePtr m;
        if (member && new_agent_call(bus_, w, member, m) >= 0) {
            sd_bus_message_append(m.get(), "s", reason.c_str());
            sd_bus_message_set_expect_reply(m.get(), 0);
            sd_bus_send(link_of(bus_, w), m.get(), nullptr);
        }
    }
    detach(w, cause, reason);
}

// Called when a worker's load drops: a removed or shutting-down worker
// leaves once it has nothing left to run.
void WorkerLifecycle::settle(Worker& w) {
    if (!w.attached || !w.running.empty()) {
        return;
    }
    if (!w.configured) {
        stop(w, DetachCause::removed, "removed from the master's configuration");
    } else if (w.shutting_down) {
        stop(w, DetachCause::shutdown, "graceful shutdown requested");
    }
}

}  // namespace by::master
