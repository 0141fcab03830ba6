// The master: workers, builders, the queue and the builds, and what happens
// when any of them changes. The bus_*.cpp files are its D-Bus face; the
// decisions themselves live in dispatch.* and build.*.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <sys/types.h>

#include "common/bus.hpp"
#include "common/config.hpp"
#include "common/log.hpp"
#include "common/raii.hpp"
#include "master/build.hpp"
#include "master/build_logs.hpp"
#include "master/build_queue.hpp"
#include "master/dispatch.hpp"
#include "master/latent.hpp"
#include "master/metrics.hpp"
#include "master/remote_host.hpp"
#include "master/secret_mask.hpp"
#include "master/shown.hpp"
#include "master/status.hpp"
#include "master/store.hpp"
#include "master/worker.hpp"
#include "master/worker_facts.hpp"
#include "master/worker_registry.hpp"

namespace by::master {

class Master;
class Notifier;

// Who is calling, as the bus vouches for it.
struct Caller {
    std::string sender;       // unique bus name
    bool have_uid = false;
    uid_t uid = 0;
    pid_t pid = 0;
    std::string unit;         // systemd unit of the caller, if known
};

class Master final : public LatentHost, public WorkerFacts, public RemoteHost {
public:
    Master(sd_event* event, sd_bus* bus, std::string config_path, std::string state_directory);
    Master(const Master&) = delete;
    Master& operator=(const Master&) = delete;
    ~Master();

    // Loads the config and state, recovers builds, registers the bus objects
    // and takes the bus name. On failure returns false with `error` set.
    bool start(std::string& error);

    // Master1
    Status submit(const std::string& builder, const std::map<std::string, std::string>& properties,
                  uint64_t& id);
    Status reload();
    // Called after each successful reload, with the new configuration
    // (main.cpp moves the remote workers' listener).
    void on_reloaded(std::function<void(const config::Config&)> hook) { reloaded_ = std::move(hook); }
    std::string describe() const;
    // ListBuilds and ListBuildsBefore: builds with ids below `before` (0:
    // from the newest), newest first, at most `limit`; a limit of 0 or past
    // list_builds_max is list_builds_max.
    static constexpr uint64_t list_builds_max = 1000;
    std::vector<Build> list_builds(uint64_t before, uint64_t limit);
    const std::string& state_directory() const { return state_directory_; }
    // Master1.TlsFingerprint: the certificate remote workers see (remote.cpp
    // sets it at start and on reload); empty with tls = no.
    const std::string& tls_fingerprint() const override { return tls_fingerprint_; }

    // WorkerLink1, called by workers.
    Status attach(const Caller& caller, const std::string& name, const std::map<std::string, std::string>& info,
                  std::string& path);
    Status link_detach(const std::string& sender, const std::string& reason);
    // WorkerLink1.ShutdownGracefully: the worker itself asks for what
    // `buildyardctl shutdown NAME --graceful` does.
    Status link_shutdown(const std::string& sender);
    Status step_started(const std::string& sender, uint64_t id, unsigned step);
    Status output(const std::string& sender, uint64_t id, const void* data, size_t size);
    Status build_done(const std::string& sender, uint64_t id, const std::string& result, int exit_status,
                      const BuildUsage& usage);

    // Remote workers: what the listener asks of the master (remote_host.hpp).
    std::optional<RemoteWorker> remote_worker(const std::string& name) override;
    std::vector<std::string> earlier_tokens(const std::string& name) const override;
    int serve_link_object(sd_bus* link, std::vector<SlotPtr>& slots) override;
    Status attach_remote(const std::string& name, const std::string& sender, const std::string& peer, sd_bus* link,
                         std::function<void(const std::string&)> drop_link,
                         const std::map<std::string, std::string>& info, std::string& path) override;
    void link_lost(const std::string& sender, const std::string& reason) override;
    void drop_worker(const std::string& name, DetachCause cause, const std::string& reason) override;
    int tell_worker_keepalive(const std::string& name, uint64_t interval, sd_bus_message_handler_t callback,
                              void* userdata, SlotPtr& slot) override;
    int ping_worker(const std::string& name, uint64_t timeout_usec, sd_bus_message_handler_t callback,
                    void* userdata, SlotPtr& slot) override;
    void set_tls_fingerprint(const std::string& fingerprint) override;

