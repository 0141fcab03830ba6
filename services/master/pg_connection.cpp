#include "master/pg_connection.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>
#include <poll.h>

namespace by::master {

namespace {

using Clock = std::chrono::steady_clock;

// A failed connection is tried again at most this often, so that a
// master whose database is down does not spend its loop connecting.
constexpr auto reconnect_interval = std::chrono::seconds(1);

}  // namespace

std::string pg_one_line(const char* message) {
    std::string s = message ? message : "";
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) {
        s.pop_back();
    }
    for (char& c : s) {
        if (c == '\n') c = ' ';
    }
    return s;
}

bool pg_succeeded(const PGresult* r) {
    const auto st = PQresultStatus(r);
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

PgConnection::PgConnection(std::string uri, std::string password, std::chrono::milliseconds deadline)
    : uri_(std::move(uri)), password_(std::move(password)), deadline_(deadline), session_deadline_(deadline) {}

PgConnection::~PgConnection() {
    if (conn_) {
        PQfinish(conn_);
    }
}

void PgConnection::set_cause_from_connection(const char* what) {
    std::string message = pg_one_line(conn_ ? PQerrorMessage(conn_) : nullptr);
    cause_ = message.empty() ? what : message;
}

void PgConnection::drop(const std::string& why) {
    cause_ = why;
    if (conn_) {
        PQfinish(conn_);
        conn_ = nullptr;
    }
}

bool PgConnection::wait_socket(bool write, Clock::time_point deadline) {
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0) {
            return false;
        }
        pollfd p{PQsocket(conn_), static_cast<short>(write ? POLLOUT | POLLIN : POLLIN), 0};
        if (p.fd < 0) {
            return false;
        }
        const int r = poll(&p, 1, static_cast<int>(left.count()) + 1);
        if (r > 0) {
            return true;
        }
        if (r < 0 && errno != EINTR) {
            return false;
        }
    }
}

PGconn* pg_connect_start(const std::string& uri, const std::string& password) {
    // The URI is expanded in place of dbname; the keywords after it win.
    std::vector<const char*> keys{"dbname", "fallback_application_name"};
    std::vector<const char*> values{uri.c_str(), "buildyard-masterd"};
    if (!password.empty()) {
        keys.push_back("password");
        values.push_back(password.c_str());
    }
    keys.push_back(nullptr);
    values.push_back(nullptr);
    return PQconnectStartParams(keys.data(), values.data(), 1);
}

bool PgConnection::connect() {
    if (conn_) {
        PQfinish(conn_);
        conn_ = nullptr;
    }
    attempted_ = true;
    last_attempt_ = Clock::now();
    const auto deadline = last_attempt_ + deadline_;
    conn_ = pg_connect_start(uri_, password_);
    if (!conn_ || PQstatus(conn_) == CONNECTION_BAD) {
        set_cause_from_connection("cannot connect");
        drop(cause_);
        return false;
    }
    for (PostgresPollingStatusType st = PGRES_POLLING_WRITING; st != PGRES_POLLING_OK;) {
        if (st == PGRES_POLLING_FAILED) {
            set_cause_from_connection("cannot connect");
            drop(cause_);
            return false;
        }
        if (!wait_socket(st == PGRES_POLLING_WRITING, deadline)) {
            drop(fmt::format("no answer within {} ms", deadline_.count()));
            return false;
        }
        st = PQconnectPoll(conn_);
    }
    goodbye_ = false;
    PQsetNoticeReceiver(
        conn_,
        [](void* self, const PGresult* r) {
            const char* severity = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
            if (severity && (std::strcmp(severity, "FATAL") == 0 || std::strcmp(severity, "PANIC") == 0)) {
                static_cast<PgConnection*>(self)->goodbye_ = true;
            }
        },
        this);
    if (PQsetnonblocking(conn_, 1) != 0) {
        set_cause_from_connection("cannot use the connection");
        drop(cause_);
        return false;
    }
    attempted_ = false;  // a later loss reconnects at once
    return prepare_all();
}

bool PgConnection::prepare_all() {
    // The server gives up on a statement a fifth before the client would,
    // so that a statement that waits too long (for a lock, say) is ended by
    // the server, which then says so, and not left to run after the client
    // has dropped the connection: a statement that ran on unseen could
    // commit what the master was told had failed. And a statement still
    // running when the client has gone ends within a tenth of the deadline
    // (PostgreSQL 14 and later, on Linux; other servers refuse the
    // setting, and go without).
    const auto server_deadline = std::max<std::chrono::milliseconds::rep>(1, session_deadline_.count() * 4 / 5);
    const auto client_check = std::max<std::chrono::milliseconds::rep>(1, session_deadline_.count() / 10);
    if (!exec(fmt::format("SET statement_timeout = {}; DO $$BEGIN PERFORM set_config("
                          "'client_connection_check_interval', '{}', false); EXCEPTION WHEN OTHERS THEN NULL; END$$",
                          server_deadline, client_check))) {
        return false;
    }
    for (const Statement& s : statements_) {
        if (!PQsendPrepare(conn_, s.name.c_str(), s.sql.c_str(), 0, nullptr) ||
            !wait_result(Clock::now() + deadline_)) {
            if (conn_) {
                cause_ = "cannot prepare " + s.name + ": " + cause_;
            }
            drop(cause_);
            return false;
        }
    }
    return true;
}

