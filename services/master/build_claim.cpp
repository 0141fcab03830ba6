// How a plan's builds are claimed: each pending build as start_build()
// leaves it for its worker, all in one commit (on its own, or in the
// commit of the ends that freed the workers), then begun, or queued again
// if the store did not take the claim.
#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "common/log.hpp"
#include "master/build_lifecycle.hpp"

namespace by::master {

BuildLifecycle::PlannedStarts BuildLifecycle::plan_starts(const std::vector<Assignment>& plan) {
    PlannedStarts p;
    const uint64_t now = bus::now_realtime_usec();
    for (const Assignment& a : plan) {
        p.touched.push_back(a.worker);
        ActiveBuild* ab = builds_.active(a.build);
        Worker* w = workers_.find(a.worker);
        if (!ab || !w) {
            continue;
        }
        p.plan.push_back(a);
        Build& b = p.started.emplace_back(ab->build);
        master::start_build(b, w->cfg.name, w->cfg.properties, now, w->cfg.default_properties);
    }
    return p;
}

bool BuildLifecycle::begin_builds(const std::vector<Assignment>& plan) {
    PlannedStarts p = plan_starts(plan);
    if (p.started.empty()) {
        return true;
    }
    const auto lost = store_->claim_available(p.started);
    if (!lost) {
        starts_refused(p);
        return false;
    }
    starts_claimed(p, *lost);
    return true;
}

void BuildLifecycle::requeue(const PlannedStarts& p) {
    for (const Assignment& a : p.plan) {
        if (ActiveBuild* ab = builds_.active(a.build); ab && ab->build.state == BuildState::pending) {
            builds_.dispatcher().enqueue(ab->build.builder, ab->build.id, queue_order(ab->build));
        }
    }
}

void BuildLifecycle::starts_refused(const PlannedStarts& p) {
    if (store_->lost_hold()) {
        fenced_();  // this master was fenced: it finds out now
    }
    requeue(p);
    const std::vector<Build>& s = p.started;
    trouble_.failed(s.size() == 1 ? fmt::format("cannot record the start of build {}", s.front().id)
                                  : fmt::format("cannot record the start of build {} and {} more", s.front().id,
                                                s.size() - 1));
}

void BuildLifecycle::starts_claimed(PlannedStarts& p, const std::vector<uint64_t>& lost) {
    trouble_.ok();
    // Another master sharing the store claimed these first (or a client
    // cancelled them there): theirs now. Sending one may end it (a link
    // that cannot take the call), which touches no other build of the plan.
    for (uint64_t id : lost) {
        if (ActiveBuild* ab = builds_.active(id)) {
            let_go(*ab, "another master claimed it first");
        }
    }
    std::vector<uint64_t> pulled;
    for (size_t i = 0; i < p.plan.size(); ++i) {
        if (std::find(lost.begin(), lost.end(), p.started[i].id) != lost.end()) {
            continue;
        }
        ActiveBuild* ab = builds_.active(p.plan[i].build);
        Worker* w = workers_.find(p.plan[i].worker);
        if (!ab || !w) {
            continue;
        }
        if (ab->pulled) {
            pulled.push_back(p.started[i].id);
        }
        begin_build(*ab, std::move(p.started[i]), *w);
    }
    // The masters that queued them drop them (a failure here only leaves
    // them to find out when they try to claim them).
    if (!pulled.empty() && !store_->announce_taken(pulled)) {
        log::info("{}", store_->error());
    }
}

void BuildLifecycle::planned_done(const std::vector<Assignment>& plan, const std::vector<std::string>& touched,
                                  bool claimed) {
    for (const Assignment& a : plan) {
        Worker* w = workers_.find(a.worker);
        const WorkerSlot* planned = builds_.dispatcher().slot(a.worker);
        if (w && planned && claimed) {
            w->last_assigned = planned->last_assigned;
        }
        sync_worker(a.worker);
    }
    for (const std::string& name : touched) {
        sync_worker(name);
    }
}

BuildLifecycle::PlannedStarts BuildLifecycle::plan_next(const std::vector<BuildEnd>& ends) {
    // Only the plain case: a rerun goes before the queue (the dispatch
    // after sees it), and a worker that settles first may stop.
    if (builds_.pending() == 0 || !foreign_.empty() || builds_.starts_in_flight() >= max_starts_in_flight) {
        return {};
    }
    std::map<std::string, unsigned> freed;
    for (const BuildEnd& e : ends) {
        const Worker* w = workers_.find(e.ended.worker);
        if (e.rerun || !w || w->latent || !w->configured || w->shutting_down) {
            return {};
        }
        ++freed[w->cfg.name];
    }
    sync_dispatcher();
    Dispatcher& d = builds_.dispatcher();
    for (const auto& [name, n] : freed) {
        if (const WorkerSlot* s = d.slot(name)) {
            WorkerSlot after = *s;
            after.running = after.running > n ? after.running - n : 0;
            d.update(name, after);
        }
    }
    PlannedStarts p = plan_starts(d.plan(max_starts_in_flight - builds_.starts_in_flight()));
    for (const auto& [name, n] : freed) {
        p.touched.push_back(name);  // their slots as the workers say, after
    }
    return p;
}

}  // namespace by::master
