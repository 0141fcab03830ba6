// The SQLite store's transactions and the writes of one build that the
// batches (store_batches.hpp) are made of.
#include <string>

#include "master/sqlite_store.hpp"
#include "master/store_json.hpp"

namespace by::master {

bool SqliteStore::in_transaction(const std::function<bool()>& writes, const char* what) {
    if (!check(db_.exec("BEGIN IMMEDIATE"), "cannot begin a transaction")) {
        return false;
    }
    if (writes() && check(db_.exec("COMMIT"), what)) {
        return true;
    }
    // No transaction left open for the next write to join (a failed
    // COMMIT, e.g. on a full disk, may leave it open).
    rollback();
    return false;
}

BatchStore::Claim SqliteStore::claim_build(const Build& b) {
    claim_build_.reset();
    claim_build_.bind(1, static_cast<int64_t>(b.id))
        .bind(2, to_string(b.state))
        .bind(3, b.worker)
        .bind(4, store_json::from_map(b.properties))
        .bind(5, static_cast<int64_t>(b.started_at))
        .bind(6, static_cast<int64_t>(b.current_step));
    if (!check(claim_build_.step(), "cannot record the start of a build")) {
        return Claim::failed;
    }
    if (sqlite3_changes(db_.get()) != 1) {
        cause_ = "build " + std::to_string(b.id) + " is not pending";
        error_ = "cannot claim build " + std::to_string(b.id) + ": " + cause_;
        return Claim::not_pending;
    }
    return Claim::claimed;
}

}  // namespace by::master
