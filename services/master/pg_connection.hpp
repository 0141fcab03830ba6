// One libpq connection whose every wait is bounded: connecting, preparing
// and running a statement each end by a deadline, so that a PostgreSQL
// server that stopped answering turns into an error within seconds instead
// of a master that hangs. A lost connection is made again when next used
// (at most once a second), with the statements prepared again.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <libpq-fe.h>

namespace by::master {

struct PgResultFree {
    void operator()(PGresult* r) const { PQclear(r); }
};
using PgResult = std::unique_ptr<PGresult, PgResultFree>;

// libpq's messages end with a newline and may span lines: one line.
std::string pg_one_line(const char* message);
// A result that is not a failure: a command done, or rows.
bool pg_succeeded(const PGresult* r);

// Parameters and values as libpq's text format has them. Numbers travel
// as signed 64 bits, as SQLite stores them.
// Starts connecting to `uri` (a libpq URI, expanded in place of dbname)
// as buildyard-masterd, with `password` if it is not empty; PQconnectPoll
// finishes it. nullptr only when out of memory.
PGconn* pg_connect_start(const std::string& uri, const std::string& password);

inline std::string pg_param(uint64_t v) { return std::to_string(static_cast<int64_t>(v)); }
inline uint64_t pg_u64(const PGresult* r, int row, int col) {
    return static_cast<uint64_t>(std::strtoll(PQgetvalue(r, row, col), nullptr, 10));
}
inline std::string pg_text(const PGresult* r, int row, int col) {
    return {PQgetvalue(r, row, col), static_cast<size_t>(PQgetlength(r, row, col))};
}

// One statement of a pipeline (PgConnection::run_pipeline): a prepared
// statement with its text parameters, or BEGIN or COMMIT.
struct PgCall {
    std::string name;  // of a prepared statement; empty for `control`
    std::vector<std::string> params;
    const char* control = nullptr;  // "BEGIN" or "COMMIT"

    static PgCall begin() { return {{}, {}, "BEGIN"}; }
    static PgCall commit() { return {{}, {}, "COMMIT"}; }
};

class PgConnection {
public:
    // `uri`: a libpq connection URI without a password; `password`, if not
    // empty, is given to libpq beside it. `deadline`: for each connect and
    // each statement.
    PgConnection(std::string uri, std::string password, std::chrono::milliseconds deadline);
    ~PgConnection();
    PgConnection(const PgConnection&) = delete;
    PgConnection& operator=(const PgConnection&) = delete;

    // Connects now (at start-up: a master that cannot reach its database
    // does not start). False with cause() set.
    bool connect();
    // A statement prepared on every connection as `name` (when connected
    // next, or now if connected).
    void prepare(const std::string& name, std::string sql);
    // Runs the prepared statement `name` with text parameters (numbers as
    // decimal text). nullptr with cause() set on any failure: not
    // connected and cannot connect, past the deadline, or an error from
    // the server.
    PgResult run(const std::string& name, const std::vector<std::string>& params);
    // Sends `calls` at once in libpq's pipeline mode and waits for all
    // their results: one round trip instead of one each. The server runs
    // them in order and skips the rest after a failure. A BEGIN among them
    // with no COMMIT leaves the transaction open for exec("COMMIT") or
    // rollback(). Each call's result in order; empty with cause() set (the
    // first failure's) if any failed.
    std::vector<PgResult> run_pipeline(const std::vector<PgCall>& calls);
    // Runs one statement of fixed text (BEGIN, COMMIT, the schema).
    PgResult exec(const std::string& sql);
    // Ends a transaction that a failure left open, if the connection still
    // stands.
    void rollback();

    // The deadline of each statement from now on (a schema update may take
    // longer than the one given at construction). The server's own limits
    // of a session stay those of the deadline given at construction.
    std::chrono::milliseconds deadline() const { return deadline_; }
    void set_deadline(std::chrono::milliseconds deadline) { deadline_ = deadline; }

    // The server's or libpq's words for the last failure, one line.
    const std::string& cause() const { return cause_; }
    // The last failure came after all was sent, while waiting for the
    // answer (the connection broke, or the deadline passed), and the server
    // may have committed what was sent: a statement outside a transaction,
    // or a COMMIT. Inside a transaction that the call does not commit, a
    // lost answer commits nothing: the server rolls the transaction back
    // with the connection.
    bool unanswered() const { return unanswered_; }

private:
    // Clears unanswered_ when it goes out of scope unless `may_commit`.
    struct CommitGuard {
        bool& unanswered;
        bool may_commit;
        ~CommitGuard() { unanswered = unanswered && may_commit; }
    };

    struct Statement {
        std::string name;
        std::string sql;
    };
    // A connection that is up, making one if need be.
    bool ready();
    bool prepare_all();
    // Waits for the results of what was sent, until the deadline; the last
    // result, nullptr with cause_ set on failure.
    PgResult wait_result(std::chrono::steady_clock::time_point deadline);
    // Sends what libpq holds, until the deadline; false (dropped) on failure.
    bool flush(std::chrono::steady_clock::time_point deadline);
    // The next result, waiting for it until the deadline; nullptr between
    // the results of two statements of a pipeline, or (dropped, `lost` set)
    // on failure.
    PGresult* next_result(std::chrono::steady_clock::time_point deadline, bool& lost);
    // Waits until the socket is readable (or writable), until `deadline`.
    bool wait_socket(bool write, std::chrono::steady_clock::time_point deadline);
    void drop(const std::string& why);
    void set_cause_from_connection(const char* what);

    std::string uri_;
    std::string password_;
    std::chrono::milliseconds deadline_;
    const std::chrono::milliseconds session_deadline_;  // as given at construction
    PGconn* conn_ = nullptr;
    std::vector<Statement> statements_;
    std::chrono::steady_clock::time_point last_attempt_{};
    bool attempted_ = false;
    bool in_transaction_ = false;  // BEGIN was run, and neither COMMIT nor rollback()
    bool goodbye_ = false;  // the server said FATAL while the connection was idle
    std::string cause_;
    bool unanswered_ = false;
};

}  // namespace by::master
