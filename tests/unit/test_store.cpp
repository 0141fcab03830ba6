// The store, in SQLite and in PostgreSQL: builds and worker state survive
// reopening.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "common/sqlite.hpp"
#include "store_test_support.hpp"

using namespace by::master;

namespace {

class StoreTest : public ::testing::TestWithParam<std::string> {
protected:
    TestDatabase db_{GetParam()};
};

}  // namespace

TEST_P(StoreTest, BuildsSurviveReopen) {
    uint64_t pending_id = 0, running_id = 0, done_id = 0;
    {
        auto s = db_.open();
        ASSERT_TRUE(s);
        Build a;
        a.builder = "hello";
        a.requested = {{"k", "v"}};
        a.submitted_at = 11;
        ASSERT_TRUE(s->record_submitted(a));
        pending_id = a.id;
        Build b;
        b.builder = "hello";
        ASSERT_TRUE(s->record_submitted(b));
        running_id = b.id;
        start_build(b, "bot1", {}, 20);
        ASSERT_TRUE(s->claim_builds({b}));
        Build c;
        c.builder = "other";
        ASSERT_TRUE(s->record_submitted(c));
        done_id = c.id;
        start_build(c, "bot2", {}, 30);
        finish_build(c, Result::success, 0, 40);
        ASSERT_TRUE(s->record_ended(c));
    }
    auto s = db_.open();
    ASSERT_TRUE(s);
    auto unfinished = s->load_unfinished();
    ASSERT_EQ(unfinished.size(), 2u);
    EXPECT_EQ(unfinished[0].id, pending_id);
    EXPECT_EQ(unfinished[0].state, BuildState::pending);
    EXPECT_EQ(unfinished[0].requested.at("k"), "v");
    EXPECT_EQ(unfinished[0].submitted_at, 11u);
    EXPECT_EQ(unfinished[0].request_id, pending_id);
    EXPECT_EQ(unfinished[1].id, running_id);
    EXPECT_EQ(unfinished[1].worker, "bot1");
    auto done = s->load_build(done_id);
    ASSERT_TRUE(done);
    EXPECT_EQ(done->result, Result::success);
    EXPECT_EQ(done->finished_at, 40u);
    EXPECT_EQ(done->properties.at("workername"), "bot2");
    EXPECT_FALSE(s->load_build(9999));
    auto newest = s->list_builds(0, 2);
    ASSERT_EQ(newest.size(), 2u);
    EXPECT_EQ(newest[0].id, done_id);
    EXPECT_EQ(newest[0].result, Result::success);
    EXPECT_EQ(newest[0].worker, "bot2");
    EXPECT_EQ(s->list_builds(0, 10).size(), 3u);
}

// Paging with "before", and limits that do not fit SQLite's signed 64 bits
// (2^63 and up once returned nothing at all).
TEST_P(StoreTest, ListBuildsPagesAndTakesAnyLimit) {
    auto s = db_.open();
    ASSERT_TRUE(s);
    for (int i = 0; i < 5; ++i) {
        Build b;
        b.builder = "b" + std::to_string(i);
        ASSERT_TRUE(s->record_submitted(b));
    }
    auto ids = [](const std::vector<Build>& v) {
        std::vector<uint64_t> out;
        for (const auto& b : v) out.push_back(b.id);
        return out;
    };
    EXPECT_EQ(ids(s->list_builds(0, 2)), (std::vector<uint64_t>{5, 4}));
    EXPECT_EQ(ids(s->list_builds(4, 2)), (std::vector<uint64_t>{3, 2}));
    EXPECT_EQ(ids(s->list_builds(2, 2)), (std::vector<uint64_t>{1}));
    EXPECT_TRUE(s->list_builds(1, 2).empty());
    EXPECT_EQ(s->list_builds(0, uint64_t{1} << 63).size(), 5u);
    EXPECT_EQ(s->list_builds(0, UINT64_MAX).size(), 5u);
    EXPECT_EQ(s->list_builds(UINT64_MAX, UINT64_MAX).size(), 5u);
    EXPECT_EQ(s->list_builds(uint64_t{1} << 63, 3).size(), 3u);
    EXPECT_EQ(s->list_builds(0, 1)[0].builder, "b4");
}

