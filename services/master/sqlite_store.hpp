// The master's Store in SQLite (WAL): state.db under the state directory
// (sqlite_store.cpp for builds and workers, sqlite_store_batches.cpp for
// its transactions and claims (the batches are store_batches.hpp's), sqlite_store_mail.cpp for the
// missing-worker facts, the latent streak and the mail queue).
#pragma once

#include "common/sqlite.hpp"
#include "master/store_batches.hpp"

namespace by::master {

class SqliteStore final : public BatchStore {
public:
    // Opens or creates state.db in `directory`. Returns false with
    // error() set on failure.
    bool open(const std::string& directory);

    const std::string& error() const override { return error_; }
    const std::string& cause() const override { return cause_; }

    bool record_submitted(Build& b) override;

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
    bool check_writes(uint64_t now) override;

protected:
    bool in_transaction(const std::function<bool()>& writes, const char* what) override;
    Claim claim_build(const Build& b) override;
    bool update_build(const Build& b) override;

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
    sqlite::Statement claim_build_;
    sqlite::Statement load_build_;
    sqlite::Statement save_worker_;
    sqlite::Statement load_worker_;
    std::string error_;
    std::string cause_;
};

}  // namespace by::master
