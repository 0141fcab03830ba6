// The PostgreSQL store's transactions and the claim of one build that the
// batches (store_batches.hpp) are made of.
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

bool PgStore::claim_build(const Build& b) {
    PgResult r = run("cannot record the start of a build", "claim_build",
                     {pg_param(b.id), std::string(to_string(b.state)), b.worker, store_json::from_map(b.properties),
                      pg_param(b.started_at), std::to_string(b.current_step)});
    if (!r) {
        return false;
    }
    if (std::string_view(PQcmdTuples(r.get())) != "1") {
        cause_ = "build " + std::to_string(b.id) + " is not pending";
        error_ = "cannot claim build " + std::to_string(b.id) + ": " + cause_;
        return false;
    }
    return true;
}

}  // namespace by::master
