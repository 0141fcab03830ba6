// The PostgreSQL store's transactions and the claim of one build that the
// batches (store_batches.hpp) are made of; submissions sent as one
// pipeline (one round trip, one commit).
#include "master/pg_store.hpp"
#include "master/store_json.hpp"

namespace by::master {

bool PgStore::in_transaction(const std::function<bool()>& writes, const char* what) {
    if (!db_.exec("BEGIN")) {
        return failed("cannot begin a transaction");
    }
    if (writes()) {
        if (db_.exec("COMMIT")) {
            return true;
        }
        failed(what);
    }
    // No transaction left open for the next write to join.
    db_.rollback();
    return false;
}

BatchStore::Claim PgStore::claim_build(const Build& b) {
    PgResult r = run("cannot record the start of a build", "claim_build",
                     {pg_param(b.id), std::string(to_string(b.state)), b.worker, store_json::from_map(b.properties),
                      pg_param(b.started_at), std::to_string(b.current_step), holder_, pg_param(holder_fence_)});
    if (!r) {
        return Claim::failed;
    }
    if (std::string_view(PQcmdTuples(r.get())) == "1") {
        return Claim::claimed;
    }
    // Fenced: nothing more can be claimed. Taken by another master or
    // ended: this one only.
    if (refused(b.id, "cannot claim build") != Refusal::taken) {
        return Claim::failed;
    }
    lost_hold_ = false;  // it was never this master's
    cause_ = "build " + std::to_string(b.id) + " is not pending";
    error_ = "cannot claim build " + std::to_string(b.id) + ": " + cause_;
    return Claim::not_pending;
}

bool PgStore::pipeline(std::vector<PgCall> calls, const char* what, std::vector<PgResult>* results) {
    std::vector<PgResult> got = db_.run_pipeline(calls);
    if (got.empty()) {
        failed(what);
        db_.rollback();
        return false;
    }
    if (results) {
        *results = std::move(got);
    }
    return true;
}

// The inserts, BEGIN and COMMIT in one round trip: one commit for them all.
bool PgStore::record_submissions(std::vector<Build>& builds) {
    if (builds.size() <= 1) {
        return BatchStore::record_submissions(builds);
    }
    std::vector<PgCall> calls{PgCall::begin()};
    for (const Build& b : builds) {
        calls.push_back({"insert_build", insert_params(b)});
    }
    calls.push_back(PgCall::commit());
    std::vector<PgResult> got;
    if (!pipeline(std::move(calls), "cannot commit the submitted builds", &got)) {
        return false;
    }
    for (size_t i = 0; i < builds.size(); ++i) {
        builds[i].id = pg_u64(got[i + 1].get(), 0, 0);
    }
    return true;
}

}  // namespace by::master