    // Worker1
    Status pause(Worker& w, const std::string& reason);
    Status unpause(Worker& w);
    Status shutdown(Worker& w, bool graceful);

    // Build1
    Status cancel(uint64_t id);
    // At most min(max, read_log_max) bytes from `offset`; empty at or past the end.
    static constexpr uint64_t read_log_max = 1u << 20;
    Status read_log(uint64_t id, uint64_t offset, uint64_t max, std::string& data);

    // Lookups for the bus objects. Returned pointers live until the next
    // call that changes the master (a bus dispatch is one such unit).
    Worker* find_worker(const std::string& name) override;
    const config::Builder* find_builder(const std::string& name) const;
    // "no builder named 'x'; the builders are: a, b", for NoSuchBuilder.
    std::string no_such_builder(const std::string& name) const;
    const Build* find_build(uint64_t id);
    const WorkerRegistry::Workers& workers() const override { return workers_.all(); }
    WorkerRegistry& registry() { return workers_; }
    const config::Config& config() const { return config_; }
    unsigned connected_workers() const { return workers_.connected(); }
    unsigned running_builds() const { return builds_.running(); }
    unsigned pending_builds() const { return builds_.pending(); }
    unsigned pending_builds(const std::string& builder) const { return builds_.pending(builder); }
    unsigned running_builds(const std::string& builder) const { return builds_.running(builder); }
    std::vector<uint64_t> recent_build_ids(size_t n) const { return builds_.recent_ids(n); }

    sd_bus* bus() const { return bus_; }
    // Prometheus metrics; touched from the loop thread only.
    Metrics& metrics() { return metrics_; }

    // Latent workers (latent.*): the builds held for `w` end retry with
    // `why`; `log_text` goes into each one's log first.
    void fail_waiting_builds(Worker& w, const std::string& why, const std::string& log_text) override;
    // The master is about to exit: stop what must not outlive it.
    void stopping();
    // The secret a remote worker proves at the handshake: its password, or
    // for a latent worker the token of its current start (nullptr: none now).
    const std::string* worker_key(const Worker& w) const;

    // What the notifier asks of the workers (worker_facts.cpp).
    std::optional<WorkerPresence> worker_presence(const std::string& worker) const override;
    std::string worker_info(const std::string& worker, const std::string& key) const override;
    void missing_changed(const std::string& worker) override;
    // Something Worker1 shows of `w` changed: it is re-read (with the
    // notifier's missing-worker facts) and announced in this iteration's flush.
    void emit_worker(Worker& w) override;

private:
    void apply_config(config::Config&& c);
    Worker& add_worker(const config::Worker& cfg);
    // `lost`: the link ended without the worker saying so (it crashed, was
    // killed, or the network failed), so its builds' processes may live on.
    void detach(Worker& w, DetachCause cause, const std::string& reason, bool lost = false);
    // Takes the notifier's missing-worker facts of `w` into what Worker1 shows.
    void refresh_missing(Worker& w);
    void forget_worker(const std::string& name);
    void stop_worker(Worker& w, DetachCause cause, const std::string& reason);
    Worker* worker_by_sender(const std::string& sender) { return workers_.by_sender(sender); }
    void mark_attached(Worker& w, const std::string& sender, const std::map<std::string, std::string>& info,
                       const std::string& how);
    // Every call to a worker's Agent1 goes through here, to its link.
    sd_bus* link_bus(const Worker& w) const { return w.link_bus ? w.link_bus : bus_; }
    int new_agent_call(const Worker& w, const char* member, MessagePtr& out);
    ActiveBuild* running_on(const std::string& sender, uint64_t id, Worker** w);

