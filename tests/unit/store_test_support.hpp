// The master's store under test, opened as the master opens it and used
// through the Store interface only.
#pragma once

#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <sqlite3.h>

#include "master/store.hpp"

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
