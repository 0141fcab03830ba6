// RAII over SQLite: a database handle and prepared statements.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <sqlite3.h>

namespace by::sqlite {

struct CloseDb {
    void operator()(sqlite3* db) const noexcept { sqlite3_close_v2(db); }
};
struct FinalizeStmt {
    void operator()(sqlite3_stmt* s) const noexcept { sqlite3_finalize(s); }
};

// A prepared statement. Bind by 1-based index; step(); read columns by
// 0-based index; reset() before reuse (done by bind_all-style callers).
class Statement {
public:
    Statement() = default;
    Statement(sqlite3* db, std::string_view sql);
    explicit operator bool() const { return stmt_ != nullptr; }

    Statement& bind(int i, int64_t v);
    Statement& bind(int i, std::string_view v);
    Statement& bind_null(int i);
    // SQLITE_ROW, SQLITE_DONE or an error code.
    int step();
    void reset();

    int64_t int64(int col) const;
    std::string text(int col) const;
    bool is_null(int col) const;

private:
    std::unique_ptr<sqlite3_stmt, FinalizeStmt> stmt_;
};

class Database {
public:
    // Opens (creating) the file, turns on WAL, a busy timeout and foreign
    // keys. Returns an SQLite error code; error_message() says more.
    int open(const std::string& path);
    int exec(std::string_view sql);
    Statement prepare(std::string_view sql);
    int64_t last_insert_rowid() const;
    std::string error_message() const;
    sqlite3* get() const { return db_.get(); }

private:
    std::unique_ptr<sqlite3, CloseDb> db_;
};

}  // namespace by::sqlite
