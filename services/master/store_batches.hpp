// The writes of several builds in one commit, all or none, for a store
// that can run a transaction and write one build (SqliteStore, PgStore):
// submissions, claiming pending builds for their workers, retries, a lost worker's
// builds waiting for cleanup, and ends. On failure nothing of a batch is
// stored, and what it would have changed in memory (ids, RetriedAs) is
// put back.
#pragma once

#include <functional>
#include <optional>

#include "master/store.hpp"

namespace by::master {

class BatchStore : public Store {
public:
    bool record_submissions(std::vector<Build>& builds) override;
    std::optional<std::vector<bool>> record_started_submissions(std::vector<Build>& builds,
                                                                std::vector<std::optional<Build>>& starts) override;
    bool claim_builds(const std::vector<Build>& started) override;
    std::optional<std::vector<uint64_t>> claim_available(const std::vector<Build>& started) override;
    bool record_cleanups(const std::vector<Build>& builds) override;
    bool record_ended(const Build& b) override { return update_build(b); }
    bool record_retry(Build& old, Build& next) override;
    bool record_retries(std::vector<Retry>& retries) override;
    bool record_ends(std::vector<BuildEnd>& ends) override;
    std::optional<std::vector<uint64_t>> record_ends_claiming(std::vector<BuildEnd>& ends,
                                                              const std::vector<Build>& started) override;

protected:
    // Runs `writes` in one transaction: true once committed; on false
    // nothing of it was stored and error() says why.
    virtual bool in_transaction(const std::function<bool()>& writes, const char* what) = 0;
    // Records the start of b if it is still pending: claimed; not_pending
    // (error() names the build) when it is not; failed on any other failure.
    enum class Claim { claimed, not_pending, failed };
    virtual Claim claim_build(const Build& b) = 0;
    // Writes the mutable columns of b (state, worker, result, times...).
    virtual bool update_build(const Build& b) = 0;

private:
    // Claims each of `started` that is still pending, in a transaction the
    // caller holds; the ids of the others go to `lost`. False on failure.
    bool claim_each(const std::vector<Build>& started, std::vector<uint64_t>& lost);
    // Inserts `next` and marks `old` retried as it, in a transaction the
    // caller holds.
    bool insert_retry(Build& old, Build& next);
    // One transaction of `write` for each build, or one statement for one.
    bool each_in_transaction(const std::vector<Build>& builds, bool (BatchStore::*write)(const Build&),
                             const char* what);
};

}  // namespace by::master
