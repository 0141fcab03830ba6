// What happens to builds: a client submits or cancels one, the dispatcher
// hands pending ones to workers (build_start.cpp), workers report their
// steps, output and results (build_reports.cpp), and every end, whatever
// causes it, goes one way (build_end.cpp). The builds themselves are held in
// BuildQueue (build_queue.hpp) and the workers in WorkerRegistry; this class
// holds what happens to them.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "common/bus.hpp"
#include "common/config.hpp"
#include "common/raii.hpp"
#include "master/build.hpp"
#include "master/build_queue.hpp"
#include "master/bus_changes.hpp"
#include "master/dispatch.hpp"
#include "master/latent.hpp"
#include "master/metrics.hpp"
#include "master/pg_notice.hpp"
#include "master/status.hpp"
#include "master/store.hpp"
#include "master/store_trouble.hpp"
#include "master/worker_registry.hpp"

namespace by::master {

class Notifier;

// "no builder named 'x'; the builders are: a, b", for NoSuchBuilder.
std::string no_such_builder(const config::Config& config, const std::string& name);

class BuildLifecycle {
public:
    // What it works with; each outlives it. `settle` gets the workers whose
    // builds ended since the last dispatch (latent state, a removed or
    // shutting-down worker that may now leave), before the dispatch.
    struct Parts {
        sd_bus* bus;
        const config::Config& config;
        const std::string& state_directory;
        Store& store;
        BuildQueue& queue;
        WorkerRegistry& workers;
        Metrics& metrics;
        BusChanges& changes;
        StoreTrouble& trouble;
        Notifier& notifier;
        LatentControl& latent;
        std::function<void(const std::set<std::string>& workers)> settle;
        // A write was refused because this master was fenced (cluster.hpp).
        std::function<void()> fenced = [] {};
    };
    explicit BuildLifecycle(Parts parts);
    BuildLifecycle(const BuildLifecycle&) = delete;
    BuildLifecycle& operator=(const BuildLifecycle&) = delete;

    // The deferred dispatch.
    int start(sd_event* event);
    // At start-up, what the store had unfinished: builds that were running
    // (or waiting for cleanup) when the master last stopped never reported
    // back, so they end retry and their reruns are queued, in one commit;
    // pending ones just wait.
    void recover(std::vector<Build> unfinished);

    // Clients (Master1.SubmitBuild, Build1.Cancel). A valid submission
    // waits for the others of its loop iteration: once the loop has no
    // other event at hand (or submit_batch_max wait), they are recorded in
    // one commit (Store::record_submissions), queued and dispatched, and
    // each one's `done` is called with its id, or with the failure for
    // all (build_submit.cpp). An invalid one fails at once, and `done` is
    // not called.
    using Submitted = std::function<void(const Status&, uint64_t id)>;
    static constexpr size_t submit_batch_max = 64;
    static constexpr uint64_t submit_wait_max_usec = 2000;  // on a loop that is never idle
    // dbus-daemon allows a connection only so many calls awaiting replies
    // (max_replies_per_connection, 128 by default); StartBuild calls stay
    // well below that, and the rest are dispatched as replies come in.
    static constexpr size_t max_starts_in_flight = 64;
    Status submit(const std::string& builder, const std::map<std::string, std::string>& properties, Submitted done);
    Status cancel(uint64_t id);
    // ListBuilds and ListBuildsBefore: builds with ids below `before` (0:
    // from the newest), newest first, at most `limit`; a limit of 0 or past
    // list_builds_max is list_builds_max.
    static constexpr uint64_t list_builds_max = 1000;
    std::vector<Build> list(uint64_t before, uint64_t limit);
    // A build, active or finished; nullptr if there is none. The pointer
    // lives until the next call that changes the builds.
    const Build* find(uint64_t id);
    // At most min(max, read_log_max) bytes from `offset`; empty at or past
    // the end (build_logs.cpp).
    static constexpr uint64_t read_log_max = 1u << 20;
    Status read_log(uint64_t id, uint64_t offset, uint64_t max, std::string& data);

    // What a worker (the link `sender`) reports of a build it runs.
    Status step_started(const std::string& sender, uint64_t id, unsigned step);
    Status output(const std::string& sender, uint64_t id, const void* data, size_t size);
    // BuildDone: checked at once; the end then waits, with the worker's
    // answer, for the others of this loop turn and is recorded with them
    // in one commit (end_builds), as the submissions are; `done` is
    // called once it is stored, or with why not (build_submit.cpp).
    using Answered = std::function<void(const Status&)>;
    Status build_done(const std::string& sender, uint64_t id, const std::string& result, int exit_status,
                      const BuildUsage& usage, Answered done);

    // Hands pending builds to the workers that can take them, and sends the
    // builds held for latent workers that have attached since.
    void dispatch();
    // The configuration's builders (and their workers) changed.
    void builders_changed();
    // Settles and dispatches later in this loop iteration, after the current
    // message's reply.
    void request_dispatch();
    // The builds held for latent worker `w` while its machine came up end
    // retry with `why`; `log_text` goes into each one's log first.
    void fail_held(Worker& w, const std::string& why, const std::string& log_text);

