#include "master/cluster.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>

#include <unistd.h>

#include "common/bus.hpp"
#include "common/log.hpp"

namespace by::master {

ClusterMembership::ClusterMembership(sd_event* event, MemberStore* store, MemberIdentity me, ClusterTiming timing,
                                     ClusterHooks hooks)
    : event_(event), store_(store), me_(std::move(me)), timing_(timing), hooks_(std::move(hooks)) {}

bool ClusterMembership::start(std::string& error) {
    started_at_ = bus::now_realtime_usec();
    if (!store_) {
        return true;
    }
    if (!join(true, error)) {
        return false;
    }
    sd_event_source* s = nullptr;
    int r = sd_event_add_time_relative(event_, &s, CLOCK_MONOTONIC, timing_.heartbeat_usec, 0, on_timer, this);
    if (r < 0) {
        error = std::string("cannot add the heartbeat timer: ") + std::strerror(-r);
        return false;
    }
    timer_.reset(s);
    return true;
}

bool ClusterMembership::join(bool first, std::string& error, bool* refused) {
    std::string refusal;
    const auto decide = [&](const MemberRow& holder, uint64_t now) {
        // At start, the same master restarted after a crash: the process
        // that holds the name on this host is gone (or its pid is ours now).
        // A rejoin meets a live holder only if another master took the name.
        const auto pid = static_cast<pid_t>(holder.pid);
        const bool gone_here = first && holder.host == me_.host && holder.pid != 0 &&
                               (holder.pid == me_.pid || (kill(pid, 0) < 0 && errno == ESRCH));
        const JoinVerdict v = may_join(holder, now, timing_.timeout_usec, gone_here);
        refusal = v.refusal;
        return v.allowed;
    };
    const auto fence = store_->join(me_, decide);
    if (!fence) {
        error = store_->error();
        return false;
    }
    if (*fence == 0) {
        error = refusal;
        if (refused) {
            *refused = true;
        }
        return false;
    }
    fence_ = *fence;
    log::notice("{} as '{}' with fence {}", first ? "joined the cluster" : "joined the cluster again", me_.name,
                fence_);
    return true;
}

int ClusterMembership::on_timer(sd_event_source* s, uint64_t, void* userdata) {
    auto* self = static_cast<ClusterMembership*>(userdata);
    self->tick();
    if (self->timer_) {
        sd_event_source_set_time_relative(s, self->timing_.heartbeat_usec);
        sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
    }
    return 0;
}

void ClusterMembership::tick() {
    const auto hb = store_->heartbeat(me_.name, fence_);
    if (!hb) {
        if (!failing_) {
            log::warning("cannot record this master's heartbeat ({}); trying again every {}", store_->error(),
                         seconds_text(timing_.heartbeat_usec));
        }
        failing_ = true;
        blind_ = true;
        return;
    }
    if (failing_) {
        log::notice("this master's heartbeat is recorded again");
        failing_ = false;
    }
    switch (judge_heartbeat(hb->kept, hb->gap, timing_.timeout_usec)) {
    case HeartbeatVerdict::fenced:
        fenced();
        return;
    case HeartbeatVerdict::late:
        log::warning("this master's heartbeat came {} after the previous one, past cluster_timeout ({}); no other "
                     "master declared it dead",
                     seconds_text(hb->gap), seconds_text(timing_.timeout_usec));
        blind_ = true;
        break;
    case HeartbeatVerdict::ok:
        break;
    }
    if (const auto listing = store_->list_members()) {
        if (blind_) {
            // The others may have been as blind (the database was away):
            // they get cluster_timeout from now to heartbeat again.
            watching_since_ = listing->now;
            blind_ = false;
        }
        declare_dead(*listing);
        if (hooks_.ticked) {
            std::set<std::string> live;
            for (const MemberRow& r : listing->rows) {
                if (liveness(r, listing->now, timing_.timeout_usec) == Liveness::live) {
                    live.insert(r.name);
                }
            }
            hooks_.ticked(live);
        }
    }
}

void ClusterMembership::fenced() {
    std::string why = "its row changed";
    if (const auto listing = store_->list_members()) {
        for (const MemberRow& r : listing->rows) {
            if (r.name != me_.name) {
                continue;
            }
            if (r.status == "dead") {
                why = "declared dead by master '" + r.declared_dead_by + "'";
            } else if (r.status == "joined") {
                why = "another master (host " + r.host + ", pid " + std::to_string(r.pid) + ") took the name";
            }
        }
    }
    log::error("this master was fenced: fence {} no longer holds the name '{}' ({}); its builds were rerun by the "
               "cluster, its workers are let go, and it joins again",
               fence_, me_.name, why);
    if (hooks_.fenced) {
        hooks_.fenced(why);
    }
    std::string error;
    bool refused = false;
    if (join(false, error, &refused)) {
        return;
    }
    if (refused) {
        log::error("cannot join the cluster again: {}; stopping", error);
        timer_.reset();
        hooks_.name_lost();
        return;
    }
    // The next heartbeat finds the same old fence and tries again.
    log::warning("cannot join the cluster again ({}); trying again in {}", error, seconds_text(timing_.heartbeat_usec));
}

void ClusterMembership::declare_dead(const MemberListing& listing) {
    for (const MemberRow& r :
         to_declare_dead(listing.rows, me_.name, listing.now, timing_.timeout_usec, watching_since_)) {
        std::vector<Retry> taken;
        const auto done = store_->declare_dead(r, me_.name, bus::now_realtime_usec(), taken);
        if (done && *done) {
            log::warning("declared master '{}' dead: its last heartbeat is {} old, past cluster_timeout ({}); "
                         "fenced it (fence {} -> {}) and took over its {} running builds",
                         r.name, seconds_text(heartbeat_age(r, listing.now)), seconds_text(timing_.timeout_usec),
                         r.fence, r.fence + 1, taken.size());
            if (hooks_.took_over) {
                hooks_.took_over(r.name, taken);
            }
        } else if (!done) {
            log::warning("cannot declare master '{}' dead: {}", r.name, store_->error());
        }
    }
}

void ClusterMembership::check_soon() {
    if (timer_) {
        sd_event_source_set_time_relative(timer_.get(), 0);
        sd_event_source_set_enabled(timer_.get(), SD_EVENT_ONESHOT);
    }
}

void ClusterMembership::leave() {
    if (store_ && fence_ != 0 && timer_) {
        timer_.reset();
        if (!store_->leave(me_.name, fence_)) {
            log::warning("cannot leave the cluster ({}); the others will hold this master dead after cluster_timeout",
                         store_->error());
        }
    }
}

std::optional<std::vector<MemberView>> ClusterMembership::members(std::string& error) const {
    std::vector<MemberView> out;
    if (!store_) {
        MemberRow r;
        r.name = me_.name;
        r.status = "joined";
        r.heartbeat_at = bus::now_realtime_usec();
        r.started_at = started_at_;
        r.host = me_.host;
        r.address = me_.address;
        r.pid = me_.pid;
        out.push_back({.row = std::move(r), .liveness = Liveness::live, .heartbeat_age = 0, .self = true});
        return out;
    }
    const auto listing = store_->list_members();
    if (!listing) {
        error = store_->error();
        return std::nullopt;
    }
    for (const MemberRow& r : listing->rows) {
        out.push_back({.row = r,
                       .liveness = liveness(r, listing->now, timing_.timeout_usec),
                       .heartbeat_age = heartbeat_age(r, listing->now),
                       .self = r.name == me_.name && r.fence == fence_});
    }
    return out;
}

}  // namespace by::master
