// The PostgreSQL store's transactions and the claim of one build that the
// batches (store_batches.hpp) are made of; submissions sent as one
// pipeline (one round trip, one commit).
#include <algorithm>

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
    PgResult r = run("cannot record the start of a build", "claim_build", claim_params(b));
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

// Each started build is inserted quietly and claimed at once (the
// statements after BEGIN are in order: one insert per build, and one
// claim after each started one's).
std::optional<std::vector<bool>> PgStore::record_started_submissions(std::vector<Build>& builds,
                                                                     std::vector<std::optional<Build>>& starts) {
    const bool any = std::any_of(starts.begin(), starts.end(), [](const auto& s) { return s.has_value(); });
    if (!any || starts.size() != builds.size()) {
        return BatchStore::record_started_submissions(builds, starts);
    }
    std::vector<PgCall> calls{PgCall::begin()};
    std::vector<size_t> insert_at;
    for (size_t i = 0; i < builds.size(); ++i) {
        insert_at.push_back(calls.size());
        if (!starts[i]) {
            calls.push_back({"insert_build", insert_params(builds[i])});
            continue;
        }
        calls.push_back({"insert_build_quiet", pg_build_params(builds[i])});
        calls.push_back({"claim_inserted", claim_inserted_params(*starts[i])});
    }
    calls.push_back(PgCall::commit());
    std::vector<PgResult> got;
    if (!pipeline(std::move(calls), "cannot commit the submitted builds", &got)) {
        return std::nullopt;
    }
    std::vector<bool> started(builds.size(), false);
    std::vector<size_t> unclaimed;
    for (size_t i = 0; i < builds.size(); ++i) {
        builds[i].id = pg_u64(got[insert_at[i]].get(), 0, 0);
        if (!starts[i]) {
            continue;
        }
        starts[i]->id = builds[i].id;
        if (std::string_view(PQcmdTuples(got[insert_at[i] + 1].get())) == "1") {
            started[i] = true;
        } else {
            unclaimed.push_back(i);
        }
    }
    if (!unclaimed.empty()) {
        // Only a fenced master's claim of its own new row changes nothing:
        // those are pending, and the other masters hear of them now.
        refused(builds[unclaimed.front()].id, "cannot claim build");
        for (size_t i : unclaimed) {
            run("cannot announce a pending build", "announce_pending", {holder_, builds[i].builder});
        }
    }
    return started;
}

std::optional<std::vector<uint64_t>> PgStore::record_ends_claiming(std::vector<BuildEnd>& ends,
                                                                   const std::vector<Build>& started) {
    // A rerun's insert gives the id its old build records: not in one go.
    if (std::any_of(ends.begin(), ends.end(), [](const BuildEnd& e) { return e.rerun.has_value(); }) ||
        ends.size() + started.size() <= 1) {
        return BatchStore::record_ends_claiming(ends, started);
    }
    std::vector<PgCall> calls{PgCall::begin()};
    for (const BuildEnd& e : ends) {
        calls.push_back({"update_build", update_params(e.ended)});
    }
    for (const Build& b : started) {
        calls.push_back({"claim_build", claim_params(b)});
    }
    // No COMMIT in the pipeline: the transaction stays open until each
    // write is known to have changed its row.
    std::vector<PgResult> got;
    if (!pipeline(std::move(calls), started.empty() ? "cannot commit the ends of builds"
                                                    : "cannot commit the ends and starts of builds",
                  &got)) {
        return std::nullopt;
    }
    const auto changed = [&](size_t at) { return std::string_view(PQcmdTuples(got[at].get())) == "1"; };
    for (size_t i = 0; i < ends.size(); ++i) {
        if (!changed(i + 1)) {
            refused(ends[i].ended.id, "cannot record build");
            db_.rollback();
            return std::nullopt;
        }
    }
    std::vector<uint64_t> lost;
    for (size_t i = 0; i < started.size(); ++i) {
        if (changed(ends.size() + i + 1)) {
            continue;
        }
        // Fenced: nothing is claimed. Taken or ended: this one only.
        if (refused(started[i].id, "cannot claim build") != Refusal::taken) {
            db_.rollback();
            return std::nullopt;
        }
        lost_hold_ = false;  // it was never this master's
        lost.push_back(started[i].id);
    }
    if (!db_.exec("COMMIT")) {
        failed(started.empty() ? "cannot commit the ends of builds" : "cannot commit the ends and starts of builds");
        db_.rollback();
        return std::nullopt;
    }
    return lost;
}

}  // namespace by::master
