// The master's state in SQLite (WAL) under the state directory: builds with
// their requests and results, and each worker's admin state. Every change
// is committed before the master acts on it or replies, so a kill -9 at any
// moment loses nothing that a client was told about.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/sqlite.hpp"
#include "master/build.hpp"
#include "master/latent_state.hpp"

namespace by::master {

struct WorkerRecord {
    std::string name;
    bool paused = false;
    std::string pause_reason;
    uint64_t last_connected = 0;
    uint64_t last_disconnected = 0;
    std::map<std::string, std::string> info;
};

// Per-worker facts for missing-worker mail (store_mail.cpp).
struct MissingRecord {
    uint64_t first_seen = 0;      // when the master first had it in its config
    uint64_t notified_loss = 0;   // the absence (its start time) that was mailed
};

// A mail in the queue (store_mail.cpp). `to` holds the recipients still
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

class Store {
public:
    // Opens or creates state.db in `directory`. Returns false with
    // error() set on failure.
    bool open(const std::string& directory);
    const std::string& error() const { return error_; }
    // SQLite's words for the last failure alone, e.g. "database or disk is full".
    const std::string& cause() const { return cause_; }

    // Inserts a new pending build and sets b.id (only once committed).
    bool insert_build(Build& b);
    // Writes the mutable columns of b (state, worker, result, times...).
    bool update_build(const Build& b);
    // In one transaction: writes `old` (finished retry) and inserts `next`,
    // setting next.id and old.retried_as. On failure neither changes, in the
    // database or in memory.
    bool insert_retry(Build& old, Build& next);

    std::optional<Build> load_build(uint64_t id);
    // Builds that are not finished, in id order.
    std::vector<Build> load_unfinished();
    // Up to `limit` builds with ids below `before` (0: any), newest first,
    // with only id, builder, worker, state and result filled in.
    std::vector<Build> list_builds(uint64_t before, uint64_t limit);

    std::optional<WorkerRecord> load_worker(const std::string& name);
    bool save_worker(const WorkerRecord& w);

    // Missing-worker facts; zeros for a worker never recorded.
    MissingRecord load_missing(const std::string& name);
    // Records when the master first saw the worker, unless it already has.
    bool set_first_seen(const std::string& name, uint64_t at);
    // A latent worker's failure streak (store_mail.cpp); zeros if none.
    LatentMachine::Record load_latent(const std::string& name);
    bool save_latent(const std::string& name, const LatentMachine::Record& r);
    // Queues `mail` (setting its id) and, in the same transaction, records
    // that `worker`'s absence starting at `loss` has had its mail.
    bool queue_missing_mail(QueuedMail& mail, const std::string& worker, uint64_t loss);
    bool queue_mail(QueuedMail& mail);
    // The queued mail due first, if one is due at `now`.
    std::optional<QueuedMail> next_due_mail(uint64_t now);
    // When the next queued mail is due, if any is queued.
    std::optional<uint64_t> next_mail_time();
    // How many mails wait in the queue (for delivery or their next attempt).
    std::optional<uint64_t> queued_mail_count();
    bool mail_sent(uint64_t id, uint64_t at);
    // A failed attempt: `to` keeps the recipients still to deliver to.
    bool mail_retry(uint64_t id, const std::vector<std::string>& to, unsigned attempts, uint64_t next_attempt,
                    const std::string& error);
    bool mail_given_up(uint64_t id, uint64_t at, const std::string& error);
    // Forgets mails sent or given up before `before`.
    bool prune_mail(uint64_t before);

private:
    bool check(int rc, const char* what);
    // Ends a transaction that a failure left open.
    void rollback();
    // Brings an older database up to the current schema (schema_version in meta).
    bool migrate();
    bool insert_mail(QueuedMail& mail);
    Build row_to_build(sqlite::Statement& s);

    sqlite::Database db_;
    sqlite::Statement insert_build_;
    sqlite::Statement update_build_;
    sqlite::Statement load_build_;
    sqlite::Statement save_worker_;
    sqlite::Statement load_worker_;
    std::string error_;
    std::string cause_;
};

}  // namespace by::master
