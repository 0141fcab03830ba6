// The master's state behind one interface (Store), and the records it
// holds.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "master/build.hpp"
#include "master/latent_state.hpp"

namespace by::master {

class MemberStore;

struct WorkerRecord {
    std::string name;
    bool paused = false;
    std::string pause_reason;
    uint64_t last_connected = 0;
    uint64_t last_disconnected = 0;
    std::map<std::string, std::string> info;
    // In a shared store: the master it is attached to ('' when it is not);
    // a master clears only its own name, so a worker that moved on stays
    // where it went.
    std::string attached_to;
};

// A worker as the cluster sees it (a shared store's workers table).
struct SharedPresence {
    std::string name;
    std::string attached_to;
    uint64_t last_disconnected = 0;
};

// Per-worker facts for missing-worker mail.
struct MissingRecord {
    uint64_t first_seen = 0;      // when the master first had it in its config
    uint64_t notified_loss = 0;   // the absence (its start time) that was mailed
};

// A mail in the queue. `to` holds the recipients still
// to deliver to; the message text names all of them.
struct QueuedMail {
    uint64_t id = 0;
    std::string worker;           // for the log: the missing worker or the build's
    uint64_t build = 0;           // the build a result mail is about; 0 for none
    std::string subject;
    std::string from;
    std::vector<std::string> to;
    std::string text;
    uint64_t queued_at = 0;
    unsigned attempts = 0;
    uint64_t next_attempt = 0;
};

// A build that ends retry (`old`) and the pending build that reruns its
// request (`next`, from retry_build()).
struct Retry {
    Build old;
    Build next;
};

// A build's end: `ended` as it ended; for a retry, the rerun that queues
// its request again.
struct BuildEnd {
    Build ended;
    std::optional<Build> rerun;
};

// What the master keeps across restarts, in the words of what it needs,
// not in SQL: builds (submitted, started, waiting for cleanup, ended,
// requeued), each worker's admin state, the missing-worker facts, a latent
// worker's failure streak and the mail queue. Every method that changes
// something has committed it when it returns true, so a kill -9 at any
// moment loses nothing that a client was told about; on false nothing
// changed, and error() says why. SQLite (sqlite_store.hpp) and PostgreSQL
// (pg_store.hpp) implement it.
class Store {
public:
    virtual ~Store() = default;

    virtual const std::string& error() const = 0;
    // The engine's words for the last failure alone, e.g. "database or disk is full".
    virtual const std::string& cause() const = 0;
    // The last failure came after the writes reached the database, whose
    // answer never came (a server over a connection): they may be
    // committed all the same.
    virtual bool unanswered() const { return false; }

    // A new pending build: sets b.id (only once committed).
    virtual bool record_submitted(Build& b) = 0;
    // Several new pending builds in one commit, all or none: sets each id
    // (only once committed; on false none is set).
    virtual bool record_submissions(std::vector<Build>& builds) = 0;
    // What record_submissions does, and in the same commit the start of
    // some of them: starts[i], when set, is builds[i] as start_build()
    // left it for a worker with room now (its id is set here). One flush
    // where a submission and then its claim would take two. Returns, for
    // each build, whether its start was recorded. A start is not when this
    // master was fenced (lost_hold() then says so): that build is recorded
    // pending. nullopt on failure, when none of it was stored (and no id
    // is set).
    virtual std::optional<std::vector<bool>> record_started_submissions(std::vector<Build>& builds,
                                                                        std::vector<std::optional<Build>>& starts) = 0;
    // This master takes the pending builds `started` onto the workers they
    // name: in one commit, each is recorded as start_build() left it
    // (state, worker, properties, start time), all or none. A build the
    // store no longer holds as pending (cancelled, or taken by another
    // master sharing the store) fails the whole claim, so no build starts
    // twice. On false none of them changed.
    virtual bool claim_builds(const std::vector<Build>& started) = 0;
    // What claim_builds does, for the builds of `started` that are still
    // pending, in one commit: the ids of those that were not (another
    // master sharing the store took them, or a client cancelled them) are
    // returned, and only those stay as they were. A claim is race-free
    // because it changes a row only while it is pending, and the row's lock
    // makes a second claim wait for the first one's commit and then find it
    // taken. nullopt on failure (none of them changed), e.g. when this
    // master was fenced (lost_hold()).
    virtual std::optional<std::vector<uint64_t>> claim_available(const std::vector<Build>& started) = 0;
    // The builds' state, worker, result and times as they wait for
    // cleanup (a lost worker's, in one commit, all or none), and as one
    // ends (finished or cancelled).
    virtual bool record_cleanups(const std::vector<Build>& builds) = 0;
    virtual bool record_ended(const Build& b) = 0;
    // In one commit: `old` ended retry and `next`, the pending build that
    // reruns its request, setting next.id and old.retried_as. On failure
    // neither changes, in the store or in memory.
    virtual bool record_retry(Build& old, Build& next) = 0;
    // What record_retry does, for each of `retries` (at start-up, the
    // builds that were running when the master stopped), in one commit:
    // all or none.
    virtual bool record_retries(std::vector<Retry>& retries) = 0;
    // Several builds' ends in one commit, all or none: each as
    // record_ended, or with a rerun as record_retry. On false none of them
    // changed, in the store or in memory.
    virtual bool record_ends(std::vector<BuildEnd>& ends) = 0;
    // What record_ends does, and in the same commit what claim_available
    // does for `started` (the next builds of the workers the ends free):
    // one flush for both. The ids of the builds another master took are
    // returned; nullopt on failure, when none of it changed (in the store,
    // or in memory).
    virtual std::optional<std::vector<uint64_t>> record_ends_claiming(std::vector<BuildEnd>& ends,
                                                                      const std::vector<Build>& started) = 0;

