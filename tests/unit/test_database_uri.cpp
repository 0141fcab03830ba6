// [master] database: sqlite or a libpq URI, and never a password in it.
#include <gtest/gtest.h>

#include "common/database_uri.hpp"

using by::config::database_uri_problem;

TEST(DatabaseUri, SqliteAndPasswordlessUrisAreAccepted) {
    for (const char* ok : {"sqlite", "postgresql://db.example/buildyard", "postgres://by@db.example:5433/buildyard",
                           "postgresql://by@db.example/buildyard?sslmode=verify-full&passfile=/etc/pgpass",
                           "postgresql:///buildyard?host=/run/postgresql&port=5432&user=by",
                           "postgresql://h/db?options=-csearch_path%3Dx&application_name=a:b@c",
                           "postgresql://h/db?passfile=%2Fetc%2Fpgpass&application_name=password"}) {
        EXPECT_EQ(database_uri_problem(ok), std::nullopt) << ok;
    }
}

TEST(DatabaseUri, APasswordIsRefusedWithoutRepeatingIt) {
    for (const char* bad : {"postgresql://by:hunter2@db.example/buildyard", "postgres://by:@db/x",
                            "postgresql://db.example/buildyard?password=hunter2",
                            "postgresql://db/x?sslmode=require&password=hunter2&port=5",
                            // libpq decodes %XX in a parameter's name too
                            "postgresql://db/x?pass%77ord=hunter2", "postgresql://db/x?%70%61ssword=hunter2",
                            "postgresql://db/x?PASS%77ORD=1&%70assword=hunter2",
                            // libpq's user part runs to the first '@' before a '/'
                            "postgresql://by:hun?ter2@db/x", "postgresql://by:hun#ter2@db/x"}) {
        const auto problem = database_uri_problem(bad);
        ASSERT_TRUE(problem) << bad;
        EXPECT_NE(problem->find("carries a password"), std::string::npos) << *problem;
        EXPECT_EQ(problem->find("hunter2"), std::string::npos) << *problem;
    }
}

TEST(DatabaseUri, WhatIsNotAUriIsRefused) {
    for (const char* bad : {"", "SQLite", "mysql://db/x", "host=db password=x", "postgresql:/db"}) {
        const auto problem = database_uri_problem(bad);
        ASSERT_TRUE(problem) << bad;
        EXPECT_NE(problem->find("expected sqlite or a PostgreSQL connection URI"), std::string::npos) << *problem;
        EXPECT_EQ(problem->find("password=x"), std::string::npos) << *problem;
    }
}
