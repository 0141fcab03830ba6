// The master's Store in PostgreSQL, through libpq: a database named by a
// connection URI, shared by the masters of a cluster (see
// buildyard-masterd(8), CLUSTER). pg_store_schema.cpp holds the schema and
// its migrations; pg_store.cpp builds and workers; pg_store_batches.cpp
// transactions and claims (the batches are store_batches.hpp's); pg_store_mail.cpp the missing-worker facts,
// the latent streak and the mail queue; pg_store_cluster.cpp the cluster's
// members; pg_connection.hpp the bounded waits and reconnects.
// Same semantics as SqliteStore: every write has committed when it
// returns true; on false nothing of it was stored.
#pragma once

#include <functional>

#include "master/cluster_store.hpp"
#include "master/pg_connection.hpp"
#include "master/store_batches.hpp"

namespace by::master {

// The channel on which a new pending build is announced when it commits;
// its payload is the name of the master that queued it, a newline, and the
// build's builder.
inline constexpr const char* pending_channel = "buildyard_pending";
// The same announcement with the build's row after another newline, when
// that fits in a NOTIFY (pg_notice.hpp), sent first. A channel of its own
// so that masters of earlier releases, which listen on pending_channel
// alone, still hear of every new pending build.
inline constexpr const char* pending_row_channel = "buildyard_pending_row";

// The builds table's columns as load_build reads them, and one row (or
// every row) of them as Builds (pg_store.cpp).
const char* pg_build_columns();
Build pg_row_to_build(const PGresult* r, int i);
std::vector<Build> pg_rows_to_builds(const PGresult* r);
// The mutable columns of b, as $1..$14 of insert_build and update_build.
std::vector<std::string> pg_build_params(const Build& b);
// `statement` (an UPDATE or INSERT ... SELECT ending in a WHERE clause)
// taken only while the master named by parameter $name holds the fence in
// parameter $fence (pg_store.cpp says how).
std::string pg_fenced_write(const std::string& statement, int name, int fence);
// Build ids as a PostgreSQL array literal ('{1,2}'), for a bigint[] parameter.
std::string pg_id_array(const std::vector<uint64_t>& ids);

// The channel on which a master that started builds another master
// queued says so: the payload is their ids, separated by commas.
inline constexpr const char* taken_channel = "buildyard_taken";

// The channel on which a master asks the one that runs a build to cancel
// it: the payload is its id.
inline constexpr const char* cancel_channel = "buildyard_cancel";

class PgStore final : public BatchStore, public MemberStore {
public:
    // Each connect and statement ends within `deadline`.
    PgStore(std::string uri, std::string password,
            std::chrono::milliseconds deadline = std::chrono::milliseconds(3000));

    // Connects, creates or updates the schema, prepares the statements.
    // False with error() set (e.g. unreachable, or a schema newer than
    // this master knows).
    bool open();
    // Called by open() before it updates the schema from version `from` to
    // `to` (or, if they are equal, waits for another master's update),
    // which may take minutes on a large database: up to
    // migration_deadline in all, waiting for another master's included.
    using Migrating = std::function<void(int64_t from, int64_t to)>;
    void on_migrating(Migrating f) { migrating_ = std::move(f); }
    static constexpr std::chrono::minutes migration_deadline{30};
    std::chrono::milliseconds deadline_of_statements() const { return db_.deadline(); }

    const std::string& error() const override { return error_; }
    const std::string& cause() const override { return cause_; }
    bool unanswered() const override { return unanswered_; }

    bool record_submitted(Build& b) override;
    bool lost_hold() const override { return lost_hold_; }
    bool announce_taken(const std::vector<uint64_t>& ids) override;
    bool request_cancel(uint64_t id) override {
        return write("cannot ask for a cancellation", "request_cancel", {pg_param(id)});
    }
    std::optional<std::vector<SharedPresence>> load_presence() override;
    // Build logs (pg_store_logs.cpp).
    bool save_logs(const std::vector<std::pair<uint64_t, std::string>>& logs) override;
    std::optional<std::string> load_log(uint64_t id, uint64_t offset, uint64_t max) override;
    // Up to `limit` pending builds of `builder`, oldest first, leaving out
    // the ids in `known` (the ones this master queues already); nullopt on
    // failure.
    std::optional<std::vector<Build>> release_unheld(const std::vector<uint64_t>& held) override;
    std::optional<std::vector<Build>> load_pending(const std::string& builder, const std::vector<uint64_t>& known,
                                                   uint64_t limit) override;

    std::optional<Build> load_build(uint64_t id) override;
    std::vector<Build> load_unfinished() override;
    std::vector<Build> list_builds(uint64_t before, uint64_t limit) override;

    std::optional<WorkerRecord> load_worker(const std::string& name) override;
    bool save_worker(const WorkerRecord& w) override;