    // The one way a build ends (build_end.cpp), whatever ends it: its
    // worker's result, a refused or failed StartBuild, a lost or stopped
    // worker, a cancel while pending, held, running or in cleanup, a store
    // that takes the end late. Retry (result) also queues the rerun. It
    // checks the transition, writes the store, then emits the build's and
    // its worker's changes, updates the counters, mails, and has the worker
    // settled (latent state, a shutdown that waited for it) and the queue
    // dispatched later in this loop iteration, so that no caller sees a
    // worker vanish under it. If the store does not take it, nothing
    // changes and false is returned; a build that ran keeps running with
    // `ending` set, and the write is retried every second.
    bool end_build(ActiveBuild& ab, Ending e);
    // Several builds (running or waiting for cleanup) end as end_build
    // would end each, in one commit to the store; if it does not take
    // them, each waits with its end, as end_build leaves it, and false is
    // returned.
    // With `start_next`, the builds that wait go to the freed workers, claimed
    // in the same commit (plan_next).
    bool end_builds(const std::vector<std::pair<uint64_t, Ending>>& endings, bool start_next = false);
    // The ends that wait for the store, oldest first, in one commit; false
    // while it still fails.
    bool retry_ends();

    // In a cluster (build_cluster.cpp). Another master queued a build (as
    // pending_channel announces it): pulled into the queue once a worker
    // of its builder has room here; with its row (pending_row_channel), at
    // once if there is room now and nothing of its builder waits to be
    // pulled before it. The announcement without the row that follows one
    // with it (the same build's, for masters of earlier releases) is
    // passed over.
    void foreign_pending(const PendingNotice& notice);
    // Build1.Cancel of a build that another master holds (or queued, and
    // this one does not): a pending one is cancelled in the store, a
    // running one through the master that runs it (cancel_channel).
    Status cancel_elsewhere(const Build& b);
    // Another master started these builds (`payload`: ids, separated by
    // commas, as taken_channel carries them): not pending here any more.
    void foreign_taken(const std::string& payload);
    // Another master was asked to cancel build `payload` (its id), which
    // this one runs.
    void foreign_cancel(const std::string& payload);
    // Any builder may have builds that other masters queued (at start, or
    // after a while when nobody listened).
    void all_foreign();
    // The store takes writes again after failing: a claim it committed
    // while the master saw the failure may have left a build recorded
    // running here that nothing runs. Before the next dispatch, such
    // builds are put back to pending (Store::release_unheld) and run; and
    // a pending build the master never saw committed is pulled like
    // another master's.
    void store_recovered();
    // Each cluster heartbeat: the same release (a commit made late, after
    // the last one, is caught; so is one on a master that writes nothing
    // else), and the pull after a write whose answer never came.
    void cluster_tick();
    // This master was fenced: every build it ran is another's now, rerun
    // by the master that declared it dead. Each is let go without a write
    // to the store, and its worker told to cancel it.
    void let_go_all(const std::string& why);
    // This master declared master `dead` dead: its builds ended retry
    // (written already); their reruns are queued here, and announced to
    // the others by the store.
    void took_over(const std::string& dead, std::vector<Retry>& taken);

private:
    static int on_dispatch_deferred(sd_event_source* s, void* userdata);
    // What store_recovered() and cluster_tick() ask for (build_cluster.cpp).
    void release_unheld();
    static int on_submit_deferred(sd_event_source* s, void* userdata);
    static int on_submit_timer(sd_event_source* s, uint64_t usec, void* userdata);
    // Has what waits for its commit recorded once the loop has no other
    // event at hand, submit_wait_max_usec at the latest, or now if
    // submit_batch_max wait.
    void commit_later();
    // The waiting ends, then the waiting submissions, each in one commit.
    void record_waiting();
    // The submissions and the workers' reported ends waiting for their
    // commit, now.
    void record_submissions();
    // Which of `builds` (new, in the order submitted) workers with room
    // take now, after what waits before them: starts[i] is builds[i] as
    // start_build() leaves it, recorded in the submissions' own commit. `planned` gets the workers whose dispatcher slots this
    // took, to be brought up to date after.
    std::vector<std::optional<Build>> direct_starts(const std::vector<Build>& builds,
                                                    std::vector<std::string>& planned);
    // The dispatcher learns what changed in the workers since it last did.
    void sync_dispatcher();
    void record_reported_ends();
    // What the dispatcher knows of `w`, and bringing it up to date.
    WorkerSlot slot_of(const Worker& w) const;
    void sync_worker(const std::string& name);
    // The dispatch request_dispatch() asked for, now, from a handler that is
    // not inside a loop over workers or builds (BuildDone, the hot path): a
    // worker that ends a build and starts its next in one iteration then
    // shows no change at all. Settling still waits for the deferred source.
    void dispatch_now();
    // Starts the pending builds of `plan` on their workers
    // (master::start_build is the transition), claimed in one commit.
    // False when the store did not take the claim: all stay pending,
    // queued again.
    bool begin_builds(const std::vector<Assignment>& plan);
    // The starts of a plan, before they are claimed: the pending builds as
    // start_build() leaves them for their workers (build_claim.cpp).
    struct PlannedStarts {
        std::vector<Assignment> plan;      // those whose build and worker are still there
        std::vector<Build> started;        // one per plan entry
        std::vector<std::string> touched;  // workers whose dispatcher slots the planning changed
    };
    PlannedStarts plan_starts(const std::vector<Assignment>& plan);
    // After the store took the claim: those `lost` to another master are
    // let go, the others begin.
    void starts_claimed(PlannedStarts& p, const std::vector<uint64_t>& lost);
    // The store did not take it: all of them are queued again (requeue),
    // and the store's trouble is reported.
    void starts_refused(const PlannedStarts& p);
    void requeue(const PlannedStarts& p);
    // Either way, after: the workers' slots as the workers say.
    void planned_done(const std::vector<Assignment>& plan, const std::vector<std::string>& touched, bool claimed);
    // The next builds for the workers that `ends` free, to be claimed in
    // the ends' own commit (one flush for both); none unless every end is
    // plain (no rerun; a worker with nothing to settle) and builds wait here.
    PlannedStarts plan_next(const std::vector<BuildEnd>& ends);
    // Sets up and sends (or holds) one build whose start is stored.
    void begin_build(ActiveBuild& ab, Build&& started, Worker& w);
    // Sends a started build to its (attached) worker.
    void send_build(ActiveBuild& ab, Worker& w);
    // Gives a build to a latent worker that is not attached yet.
    void hold_build(ActiveBuild& ab, Worker& w);
    static int on_start_reply(sd_bus_message* reply, void* userdata, sd_bus_error* error);
    // The build `id` that the worker on link `sender` runs (`w` is set to
    // that worker, if it is attached), or nullptr.
    ActiveBuild* running_on(const std::string& sender, uint64_t id, Worker** w);
    // The log of build `id`, ended here, goes to the shared store with the
    // next dispatch, for the other masters' ReadLog (build_logs.cpp).
    void share_log(uint64_t id);
    void save_shared_logs();
    // Pending builds other masters queued, for the builders in foreign_
    // whose workers have room here (build_cluster.cpp).
    void pull_foreign();
    // A build this master no longer holds (the store refused its write:
    // Store::lost_hold) leaves without a write.
    void let_go(ActiveBuild& ab, const std::string& why);
    // Whether the database's row of `ended`, whose write the store refused
    // (Store::lost_hold), holds just that end: this master's own write,
    // committed while its answer was lost (Store::unanswered), which a
    // retry of the write then finds ended (`row` gets it); or another's;
    // or the row could not be read.
    enum class Committed { unseen, not_ours, unknown };
    Committed committed_unseen(const Build& ended, Build& row);
    // The part of ending a build that follows its store write.
    void ended_stored(ActiveBuild& ab, const Ending& e, BuildState was, Build&& ended, std::optional<Build> rerun);

