#include "common/sqlite.hpp"

namespace by::sqlite {

Statement::Statement(sqlite3* db, std::string_view sql) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &s,
                           nullptr) == SQLITE_OK) {
        stmt_.reset(s);
    }
}

Statement& Statement::bind(int i, int64_t v) {
    sqlite3_bind_int64(stmt_.get(), i, v);
    return *this;
}

Statement& Statement::bind(int i, std::string_view v) {
    sqlite3_bind_text(stmt_.get(), i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
}

Statement& Statement::bind_null(int i) {
    sqlite3_bind_null(stmt_.get(), i);
    return *this;
}

int Statement::step() { return sqlite3_step(stmt_.get()); }

void Statement::reset() {
    sqlite3_reset(stmt_.get());
    sqlite3_clear_bindings(stmt_.get());
}

int64_t Statement::int64(int col) const { return sqlite3_column_int64(stmt_.get(), col); }

std::string Statement::text(int col) const {
    const unsigned char* t = sqlite3_column_text(stmt_.get(), col);
    int n = sqlite3_column_bytes(stmt_.get(), col);
    return t ? std::string(reinterpret_cast<const char*>(t), static_cast<size_t>(n)) : std::string();
}

bool Statement::is_null(int col) const { return sqlite3_column_type(stmt_.get(), col) == SQLITE_NULL; }

int Database::open(const std::string& path) {
    sqlite3* db = nullptr;
    int r = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
    db_.reset(db);
    if (r != SQLITE_OK) {
        return r;
    }
    sqlite3_busy_timeout(db, 5000);
    // WAL with synchronous=NORMAL: a commit survives any crash of this
    // process (kill -9); only a power loss can lose the last commits.
    if ((r = exec("PRAGMA journal_mode=WAL")) != SQLITE_OK) return r;
    if ((r = exec("PRAGMA synchronous=NORMAL")) != SQLITE_OK) return r;
    return exec("PRAGMA foreign_keys=ON");
}

int Database::exec(std::string_view sql) {
    std::string s(sql);
    return sqlite3_exec(db_.get(), s.c_str(), nullptr, nullptr, nullptr);
}

Statement Database::prepare(std::string_view sql) { return Statement(db_.get(), sql); }

int64_t Database::last_insert_rowid() const { return sqlite3_last_insert_rowid(db_.get()); }

std::string Database::error_message() const { return db_ ? sqlite3_errmsg(db_.get()) : "out of memory"; }

}  // namespace by::sqlite
