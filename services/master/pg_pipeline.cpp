// PgConnection::run_pipeline: several statements sent at once, in libpq's
// pipeline mode, and their results read back in order by one deadline.
#include <string_view>

#include <fmt/format.h>

#include "master/pg_connection.hpp"

namespace by::master {

namespace {
using Clock = std::chrono::steady_clock;
}  // namespace

std::vector<PgResult> PgConnection::run_pipeline(const std::vector<PgCall>& calls) {
    unanswered_ = false;
    // What it may commit: a COMMIT, or a statement outside a transaction.
    bool may_commit = false;
    for (bool inside = in_transaction_; const PgCall& c : calls) {
        const std::string_view control = c.control ? c.control : "";
        may_commit = may_commit || control == "COMMIT" || (!inside && control.empty());
        inside = control == "BEGIN" || (inside && control != "COMMIT");
    }
    const CommitGuard guard{unanswered_, may_commit};
    if (!ready()) {
        return {};
    }
    if (!PQenterPipelineMode(conn_)) {
        set_cause_from_connection("cannot enter pipeline mode");
        return {};
    }
    bool sent = true;
    for (const PgCall& c : calls) {
        if (c.control) {
            sent = PQsendQueryParams(conn_, c.control, 0, nullptr, nullptr, nullptr, nullptr, 0);
        } else {
            std::vector<const char*> values;
            values.reserve(c.params.size());
            for (const auto& p : c.params) {
                values.push_back(p.c_str());
            }
            sent = PQsendQueryPrepared(conn_, c.name.c_str(), static_cast<int>(values.size()), values.data(),
                                       nullptr, nullptr, 0);
        }
        if (!sent) {
            break;
        }
    }
    // Nothing runs before the sync is sent: a failure to queue sends nothing.
    if (!sent || !PQpipelineSync(conn_)) {
        set_cause_from_connection("cannot send a statement");
        drop(cause_);
        return {};
    }
    const auto deadline = Clock::now() + deadline_;
    if (!flush(deadline)) {
        // The server runs each statement as it arrives: a COMMIT may have
        // gone before the rest failed to.
        unanswered_ = true;
        return {};
    }
    // Each statement's result, then nullptr; after them all, the sync's.
    std::vector<PgResult> out;
    std::string failure;
    for (bool after_null = false;;) {
        bool lost = false;
        PGresult* r = next_result(deadline, lost);
        if (lost) {
            return {};
        }
        if (!r) {
            // Two in a row: nothing more will come (a connection lost midway).
            if (after_null || PQstatus(conn_) != CONNECTION_OK) {
                unanswered_ = true;
                set_cause_from_connection("the connection was lost");
                drop(cause_);
                return {};
            }
            after_null = true;
            continue;
        }
        after_null = false;
        PgResult owned(r);
        const auto st = PQresultStatus(r);
        if (st == PGRES_PIPELINE_SYNC) {
            break;
        }
        if (!pg_succeeded(r) && failure.empty()) {
            const char* primary = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
            failure = st == PGRES_PIPELINE_ABORTED ? "a statement of the pipeline was skipped"
                                                   : pg_one_line(primary ? primary : PQresultErrorMessage(r));
        }
        out.push_back(std::move(owned));
    }
    if (!PQexitPipelineMode(conn_)) {
        set_cause_from_connection("cannot leave pipeline mode");
        drop(cause_);
        return {};
    }
    in_transaction_ = PQtransactionStatus(conn_) != PQTRANS_IDLE;
    if (!failure.empty() || out.size() != calls.size()) {
        cause_ = failure.empty() ? "the pipeline lost results" : failure;
        return {};
    }
    return out;
}

}  // namespace by::master
