// The store's mail part: schema upgrade of an older state.db, missing-worker
// facts, and the mail queue.
#include <gtest/gtest.h>

#include <filesystem>

#include "store_test_support.hpp"

using namespace by::master;

namespace {

class StoreMailTest : public ::testing::TestWithParam<std::string> {
protected:

    std::string sql(const std::string& text) { return db_.sql(text); }

    QueuedMail mail(const std::string& subject, uint64_t next) {
        QueuedMail m;
        m.worker = "w1";
        m.subject = subject;
        m.from = "by@x.org";
        m.to = {"a@x.org", "b@x.org"};
        m.text = "Subject: " + subject + "\r\n\r\nbody\r\n";
        m.queued_at = next;
        m.next_attempt = next;
        return m;
    }

    TestDatabase db_{GetParam()};
};

}  // namespace

// SQLite only: PostgreSQL starts at its own version 1 (see test_pg_store.cpp).
TEST(SqliteStoreMail, UpgradesAVersionOneDatabase) {
    TestDatabase db{"sqlite"};
    auto sql = [&](const std::string& text) { return db.sql(text); };
    // state.db as the first release wrote it, with a worker in it.
    sql("CREATE TABLE builds (id INTEGER PRIMARY KEY AUTOINCREMENT, request_id INTEGER NOT NULL DEFAULT 0, "
        "builder TEXT NOT NULL, worker TEXT NOT NULL DEFAULT '', state TEXT NOT NULL, result TEXT NOT NULL "
        "DEFAULT '', exit_status INTEGER NOT NULL DEFAULT -1, requested TEXT NOT NULL DEFAULT '{}', properties "
        "TEXT NOT NULL DEFAULT '{}', submitted_at INTEGER NOT NULL DEFAULT 0, started_at INTEGER NOT NULL DEFAULT "
        "0, finished_at INTEGER NOT NULL DEFAULT 0, current_step INTEGER NOT NULL DEFAULT 0, retried_as INTEGER "
        "NOT NULL DEFAULT 0);"
        "CREATE TABLE workers (name TEXT PRIMARY KEY, paused INTEGER NOT NULL DEFAULT 0, pause_reason TEXT NOT "
        "NULL DEFAULT '', last_connected INTEGER NOT NULL DEFAULT 0, last_disconnected INTEGER NOT NULL DEFAULT "
        "0, info TEXT NOT NULL DEFAULT '{}');"
        "INSERT INTO workers (name, paused, last_disconnected) VALUES ('old', 1, 77);");
    {
        auto s = db.open();
        ASSERT_TRUE(s);
        auto w = s->load_worker("old");
        ASSERT_TRUE(w);
        EXPECT_TRUE(w->paused);
        EXPECT_EQ(w->last_disconnected, 77u);
        EXPECT_EQ(s->load_missing("old").first_seen, 0u);
        EXPECT_EQ(s->load_latent("old"), LatentMachine::Record{});
        ASSERT_TRUE(s->set_first_seen("old", 5));
    }
    EXPECT_EQ(sql("SELECT value FROM meta WHERE key = 'schema_version'"), "4");
    // Opening again changes nothing.
    auto s = db.open();
    ASSERT_TRUE(s);
    EXPECT_EQ(s->load_missing("old").first_seen, 5u);
    EXPECT_EQ(sql("SELECT value FROM meta WHERE key = 'schema_version'"), "4");
}

TEST_P(StoreMailTest, FirstSeenIsSetOnce) {
    auto s = db_.open();
    ASSERT_TRUE(s);
    EXPECT_EQ(s->load_missing("w1").first_seen, 0u);
    ASSERT_TRUE(s->set_first_seen("w1", 100));
    ASSERT_TRUE(s->set_first_seen("w1", 200));
    EXPECT_EQ(s->load_missing("w1").first_seen, 100u);
    // Saving the worker's admin state keeps the missing facts.
    WorkerRecord rec;
    rec.name = "w1";
    rec.last_disconnected = 300;
    ASSERT_TRUE(s->save_worker(rec));
    EXPECT_EQ(s->load_missing("w1").first_seen, 100u);
    EXPECT_EQ(s->load_worker("w1")->last_disconnected, 300u);
}