    virtual std::optional<Build> load_build(uint64_t id) = 0;
    // Builds that are not finished, in id order (at start-up).
    // In a shared store (PostgreSQL): every pending build, and only the
    // started ones this master holds.
    virtual std::vector<Build> load_unfinished() = 0;
    // In a shared store: up to `limit` pending builds of `builder` that
    // are not in `known`, oldest first (what other masters queued); nullopt
    // on failure. A store of one master's own has none.
    virtual std::optional<std::vector<Build>> load_pending(const std::string& builder,
                                                           const std::vector<uint64_t>& known, uint64_t limit) {
        (void)builder, (void)known, (void)limit;
        return std::vector<Build>{};
    }
    // In a shared store: the builds recorded running under this master's
    // name and fence that it does not hold (`held`: the ids it holds
    // started). Such a row is a claim the server committed while the
    // master saw a failure (its answer was lost); nothing runs it. They
    // are put back to pending, fenced, in one commit, announced to the
    // other masters, and returned; nullopt on failure. A store of one
    // master's own has none.
    virtual std::optional<std::vector<Build>> release_unheld(const std::vector<uint64_t>& held) {
        (void)held;
        return std::vector<Build>{};
    }
    // Up to `limit` builds with ids below `before` (0: any), newest first,
    // with only id, builder, worker, state and result filled in.
    virtual std::vector<Build> list_builds(uint64_t before, uint64_t limit) = 0;

    virtual std::optional<WorkerRecord> load_worker(const std::string& name) = 0;
    virtual bool save_worker(const WorkerRecord& w) = 0;

    // Missing-worker facts; zeros for a worker never recorded.
    virtual MissingRecord load_missing(const std::string& name) = 0;
    // Records when the master first saw the worker, unless it already has.
    virtual bool set_first_seen(const std::string& name, uint64_t at) = 0;
    // A latent worker's failure streak; zeros if none.
    virtual LatentMachine::Record load_latent(const std::string& name) = 0;
    virtual bool save_latent(const std::string& name, const LatentMachine::Record& r) = 0;

    // The mail queue. queue_missing_mail queues `mail` (setting its id)
    // and, in the same commit, records that `worker`'s absence starting at
    // `loss` has had its mail.
    virtual bool queue_missing_mail(QueuedMail& mail, const std::string& worker, uint64_t loss) = 0;
    virtual bool queue_mail(QueuedMail& mail) = 0;
    // The queued mail due first, if one is due at `now`.
    virtual std::optional<QueuedMail> next_due_mail(uint64_t now) = 0;
    // When the next queued mail is due, if any is queued.
    virtual std::optional<uint64_t> next_mail_time() = 0;
    // How many mails wait in the queue (for delivery or their next attempt).
    virtual std::optional<uint64_t> queued_mail_count() = 0;
    virtual bool mail_sent(uint64_t id, uint64_t at) = 0;
    // A failed attempt: `to` keeps the recipients still to deliver to.
    virtual bool mail_retry(uint64_t id, const std::vector<std::string>& to, unsigned attempts,
                            uint64_t next_attempt, const std::string& error) = 0;
    virtual bool mail_given_up(uint64_t id, uint64_t at, const std::string& error) = 0;
    // Forgets mails sent or given up before `before`.
    virtual bool prune_mail(uint64_t before) = 0;
    // Whether the database takes writes now, after a failed one that left
    // nothing to write again (a submission whose client was told it
    // failed): records `now` as meta's write_check, a value that changes
    // (SQLite skips writing a row rewritten with the same bytes).
    virtual bool check_writes(uint64_t now) = 0;

    // In a shared store: the logs of ended builds this master ran (id,
    // text), in one commit, so that every master can read them; a log of
    // a build whose row names another master, and every log while this
    // master is fenced, is left out (silently: the copies are best effort).
    virtual bool save_logs(const std::vector<std::pair<uint64_t, std::string>>& logs) {
        (void)logs;
        return true;
    }
    // In a shared store: up to `max` bytes from `offset` of a log that a
    // master saved; nullopt when there is none (error() empty) or on
    // failure (error() set).
    virtual std::optional<std::string> load_log(uint64_t id, uint64_t offset, uint64_t max) {
        (void)id, (void)offset, (void)max;
        return std::nullopt;
    }
    // In a shared store: every worker's row as the cluster sees it; nullopt
    // for a store of one master's own, or on failure (error() set).
    virtual std::optional<std::vector<SharedPresence>> load_presence() { return std::nullopt; }
    // In a shared store: asks the master that runs build `id` to cancel it.
    virtual bool request_cancel(uint64_t id) {
        (void)id;
        return false;
    }
    // In a shared store: tells the other masters that this one started
    // the builds `ids` that one of them queued, so that they drop them.
    virtual bool announce_taken(const std::vector<uint64_t>& ids) {
        (void)ids;
        return true;
    }
    // Whether the last write failed because this master no longer holds
    // what it wrote: it was fenced (declared dead, see cluster_store.hpp),
    // or another master already ended the build. Such a write will never
    // be taken; a store of one master's own never says so.
    virtual bool lost_hold() const { return false; }

    // The cluster's members (cluster_store.hpp), when this store is shared
    // by several masters (PostgreSQL); nullptr for a store of one master's
    // own (SQLite).
    virtual MemberStore* members() { return nullptr; }
};

// The master's store in SQLite: state.db in `directory`, created if need
// be. nullptr with `error` set when it cannot be opened.
std::unique_ptr<Store> open_sqlite_store(const std::string& directory, std::string& error);

}  // namespace by::master