    MissingRecord load_missing(const std::string& name) override;
    bool set_first_seen(const std::string& name, uint64_t at) override;
    LatentMachine::Record load_latent(const std::string& name) override;
    bool save_latent(const std::string& name, const LatentMachine::Record& r) override;
    bool queue_missing_mail(QueuedMail& mail, const std::string& worker, uint64_t loss) override;
    bool queue_mail(QueuedMail& mail) override;
    std::optional<QueuedMail> next_due_mail(uint64_t now) override;
    std::optional<uint64_t> next_mail_time() override;
    std::optional<uint64_t> queued_mail_count() override;
    bool mail_sent(uint64_t id, uint64_t at) override;
    bool mail_retry(uint64_t id, const std::vector<std::string>& to, unsigned attempts, uint64_t next_attempt,
                    const std::string& error) override;
    bool mail_given_up(uint64_t id, uint64_t at, const std::string& error) override;
    bool prune_mail(uint64_t before) override;
    bool check_writes(uint64_t now) override { return write("cannot write", "check_writes", {pg_param(now)}); }

    // Cluster membership (pg_store_cluster.cpp).
    MemberStore* members() override { return this; }
    std::optional<uint64_t> join(const MemberIdentity& me,
                                 const std::function<bool(const MemberRow&, uint64_t now)>& decide) override;
    std::optional<HeartbeatRecord> heartbeat(const std::string& name, uint64_t fence) override;
    std::optional<MemberListing> list_members() override;
    std::optional<bool> declare_dead(const MemberRow& row, const std::string& by, uint64_t now,
                                     std::vector<Retry>& taken) override;
    bool leave(const std::string& name, uint64_t fence) override;

    // Several submissions as one pipeline (pg_store_batches.cpp).
    bool record_submissions(std::vector<Build>& builds) override;
    // ... and with the starts, one pipeline too. Ends without a rerun and
    // the claims after them: one pipeline, then the commit once every
    // write is known to have been taken.
    std::optional<std::vector<uint64_t>> record_ends_claiming(std::vector<BuildEnd>& ends,
                                                              const std::vector<Build>& started) override;
    std::optional<std::vector<bool>> record_started_submissions(std::vector<Build>& builds,
                                                                std::vector<std::optional<Build>>& starts) override;

protected:
    bool in_transaction(const std::function<bool()>& writes, const char* what) override;
    Claim claim_build(const Build& b) override;
    bool update_build(const Build& b) override;

private:
    // Runs the prepared statement `name`; on failure error() is `what`
    // and the cause.
    PgResult run(const char* what, const char* name, const std::vector<std::string>& params);
    bool write(const char* what, const char* name, const std::vector<std::string>& params) {
        return static_cast<bool>(run(what, name, params));
    }
    bool failed(const std::string& what);
    // Runs `calls` as one pipeline (PgConnection::run_pipeline); on
    // failure error() is `what` and the cause, and no transaction is left
    // open. `results`, if given, gets each call's result.
    bool pipeline(std::vector<PgCall> calls, const char* what, std::vector<PgResult>* results);
    // The parameters of insert_build, of update_build, of claim_inserted
    // (the claim of b as start_build() left it, by this master) and of
    // claim_build (the same, after b's id).
    std::vector<std::string> insert_params(const Build& b) const;
    std::vector<std::string> update_params(const Build& b) const;
    std::vector<std::string> claim_inserted_params(const Build& b) const;
    std::vector<std::string> claim_params(const Build& b) const;
    // Why a fenced write of build `id` changed nothing (error() says it,
    // after `what`): this master was fenced, or the build is another's
    // or ended (taken), or neither (unknown).
    enum class Refusal { fenced, taken, unknown };
    Refusal refused(uint64_t id, const char* what);
    bool migrate();
    // The schema version, read without waiting: 0 for an empty database;
    // `busy` if another master is updating the schema now.
    std::optional<int64_t> schema_version(bool& busy);
    bool refuse_newer(int64_t version, int64_t latest);
    // The update itself, in one transaction, under the lock.
    bool migrate_locked(int64_t latest);
    void prepare_builds();
    void prepare_mail();
    void prepare_cluster();
    void prepare_logs();
    bool insert_mail(QueuedMail& mail);

    PgConnection db_;
    Migrating migrating_;
    std::string uri_;
    std::string error_;
    std::string cause_;
    bool unanswered_ = false;  // of the last failure (PgConnection::unanswered)
    bool lost_hold_ = false;
    // Who writes: the name and fence this store joined the cluster with
    // (join()); empty before.
    std::string holder_;
    uint64_t holder_fence_ = 0;
};

// The master's store in the PostgreSQL database at `uri` (a libpq
// connection URI that carries no password; `password`, if not empty, is
// given beside it). nullptr with `error` set, naming the URI, when it
// cannot be opened.
std::unique_ptr<Store> open_pg_store(const std::string& uri, const std::string& password, std::string& error,
                                     PgStore::Migrating migrating = {});

}  // namespace by::master