TEST_P(StoreTest, RetryIsOneTransaction) {
    auto s = db_.open();
    ASSERT_TRUE(s);
    Build b;
    b.builder = "hello";
    ASSERT_TRUE(s->record_submitted(b));
    start_build(b, "bot1", {}, 1);
    ASSERT_TRUE(s->claim_builds({b}));
    auto next = retry_build(b, 2);
    ASSERT_TRUE(next);
    ASSERT_TRUE(s->record_retry(b, *next));
    EXPECT_EQ(b.retried_as, next->id);
    auto old = s->load_build(b.id);
    ASSERT_TRUE(old);
    EXPECT_EQ(old->result, Result::retry);
    EXPECT_EQ(old->retried_as, next->id);
    auto unfinished = s->load_unfinished();
    ASSERT_EQ(unfinished.size(), 1u);
    EXPECT_EQ(unfinished[0].id, next->id);
    EXPECT_EQ(unfinished[0].request_id, b.id);
}

TEST_P(StoreTest, WorkerStatePersists) {
    {
        auto s = db_.open();
        ASSERT_TRUE(s);
        EXPECT_FALSE(s->load_worker("bot1"));
        WorkerRecord w{"bot1", true, "disk full", 5, 6, {{"host", "h1"}}, ""};
        ASSERT_TRUE(s->save_worker(w));
        w.last_disconnected = 7;
        ASSERT_TRUE(s->save_worker(w));
    }
    auto s = db_.open();
    ASSERT_TRUE(s);
    auto w = s->load_worker("bot1");
    ASSERT_TRUE(w);
    EXPECT_TRUE(w->paused);
    EXPECT_EQ(w->pause_reason, "disk full");
    EXPECT_EQ(w->last_connected, 5u);
    EXPECT_EQ(w->last_disconnected, 7u);
    EXPECT_EQ(w->info.at("host"), "h1");
}

TEST(SqliteStoreTest, OpenFailsClearlyOnAMissingDirectory) {
    TempDir tmp{"buildyard-store"};
    std::string error;
    EXPECT_FALSE(open_sqlite_store(tmp.path() + "/does/not/exist", error));
    EXPECT_NE(error.find("cannot open"), std::string::npos);
}

TEST(SqliteStoreTest, RefusesASchemaNewerThanItKnowsAndLeavesItAlone) {
    TempDir tmp{"buildyard-store"};
    std::string error;
    {
        auto s = open_sqlite_store(tmp.path(), error);
        ASSERT_TRUE(s) << error;
    }
    const std::string path = tmp.path() + "/state.db";
    {
        by::sqlite::Database db;
        ASSERT_EQ(db.open(path), SQLITE_OK);
        ASSERT_EQ(db.exec("UPDATE meta SET value = '99' WHERE key = 'schema_version'"), SQLITE_OK);
    }
    EXPECT_FALSE(open_sqlite_store(tmp.path(), error));
    EXPECT_NE(error.find("cannot use the state database: the schema is version 99, newer than this "
                         "buildyard-masterd knows"),
              std::string::npos)
        << error;
    by::sqlite::Database db;
    ASSERT_EQ(db.open(path), SQLITE_OK);
    auto v = db.prepare("SELECT value FROM meta WHERE key = 'schema_version'");
    ASSERT_EQ(v.step(), SQLITE_ROW);
    EXPECT_EQ(v.text(0), "99");
}

INSTANTIATE_TEST_SUITE_P(Engines, StoreTest, ::testing::ValuesIn(store_engines()), engine_name);