    const config::Builder* find_builder(const std::string& name) const;
    // Sends Agent1.CancelBuild for build `id` to `w`, not awaiting the
    // reply; negative errno if it cannot be sent.
    int send_cancel(const Worker& w, uint64_t id);

    sd_bus* bus_;
    const config::Config& config_;
    const std::string& state_directory_;
    Store* store_;
    BuildQueue& builds_;
    WorkerRegistry& workers_;
    Metrics& metrics_;
    BusChanges& changes_;
    StoreTrouble& trouble_;
    Notifier* notifier_;
    LatentControl* latent_;
    std::function<void(const std::set<std::string>&)> settle_;
    std::function<void()> fenced_;
    SourcePtr dispatch_source_;
    struct Submission {
        Build build;
        Submitted done;
    };
    std::vector<Submission> submissions_;
    struct ReportedEnd {
        uint64_t id;
        Ending ending;
        Answered done;
    };
    std::vector<ReportedEnd> reported_;  // ends reported by workers, waiting for their commit
    SourcePtr submit_source_;  // after every other pending event: record_waiting()
    SourcePtr submit_timer_;   // or after submit_wait_max_usec
    std::set<std::string> unsettled_;  // workers whose builds ended: settled before the next dispatch
    std::set<std::string> latent_workers_;  // as the dispatcher last saw them
    std::set<std::string> foreign_;  // builders with pending builds other masters queued, maybe
    // The master and builder of the last announcement heard with its row,
    // until the next announcement (its twin without the row, if that is it).
    std::optional<std::pair<std::string, std::string>> announced_;
    bool pull_failing_ = false;      // said so once
    bool release_due_ = false;       // release_unheld() before the next dispatch
    bool release_failing_ = false;   // said so once
    uint64_t let_go_id_ = 0;         // the last build let_go() let go
    std::vector<std::pair<uint64_t, std::string>> logs_to_share_;
    bool sharing_logs_failed_ = false;  // said so once
};

}  // namespace by::master
