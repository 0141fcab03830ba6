// The master's store under test, opened as the master opens it and used
// through the Store interface only, in each engine: SQLite always, and
// PostgreSQL when BUILDYARD_TEST_PG_URI names a server
// (tests/lib/postgresql.py starts one for the CTest test
// cluster.store_postgresql). A test suite runs against both with
// TEST_P and INSTANTIATE_TEST_SUITE_P(..., ValuesIn(store_engines()),
// engine_name).
#pragma once

#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <unistd.h>

#include "master/pg_store.hpp"
#include "master/store.hpp"
#include "temp_dir.hpp"

inline std::unique_ptr<by::master::Store> open_test_store(const std::string& directory) {
    std::string error;
    auto store = by::master::open_sqlite_store(directory, error);
    EXPECT_TRUE(store) << error;
    return store;
}

// Runs SQL on state.db in `directory` behind the store's back (as another
// program, or a failing disk, would); returns the first column of the
// first row, if any.
inline std::string sql_behind_store(const std::string& directory, const std::string& text) {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open((directory + "/state.db").c_str(), &db), SQLITE_OK);
    std::string out;
    char* error = nullptr;
    const int rc = sqlite3_exec(
        db, text.c_str(),
        [](void* arg, int, char** values, char**) {
            auto* s = static_cast<std::string*>(arg);
            if (s->empty() && values[0]) *s = values[0];
            return 0;
        },
        &out, &error);
    EXPECT_EQ(rc, SQLITE_OK) << text << ": " << (error ? error : "");
    sqlite3_free(error);
    sqlite3_close(db);
    return out;
}

inline std::vector<std::string> store_engines() {
    std::vector<std::string> engines{"sqlite"};
    if (const char* uri = std::getenv("BUILDYARD_TEST_PG_URI"); uri && *uri) {
        engines.push_back("postgresql");
    }
    return engines;
}

// The PostgreSQL engine alone, when the test server is there: for what
// only the PostgreSQL store has.
inline std::vector<std::string> postgresql_only() {
    auto engines = store_engines();
    return engines.back() == "postgresql" ? std::vector<std::string>{"postgresql"} : std::vector<std::string>{};
}

inline std::string engine_name(const ::testing::TestParamInfo<std::string>& info) { return info.param; }

// One empty database of `engine` for one test: a temporary directory for
// SQLite, a schema of its own in the test server's database for
// PostgreSQL (dropped at the end).
class TestDatabase {
public:
    explicit TestDatabase(std::string engine) : engine_(std::move(engine)) {
        if (engine_ != "postgresql") {
            return;
        }
        static std::atomic<unsigned> count{0};
        schema_ = "t" + std::to_string(getpid()) + "_" + std::to_string(count++);
        const std::string base = std::getenv("BUILDYARD_TEST_PG_URI");
        uri_ = base + "&options=-csearch_path%3D" + schema_;
        conn_ = PQconnectdb(base.c_str());
        EXPECT_EQ(PQstatus(conn_), CONNECTION_OK) << PQerrorMessage(conn_);
        PQsetNoticeProcessor(conn_, [](void*, const char*) {}, nullptr);
        sql("CREATE SCHEMA " + schema_);
    }
    ~TestDatabase() {
        if (conn_) {
            sql("DROP SCHEMA " + schema_ + " CASCADE");
            PQfinish(conn_);
        }
    }
    TestDatabase(const TestDatabase&) = delete;
    TestDatabase& operator=(const TestDatabase&) = delete;

    const std::string& engine() const { return engine_; }
    const std::string& uri() const { return uri_; }

    // The store, as the master opens it.
    std::unique_ptr<by::master::Store> open() {
        if (engine_ != "postgresql") {
            return open_test_store(tmp_.path());
        }
        std::string error;
        auto store = by::master::open_pg_store(uri_, "", error);
        EXPECT_TRUE(store) << error;
        return store;
    }

    // Runs SQL behind the store's back; the first column of the first row.
    std::string sql(const std::string& text) {
        if (engine_ != "postgresql") {
            return sql_behind_store(tmp_.path(), text);
        }
        PGresult* r = PQexec(conn_, ("SET search_path TO " + schema_ + "; " + text).c_str());
        const auto st = PQresultStatus(r);
        EXPECT_TRUE(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) << text << ": " << PQresultErrorMessage(r);
        std::string out = PQntuples(r) > 0 && PQnfields(r) > 0 ? PQgetvalue(r, 0, 0) : "";
        PQclear(r);
        return out;
    }

    // A failing disk, as the store sees it: the database refuses to update
    // build `id`, and to insert any build, with "disk trouble".
    void refuse_writes_to(uint64_t id) {
        const std::string n = std::to_string(id);
        if (engine_ != "postgresql") {
            sql("CREATE TRIGGER refuse_update BEFORE UPDATE ON builds WHEN OLD.id = " + n +
                " BEGIN SELECT RAISE(ABORT, 'disk trouble'); END;"
                "CREATE TRIGGER refuse_insert BEFORE INSERT ON builds WHEN (SELECT MAX(id) FROM builds) >= " + n +
                " BEGIN SELECT RAISE(ABORT, 'disk trouble'); END;");
            return;
        }
        sql("CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'disk trouble'; END $$;"
            "CREATE TRIGGER refuse_update BEFORE UPDATE ON builds FOR EACH ROW WHEN (OLD.id = " + n +
            ") EXECUTE FUNCTION refuse();"
            "CREATE TRIGGER refuse_insert BEFORE INSERT ON builds FOR EACH ROW WHEN (NEW.id >= " + n +
            ") EXECUTE FUNCTION refuse();");
    }
    void accept_writes() {
        sql(engine_ != "postgresql" ? "DROP TRIGGER refuse_update; DROP TRIGGER refuse_insert"
                                    : "DROP FUNCTION refuse() CASCADE");
    }

private:
    std::string engine_;
    TempDir tmp_{"buildyard-store"};
    std::string schema_;
    std::string uri_;
    PGconn* conn_ = nullptr;
};