void PgConnection::prepare(const std::string& name, std::string sql) {
    statements_.push_back({name, std::move(sql)});
    if (conn_ && PQstatus(conn_) == CONNECTION_OK &&
        (!PQsendPrepare(conn_, name.c_str(), statements_.back().sql.c_str(), 0, nullptr) ||
         !wait_result(Clock::now() + deadline_))) {
        drop(cause_);  // prepared again with the others on the next connection
    }
}

bool PgConnection::ready() {
    if (conn_ && PQstatus(conn_) == CONNECTION_OK) {
        // A server that went away while the connection was idle has told
        // so (or closed the socket): read that now, so that the next
        // statement goes to a new connection instead of failing.
        // (The server's goodbye is a FATAL message, which libpq passes to
        // the notice receiver while idle, then the end of the stream.)
        bool lost = false;
        for (int reads = 0; !lost && reads < 4 && PQtransactionStatus(conn_) == PQTRANS_IDLE; ++reads) {
            pollfd p{PQsocket(conn_), POLLIN, 0};
            if (poll(&p, 1, 0) <= 0) {
                break;
            }
            lost = !PQconsumeInput(conn_) || (PQisBusy(conn_), PQstatus(conn_) != CONNECTION_OK) || goodbye_;
        }
        if (!lost) {
            return true;
        }
    }
    if (conn_) {
        set_cause_from_connection("the connection was lost");
        drop(cause_);
    }
    if (in_transaction_) {
        return false;  // a new connection must not take the rest of a transaction
    }
    if (attempted_ && Clock::now() - last_attempt_ < reconnect_interval) {
        return false;  // cause_ is still the last attempt's
    }
    return connect();
}

bool PgConnection::flush(Clock::time_point deadline) {
    for (;;) {
        const int f = PQflush(conn_);
        if (f == 0) {
            return true;
        }
        if (f < 0 || !wait_socket(true, deadline) || !PQconsumeInput(conn_)) {
            set_cause_from_connection("cannot send to the server");
            if (Clock::now() >= deadline) cause_ = fmt::format("no answer within {} ms", deadline_.count());
            drop(cause_);
            return false;
        }
    }
}

PGresult* PgConnection::next_result(Clock::time_point deadline, bool& lost) {
    while (PQisBusy(conn_)) {
        if (!wait_socket(false, deadline)) {
            drop(fmt::format("no answer within {} ms", deadline_.count()));
            lost = unanswered_ = true;
            return nullptr;
        }
        if (!PQconsumeInput(conn_)) {
            set_cause_from_connection("the connection was lost");
            drop(cause_);
            lost = unanswered_ = true;
            return nullptr;
        }
    }
    return PQgetResult(conn_);
}

PgResult PgConnection::wait_result(Clock::time_point deadline) {
    if (!flush(deadline)) {
        return nullptr;
    }
    PgResult kept;
    for (;;) {
        bool lost = false;
        PGresult* r = next_result(deadline, lost);
        if (lost) {
            return nullptr;
        }
        if (!r) {
            break;
        }
        // Of several results (a script), the first failure is the one to tell.
        if (!kept || pg_succeeded(kept.get())) {
            kept.reset(r);
            continue;
        }
        PQclear(r);
    }
    if (!kept) {
        set_cause_from_connection("no result");
        return nullptr;
    }
    if (!pg_succeeded(kept.get())) {
        const char* primary = PQresultErrorField(kept.get(), PG_DIAG_MESSAGE_PRIMARY);
        cause_ = pg_one_line(primary ? primary : PQresultErrorMessage(kept.get()));
        if (PQstatus(conn_) != CONNECTION_OK) {
            drop(cause_);
        }
        return nullptr;
    }
    return kept;
}

PgResult PgConnection::run(const std::string& name, const std::vector<std::string>& params) {
    unanswered_ = false;
    const CommitGuard guard{unanswered_, !in_transaction_};
    if (!ready()) {
        return nullptr;
    }
    std::vector<const char*> values;
    values.reserve(params.size());
    for (const auto& p : params) {
        values.push_back(p.c_str());
    }
    if (!PQsendQueryPrepared(conn_, name.c_str(), static_cast<int>(values.size()), values.data(), nullptr,
                             nullptr, 0)) {
        set_cause_from_connection("cannot send a statement");
        drop(cause_);
        return nullptr;
    }
    return wait_result(Clock::now() + deadline_);
}

PgResult PgConnection::exec(const std::string& sql) {
    unanswered_ = false;
    const CommitGuard guard{unanswered_, sql == "COMMIT" || (!in_transaction_ && sql != "BEGIN" && sql != "ROLLBACK")};
    if (!ready()) {
        return nullptr;
    }
    if (!PQsendQuery(conn_, sql.c_str())) {
        set_cause_from_connection("cannot send a statement");
        drop(cause_);
        return nullptr;
    }
    PgResult r = wait_result(Clock::now() + deadline_);
    if (sql == "BEGIN") {
        in_transaction_ = static_cast<bool>(r);
    } else if (sql == "COMMIT" || sql == "ROLLBACK") {
        in_transaction_ = false;
    }
    return r;
}

void PgConnection::rollback() {
    in_transaction_ = false;
    if (conn_ && PQstatus(conn_) == CONNECTION_OK && PQtransactionStatus(conn_) != PQTRANS_IDLE) {
        const std::string kept = cause_;
        if (!exec("ROLLBACK")) {
            drop(cause_);
        }
        cause_ = kept;
    }
}

}  // namespace by::master
