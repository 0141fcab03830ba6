// The one way a build ends. Whatever ends it (its worker's result, a
// StartBuild the worker refused or that failed on the way, a lost worker,
// a cancel while it was pending, held for a latent machine, running or
// waiting for cleanup, a graceful or forced shutdown, a store that takes
// the end late), it goes through BuildLifecycle::end_build, so the transition is
// checked, the store written, and the build's and worker's changes, the
// counters, the mail, the latent state and the next dispatch follow in
// one order.
#include "common/log.hpp"
#include "master/build_lifecycle.hpp"
#include "master/build_logs.hpp"
#include "master/notifier.hpp"

namespace by::master {

namespace {

// The transition `e` asks of `ended` (a copy of the build), and the rerun
// if it ends retry. Pure: the store has not been touched.
TransitionError transition(Build& ended, const Ending& e, std::optional<Build>& rerun) {
    if (e.result == Result::retry) {
        rerun = retry_build(ended, e.at);
        if (rerun) {
            return TransitionError::none;
        }
        return ended.state == BuildState::finished ? TransitionError::already_finished : TransitionError::not_running;
    }
    if (ended.state == BuildState::pending) {
        // A build that never started can only be cancelled.
        return e.result == Result::cancelled ? cancel_pending(ended, e.at) : TransitionError::not_running;
    }
    return finish_build(ended, e.result, e.exit_status, e.at);
}

std::string ended_message(const Build& b, BuildState was, const Ending& e, uint64_t rerun) {
    if (rerun) {
        return fmt::format("build {} of {} ends retry ({}); rerun as build {}", b.id, b.builder, e.why, rerun);
    }
    if (was == BuildState::pending) {
        return fmt::format("pending build {} of {} cancelled", b.id, b.builder);
    }
    return fmt::format("build {} of {} on {} finished: {} (exit status {})", b.id, b.builder, b.worker,
                       to_string(b.result), b.exit_status);
}

}  // namespace

bool BuildLifecycle::end_build(ActiveBuild& ab, Ending e) {
    const uint64_t id = ab.build.id;
    const BuildState was = ab.build.state;
    e.at = e.at ? e.at : bus::now_realtime_usec();
    Build ended = ab.build;
    std::optional<Build> rerun;
    if (TransitionError t = transition(ended, e, rerun); t != TransitionError::none) {
        log_build(log::Level::warning, ab.build,
                  fmt::format("build {} is {}: it cannot end {}", id, to_string(ab.build.state), to_string(e.result)));
        return true;  // nothing to end
    }
    if (!(rerun ? store_->record_retry(ended, *rerun) : store_->record_ended(ended))) {
        if (store_->lost_hold()) {
            fenced_();  // if this master was fenced, it finds out now
            const std::string refusal = store_->error();
            Build row;
            const Committed c = rerun ? Committed::not_ours : committed_unseen(ended, row);
            if (c == Committed::unseen) {
                log_build(log::Level::notice, row,
                          fmt::format("the end of build {} was recorded in a commit whose answer never came", id));
                trouble_.ok();
                ended_stored(ab, e, was, std::move(row), std::nullopt);
                return true;
            }
            if (c == Committed::not_ours) {
                // Another master holds it, or ended it: no write will ever
                // be taken, and nothing of this one is recorded.
                let_go(ab, refusal);
                return true;
            }
            // Whose end it holds is unknown yet: tried again as any end
            // that could not be stored.
        }
        // Nothing changes in memory. A build that ran stays running, as the
        // store says, until its end is stored (retry_store); a pending one
        // stays pending and the caller says why.
        if (was != BuildState::pending) {
            ab.ending = e;
        }
        trouble_.failed(rerun                          ? fmt::format("cannot requeue build {}", id)
                     : was == BuildState::pending ? fmt::format("cannot record the cancellation of build {}", id)
                                                  : fmt::format("cannot record the end of build {}", id));
        return false;
    }
    trouble_.ok();
    ended_stored(ab, e, was, std::move(ended), std::move(rerun));
    return true;
}

bool BuildLifecycle::end_builds(const std::vector<std::pair<uint64_t, Ending>>& endings, bool start_next) {
    // Each is decided as end_build decides; one that cannot end as asked
    // is left to end_build, which says why. The rest go to the store in one
    // commit (Store::record_ends).
    struct Decided {
        ActiveBuild* ab;
        BuildState was;
        Ending e;
    };
    std::vector<Decided> decided;
    std::vector<BuildEnd> ends;
    bool stored = true;
    const uint64_t now = bus::now_realtime_usec();
    for (const auto& [id, asked] : endings) {
        ActiveBuild* ab = builds_.active(id);
        if (!ab) {
            continue;
        }
        Ending e = asked;
        e.at = e.at ? e.at : now;
        BuildEnd end{ab->build, std::nullopt};
        if (ab->build.state == BuildState::pending || transition(end.ended, e, end.rerun) != TransitionError::none) {
            stored = end_build(*ab, e) && stored;
            continue;
        }
        decided.push_back({ab, ab->build.state, std::move(e)});
        ends.push_back(std::move(end));
    }
    // The freed workers' next builds, claimed in the same commit.
    PlannedStarts next = start_next && !ends.empty() ? plan_next(ends) : PlannedStarts{};
    std::optional<std::vector<uint64_t>> lost;
    if (!next.started.empty()) {
        lost = store_->record_ends_claiming(ends, next.started);
        if (!lost) {
            // Whatever the store refused, the ends go on their own, now, and
            // the claims with the next dispatch.
            requeue(next);
        }
    }
    if (!lost) {
        planned_done(next.plan, next.touched, false);
        if (ends.size() == 1) {
            return end_build(*decided.front().ab, decided.front().e) && stored;
        }
    }
    const bool recorded = ends.empty() || lost.has_value() || store_->record_ends(ends);
    if (!recorded) {
        if (store_->lost_hold()) {
            // One of them is not this master's any more: each on its own,
            // so that the others are recorded.
            for (Decided& d : decided) {
                stored = end_build(*d.ab, d.e) && stored;
            }
            return stored;
        }
        // As end_build leaves each: running, as the store says, until its
        // end is stored (retry_store).
        for (Decided& d : decided) {
            d.ab->ending = d.e;
        }
        trouble_.failed(fmt::format("cannot record the end of builds {} to {}", ends.front().ended.id,
                                 ends.back().ended.id));
        return false;
    }
    if (!ends.empty()) {
        trouble_.ok();
    }
    for (size_t i = 0; i < decided.size(); ++i) {
        ended_stored(*decided[i].ab, decided[i].e, decided[i].was, std::move(ends[i].ended), std::move(ends[i].rerun));
    }
    if (lost) {
        starts_claimed(next, *lost);
        planned_done(next.plan, next.touched, true);
    }
    return stored;
}

BuildLifecycle::Committed BuildLifecycle::committed_unseen(const Build& ended, Build& row) {
    // The store refused the write because the row is not this master's to
    // write, so it is there: no row is a read that failed.
    auto got = store_->load_build(ended.id);
    if (!got) {
        return Committed::unknown;
    }
    // The end's time is this master's clock at the end, to the microsecond:
    // no other write makes the same row.
    if (got->state == BuildState::finished && got->result == ended.result && got->exit_status == ended.exit_status &&
        got->finished_at == ended.finished_at && got->worker == ended.worker) {
        row = std::move(*got);
        return Committed::unseen;
    }
    return Committed::not_ours;
}

void BuildLifecycle::ended_stored(ActiveBuild& ab, const Ending& e, BuildState was, Build&& ended,
                                  std::optional<Build> rerun) {
    const uint64_t id = ab.build.id;
    ab.build = std::move(ended);
    ab.ending.reset();
    const Build& b = ab.build;
    // A failure says how it ended where one reads it: at the end of its
    // log. A retry's log ends where its worker was lost; the rerun's log
    // says the rest.
    if (const std::string trailer = log_trailer(b); !trailer.empty() && !rerun) {
        append_log(ab, trailer.data(), trailer.size());
    }
    close_log(ab);
    if (b.started_at != 0 && store_->members() && !e.let_go) {
        share_log(b.id);
    }
    if (was == BuildState::pending) {
        builds_.dispatcher().remove(b.builder, id, queue_order(b));
    } else {
        builds_.count_running(b.builder, -1);
    }
    metrics_.build_finished(b);
    const bool quiet = b.result == Result::success;
    log_build(quiet ? log::Level::info : log::Level::notice, b, ended_message(b, was, e, rerun ? rerun->id : 0),
              log::id::build_finished);
    changes_.build(ab);
    sd_bus_emit_signal(bus_, bus::master_path, bus::master_iface, "BuildFinished", "os", ab.path.c_str(),
                       std::string(to_string(b.result)).c_str());
    changes_.counters(b.builder);
    if (b.started_at != 0) {
        notifier_->build_finished(b);  // it mails no retry
    }
    const std::string worker = b.worker;
    if (rerun) {
        builds_.add_pending(std::move(*rerun));
    }
    builds_.retire(id, b);  // ab and b are gone from here on
    if (Worker* w = workers_.find(worker)) {
        if (workers_.remove_build(*w, id)) {
            changes_.worker(*w);
            // Only these have something to settle (WorkerLifecycle::settle and the
            // latent state): the common case costs nothing more. Decided
            // now, which holds because detach clears shutting_down itself
            // and shutdown() and a reload settle their workers directly.
            if (w->latent || !w->configured || w->shutting_down) {
                unsettled_.insert(worker);
            }
        }
    }
    request_dispatch();
}

bool BuildLifecycle::retry_ends() {
    std::vector<std::pair<uint64_t, Ending>> waiting;
    for (const auto& [id, ab] : builds_.all_active()) {
        if (ab->ending) {
            waiting.emplace_back(id, *ab->ending);
        }
    }
    return end_builds(waiting);
}

}  // namespace by::master