    void dispatch();
    // Dispatches later in this loop iteration, after the current message's reply.
    void request_dispatch() override;
    static int on_dispatch_deferred(sd_event_source* s, void* userdata);
    void settle_and_dispatch();
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
    // Sets up and sends (or holds) one build whose start is stored.
    void begin_build(ActiveBuild& ab, Build&& started, Worker& w);
    // Sends a started build to its (attached) worker.
    void send_build(ActiveBuild& ab, Worker& w);
    // Gives a build to a latent worker that is not attached yet.
    void hold_build(ActiveBuild& ab, Worker& w);
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
    bool end_builds(const std::vector<std::pair<uint64_t, Ending>>& endings);
    // The part of ending a build that follows its store write.
    void ended_stored(ActiveBuild& ab, const Ending& e, BuildState was, Build&& ended, std::optional<Build> rerun);
    void settle_workers();
    // A write to the store failed: log it once per episode, say so in
    // STATUS=, and retry what waits every second. store_ok() ends the episode.
    void store_failed(const std::string& what);
    void store_ok();
    static int on_store_retry(sd_event_source* s, uint64_t usec, void* userdata);
    void retry_store();
    // Builds of a lost worker (cleanup.cpp): they wait in state cleanup
    // until the worker is back (it kills what its previous run left before
    // it attaches) or its lost_build_grace passes; then they end retry (or
    // cancelled, if that was asked meanwhile).
    void hold_for_cleanup(Worker& w, const std::string& reason);
    void end_cleanup(Worker& w, const std::string& why);
    static int on_cleanup_timer(sd_event_source* s, uint64_t usec, void* userdata);
    void settle_worker(Worker& w);
    // False (and w.unsaved set) when the store did not take it.
    bool save_worker(Worker& w);

    // Change notification names only the properties whose values changed.
    // Worker1, the Master1 and Builder1 counters and the STATUS= line are
    // refreshed once per loop iteration, however many changes it saw: a
    // worker that finishes a build and starts the next in one iteration
    // emits nothing. Build1 changes go out at once, as each is a transition
    // a client may wait for.
    void emit_build(ActiveBuild& ab);
    // `builder`, if given, also had its PendingBuilds/RunningBuilds change.
    void counters_changed(const std::string& builder = {});
    void flush_changes();
    static int on_changes_deferred(sd_event_source* s, void* userdata);
    static int on_track_gone(sd_bus_track* track, void* userdata);
    static int on_start_reply(sd_bus_message* reply, void* userdata, sd_bus_error* error);

    sd_event* event_;
    sd_bus* bus_;
    std::string config_path_;
    std::string state_directory_;
    std::string tls_fingerprint_;
    config::Config config_;
    Fd state_lock_;               // flock()ed for as long as we run
    std::unique_ptr<Store> store_;  // open once start() has begun
    WorkerRegistry workers_{[this] { counters_changed(); }};
    BuildQueue builds_;
    SourcePtr changes_source_;
    SourcePtr dispatch_source_;
    std::set<std::string> unsettled_;  // workers whose builds changed: settle_workers()
    std::set<std::string> dirty_builders_;
    // What the Master1 and Builder1 counters and STATUS= last said.
    struct Counters {
        uint32_t connected = 0, running = 0, pending = 0;
        bool operator==(const Counters&) const = default;
    };
    Counters shown_counters_;
    std::map<std::string, std::pair<uint32_t, uint32_t>> shown_builder_counters_;  // pending, running
    std::string shown_status_;
    std::optional<std::string> store_trouble_;  // the failing write's error, while the store fails
    SourcePtr store_retry_;
    std::vector<SlotPtr> slots_;
    Metrics metrics_;
    std::unique_ptr<Notifier> notifier_;  // missing-worker and build mail
    std::unique_ptr<LatentControl> latent_;
    std::function<void(const config::Config&)> reloaded_;
};

// Logs `msg` with the build's journal fields (BUILDYARD_BUILD, _BUILDER, _WORKER).
void log_build(log::Level level, const Build& b, const std::string& msg, std::string_view message_id = {});

// Registers the vtables of every object (bus_master.cpp, bus_objects.cpp, bus_link.cpp).
int register_master_objects(Master& m, sd_bus* bus, std::vector<SlotPtr>& slots);
int register_worker_objects(Master& m, sd_bus* bus, std::vector<SlotPtr>& slots);
int register_link_object(Master& m, sd_bus* bus, std::vector<SlotPtr>& slots);
// A copy of `vtable` (of `interface`, registered with the Master as its
// userdata) whose method calls are counted in Metrics::bus_call
// (bus_counted.cpp). The copy lives as long as the program.
const sd_bus_vtable* counted_vtable(const char* interface, const sd_bus_vtable* vtable);

}  // namespace by::master