TEST_P(StoreMailTest, MissingMailAndItsLossCommitTogether) {
    {
        auto s = db_.open();
        ASSERT_TRUE(s);
        QueuedMail m = mail("Buildyard worker w1 missing", 1000);
        ASSERT_TRUE(s->queue_missing_mail(m, "w1", 900)) << s->error();
        EXPECT_GT(m.id, 0u);
        WorkerRecord rec;
        rec.name = "w1";
        rec.last_disconnected = 900;
        ASSERT_TRUE(s->save_worker(rec));
    }
    auto s = db_.open();
    ASSERT_TRUE(s);
    EXPECT_EQ(s->load_missing("w1").notified_loss, 900u);
    auto m = s->next_due_mail(1000);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->subject, "Buildyard worker w1 missing");
    EXPECT_EQ(m->to, (std::vector<std::string>{"a@x.org", "b@x.org"}));
    EXPECT_EQ(m->text, "Subject: Buildyard worker w1 missing\r\n\r\nbody\r\n");
    EXPECT_EQ(m->worker, "w1");
}

TEST_P(StoreMailTest, AFailedQueueRecordsNoLoss) {
    auto s = db_.open();
    ASSERT_TRUE(s);
    sql("DROP TABLE mail_queue");
    QueuedMail m = mail("x", 1);
    EXPECT_FALSE(s->queue_missing_mail(m, "w1", 900));
    EXPECT_EQ(m.id, 0u);
    EXPECT_EQ(s->load_missing("w1").notified_loss, 0u);
}

TEST_P(StoreMailTest, QueueOrderRetriesAndEnds) {
    auto s = db_.open();
    ASSERT_TRUE(s);
    EXPECT_FALSE(s->next_due_mail(1000));
    EXPECT_FALSE(s->next_mail_time());
    QueuedMail late = mail("late", 500);
    QueuedMail early = mail("early", 100);
    ASSERT_TRUE(s->queue_mail(late));
    ASSERT_TRUE(s->queue_mail(early));
    EXPECT_EQ(s->next_mail_time(), 100u);
    EXPECT_FALSE(s->next_due_mail(99));
    EXPECT_EQ(s->next_due_mail(100)->subject, "early");

    // "early" failed for b@x.org only: it waits until 700 with one recipient.
    ASSERT_TRUE(s->mail_retry(early.id, {"b@x.org"}, 1, 700, "refused"));
    EXPECT_EQ(s->next_due_mail(600)->subject, "late");
    ASSERT_TRUE(s->mail_sent(late.id, 600));
    EXPECT_FALSE(s->next_due_mail(600));
    EXPECT_EQ(s->next_mail_time(), 700u);
    auto m = s->next_due_mail(700);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->to, std::vector<std::string>{"b@x.org"});
    EXPECT_EQ(m->attempts, 1u);
    ASSERT_TRUE(s->mail_given_up(early.id, 800, "still refused"));
    EXPECT_FALSE(s->next_mail_time());
    EXPECT_EQ(sql("SELECT state || ' ' || last_error FROM mail_queue WHERE id = " + std::to_string(early.id)),
              "failed still refused");

    ASSERT_TRUE(s->prune_mail(700));  // sent at 600: gone; given up at 800: kept
    EXPECT_EQ(sql("SELECT COUNT(*) FROM mail_queue"), "1");
}

TEST_P(StoreMailTest, ALatentWorkersStreakSurvivesReopen) {
    LatentMachine::Record r{3, 1'000'000'123, "its machine did not start: no base", 999};
    {
        auto s = db_.open();
        ASSERT_TRUE(s);
        EXPECT_EQ(s->load_latent("vm1"), LatentMachine::Record{});
        ASSERT_TRUE(s->save_latent("vm1", r)) << s->error();
        // Other facts of the same worker stay as they were.
        ASSERT_TRUE(s->set_first_seen("vm1", 42));
    }
    auto s = db_.open();
    ASSERT_TRUE(s);
    EXPECT_EQ(s->load_latent("vm1"), r);
    EXPECT_EQ(s->load_missing("vm1").first_seen, 42u);
    ASSERT_TRUE(s->save_latent("vm1", {}));
    EXPECT_EQ(s->load_latent("vm1"), LatentMachine::Record{});
}

INSTANTIATE_TEST_SUITE_P(Engines, StoreMailTest, ::testing::ValuesIn(store_engines()), engine_name);
