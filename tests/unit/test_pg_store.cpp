// What only the PostgreSQL store has: a schema version of its own that a
// master refuses when it is newer, a server that is not there or stops
// answering, and a connection the server dropped. Runs in the CTest test
// cluster.store_postgresql (tests/lib/postgresql.py starts the server).
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include <unistd.h>

#include "master/pg_connection.hpp"
#include "pg_mute_proxy.hpp"
#include "store_test_support.hpp"

using namespace by::master;

namespace {

class PgStoreTest : public ::testing::TestWithParam<std::string> {
protected:
    TestDatabase db_{GetParam()};

    Build submitted(Store& s) {
        Build b;
        b.builder = "hello";
        EXPECT_TRUE(s.record_submitted(b)) << s.error();
        return b;
    }
};

}  // namespace

TEST_P(PgStoreTest, RefusesASchemaNewerThanItKnows) {
    ASSERT_TRUE(db_.open());
    EXPECT_EQ(db_.sql("SELECT value FROM meta WHERE key = 'schema_version'"), "4");
    db_.sql("UPDATE meta SET value = '99' WHERE key = 'schema_version'");
    std::string error;
    EXPECT_FALSE(open_pg_store(db_.uri(), "", error));
    EXPECT_NE(error.find("the schema is version 99, newer than this buildyard-masterd knows (up to 4)"),
              std::string::npos)
        << error;
    EXPECT_NE(error.find(db_.uri()), std::string::npos) << error;
    EXPECT_EQ(db_.sql("SELECT value FROM meta WHERE key = 'schema_version'"), "99") << "left as it was";
}

// A schema update may take far longer than a statement may (an index
// over every build of a large database; here: waiting for another
// master's update, whose lock another session holds): it is said first,
// and neither the server nor the store ends it at the usual deadline. A
// database already up to date is opened at once, unless another master
// is updating it now: then the store waits, and sees the new version.
TEST_P(PgStoreTest, ASchemaUpdateOutlastsTheStatementDeadline) {
    using namespace std::chrono_literals;
    db_.sql("SELECT pg_advisory_lock(7395891)");
    std::thread release([this] {
        std::this_thread::sleep_for(1500ms);
        db_.sql("SELECT pg_advisory_unlock(7395891)");
    });
    std::vector<std::pair<int64_t, int64_t>> said;
    PgStore s(db_.uri(), "", 500ms);
    s.on_migrating([&said](int64_t from, int64_t to) { said.emplace_back(from, to); });
    const auto t0 = std::chrono::steady_clock::now();
    const bool opened = s.open();
    const auto took = std::chrono::steady_clock::now() - t0;
    release.join();
    ASSERT_TRUE(opened) << s.error();
    EXPECT_GE(took, 1400ms) << "it waited for the lock";
    EXPECT_EQ(said, (std::vector<std::pair<int64_t, int64_t>>{{0, 4}}));
    EXPECT_EQ(db_.sql("SELECT value FROM meta WHERE key = 'schema_version'"), "4");
    EXPECT_EQ(s.deadline_of_statements(), 500ms) << "the usual deadline again after the update";

    PgStore again(db_.uri(), "", 500ms);
    again.on_migrating([&said](int64_t from, int64_t to) { said.emplace_back(from, to); });
    EXPECT_TRUE(again.open()) << again.error();
    EXPECT_EQ(said.size(), 1u) << "nothing to update, nothing said";

    // Up to date, but another master is updating it now (say, to a
    // version newer than this one knows): it waits for that, and says so.
    db_.sql("SELECT pg_advisory_lock(7395891)");
    std::thread update([this] {
        std::this_thread::sleep_for(1000ms);
        db_.sql("UPDATE meta SET value = '99' WHERE key = 'schema_version'");
        db_.sql("SELECT pg_advisory_unlock(7395891)");
    });
    PgStore third(db_.uri(), "", 500ms);
    third.on_migrating([&said](int64_t from, int64_t to) { said.emplace_back(from, to); });
    const bool opened_third = third.open();
    update.join();
    EXPECT_FALSE(opened_third);
    EXPECT_NE(third.error().find("the schema is version 99, newer than this buildyard-masterd knows (up to 4)"),
              std::string::npos)
        << third.error();
    EXPECT_EQ(said.back(), std::make_pair(int64_t{4}, int64_t{4}));
}

TEST_P(PgStoreTest, AServerThatIsNotThereFailsAtOnceNamingTheUri) {
    const std::string uri = "postgresql:///buildyard?host=/nonexistent-buildyard-dir&port=5432";
    std::string error;
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_FALSE(open_pg_store(uri, "", error));
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
    EXPECT_NE(error.find("cannot connect to PostgreSQL at " + uri + ": "), std::string::npos) << error;
    EXPECT_NE(error.find("No such file or directory"), std::string::npos) << error;
}

// A statement that does not end (here: it waits for a lock another
// session holds) fails before the store's deadline: the server ends it
// (its statement_timeout is shorter), so that nothing of it commits once
// the lock is gone, and the store goes on.
TEST_P(PgStoreTest, AStatementEndsAtTheDeadline) {
    ASSERT_TRUE(db_.open());
    PgStore s(db_.uri(), "", std::chrono::milliseconds(500));
    ASSERT_TRUE(s.open()) << s.error();
    db_.sql("BEGIN; LOCK TABLE builds IN ACCESS EXCLUSIVE MODE");
    Build b;
    b.builder = "hello";
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_FALSE(s.record_submitted(b));
    const auto took = std::chrono::steady_clock::now() - t0;
    EXPECT_GE(took, std::chrono::milliseconds(400));
    EXPECT_LT(took, std::chrono::milliseconds(1500));
    EXPECT_EQ(b.id, 0u);
    EXPECT_NE(s.error().find("cannot insert a build: canceling statement due to statement timeout"),
              std::string::npos)
        << s.error();
    db_.sql("COMMIT");
    ASSERT_TRUE(s.record_submitted(b)) << s.error();
    EXPECT_EQ(db_.sql("SELECT COUNT(*) FROM builds"), "1") << "the timed-out insert left nothing";
}

// The server ended the store's session while it was idle (a restart, an
// administrator): the next write goes to a new connection, with its
// statements prepared again, and is not lost.
TEST_P(PgStoreTest, ADroppedConnectionIsMadeAgain) {
    auto s = db_.open();
    ASSERT_TRUE(s);
    Build a = submitted(*s);
    const std::string terminated = db_.sql(
        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = "
        "'buildyard-masterd' AND pid <> pg_backend_pid()");
    ASSERT_EQ(terminated, "1");
    // Gone for good (pg_terminate_backend only signals it).
    for (int i = 0; i < 500 && db_.sql("SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = "
                                       "'buildyard-masterd'") != "0";
         ++i) {
        usleep(10'000);
    }
    Build b = submitted(*s);
    EXPECT_GT(b.id, a.id);
    start_build(b, "w1", {}, 5);
    ASSERT_TRUE(s->claim_builds({b})) << s->error();
    EXPECT_EQ(s->load_build(b.id)->worker, "w1");
}

// A batch that stops at the deadline midway leaves nothing, and no
// transaction open; the same batches then go through, and a claim still
// finds a build no longer pending.
TEST_P(PgStoreTest, ABatchThatTimesOutLeavesNothing) {
    ASSERT_TRUE(db_.open());
    PgStore s(db_.uri(), "", std::chrono::milliseconds(500));
    ASSERT_TRUE(s.open()) << s.error();
    Build a = submitted(s), b = submitted(s), c = submitted(s);
    for (Build* x : {&a, &b, &c}) {
        ASSERT_EQ(start_build(*x, "w1", {}, 5), TransitionError::none);
    }
    db_.sql("BEGIN; SELECT 1 FROM builds WHERE id = " + std::to_string(b.id) + " FOR UPDATE");
    EXPECT_FALSE(s.claim_builds({a, b, c}));
    db_.sql("COMMIT");
    EXPECT_EQ(db_.sql("SELECT COUNT(*) FROM builds WHERE state = 'pending'"), "3") << "nothing of the claim";
    ASSERT_TRUE(s.claim_builds({a, b, c})) << s.error();
    EXPECT_EQ(db_.sql("SELECT COUNT(*) FROM builds WHERE state = 'running' AND worker = 'w1'"), "3");
    EXPECT_FALSE(s.claim_builds({a, b})) << "claimed once";
    std::vector<BuildEnd> ends;
    for (Build* x : {&a, &b, &c}) {
        Build ended = *x;
        ASSERT_EQ(finish_build(ended, Result::success, 0, 9), TransitionError::none);
        ends.push_back({ended, std::nullopt});
    }
    ASSERT_TRUE(s.record_ends(ends)) << s.error();
    EXPECT_EQ(db_.sql("SELECT COUNT(*) FROM builds WHERE state = 'finished' AND finished_at = 9"), "3");
}

// A URI parameter (`key=`) of the test server's URI.
std::string uri_parameter(const std::string& uri, const std::string& key) {
    const auto at = uri.find(key + "=");
    EXPECT_NE(at, std::string::npos) << uri;
    const auto from = at + key.size() + 1;
    return uri.substr(from, uri.find('&', from) - from);
}

// The server committed a claim but its answer was lost: the master saw a
// failure and keeps the build queued. Its next claim of that build (the
// same or another worker) must succeed, or the row would say running on
// this master while nothing runs it; another master still cannot take it.
TEST_P(PgStoreTest, AClaimCommittedUnseenIsClaimedAgainByItsMasterOnly) {
    ASSERT_TRUE(db_.open());
    const std::string base = std::getenv("BUILDYARD_TEST_PG_URI");
    const std::string host = uri_parameter(base, "host"), port = uri_parameter(base, "port");
    PgMuteProxy proxy(host + "/.s.PGSQL." + port, port);
    std::string uri = db_.uri();
    uri.replace(uri.find("host=" + host), 5 + host.size(), "host=" + proxy.directory());
    // A deadline long enough that the server has run the claim by then,
    // however loaded the machine.
    PgStore s(uri, "", std::chrono::milliseconds(2000));
    ASSERT_TRUE(s.open()) << s.error();
    const auto join = [](Store& st, const std::string& name) {
        return st.members()->join({.name = name, .host = "h1", .address = "127.0.0.1:9989", .pid = 1},
                                  [](const MemberRow&, uint64_t) { return true; });
    };
    ASSERT_EQ(join(s, "m1"), std::optional<uint64_t>(1)) << s.error();
    const Build pending = submitted(s);

    Build first = pending;
    ASSERT_EQ(start_build(first, "w1", {}, 5), TransitionError::none);
    proxy.mute(true);
    EXPECT_FALSE(s.claim_available({first})) << "the answer never came";
    EXPECT_TRUE(s.unanswered());
    proxy.mute(false);
    const std::string row = "SELECT state || ' ' || master || ' ' || worker FROM builds WHERE id = " +
                            std::to_string(pending.id);
    EXPECT_EQ(db_.sql(row), "running m1 w1") << "the server committed it";

    Build again = pending;
    ASSERT_EQ(start_build(again, "w2", {}, 6), TransitionError::none);
    auto lost = s.claim_available({again});
    ASSERT_TRUE(lost) << s.error();
    EXPECT_TRUE(lost->empty()) << "claimed again by the master that holds it";
    EXPECT_EQ(db_.sql(row), "running m1 w2");

    auto other = db_.open();
    ASSERT_EQ(join(*other, "m2"), std::optional<uint64_t>(1)) << other->error();
    Build theirs = pending;
    ASSERT_EQ(start_build(theirs, "w3", {}, 7), TransitionError::none);
    lost = other->claim_available({theirs});
    ASSERT_TRUE(lost) << other->error();
    EXPECT_EQ(*lost, std::vector<uint64_t>{pending.id}) << "another master cannot take it";
    EXPECT_EQ(db_.sql(row), "running m1 w2");
}

// A lost answer says that the server may have committed only when it
// may have: a statement outside a transaction, or a COMMIT. Inside a
// transaction that the call does not commit, the transaction goes with
// the connection, and the client is not told otherwise.
TEST_P(PgStoreTest, ALostAnswerMayHaveCommittedOnlyWhatItCouldCommit) {
    ASSERT_TRUE(db_.open());
    db_.sql("CREATE TABLE counter (v INTEGER); INSERT INTO counter VALUES (0)");
    const std::string base = std::getenv("BUILDYARD_TEST_PG_URI");
    const std::string host = uri_parameter(base, "host"), port = uri_parameter(base, "port");
    PgMuteProxy proxy(host + "/.s.PGSQL." + port, port);
    std::string uri = db_.uri();
    uri.replace(uri.find("host=" + host), 5 + host.size(), "host=" + proxy.directory());
    // One connection for each case: a dropped one reconnects only after a
    // second. The deadline is long enough that the server has run what was
    // sent by then, however loaded the machine.
    auto connection = [&] {
        auto c = std::make_unique<PgConnection>(uri, "", std::chrono::milliseconds(1000));
        EXPECT_TRUE(c->connect()) << c->cause();
        c->prepare("bump", "UPDATE counter SET v = v + 1");
        EXPECT_TRUE(c->run("bump", {})) << c->cause();  // prepared and run once: v + 1
        return c;
    };
    const auto lost = [&](PgConnection& c, const std::function<bool()>& call) {
        proxy.mute(true);
        EXPECT_FALSE(call()) << "the answer never came";
        proxy.mute(false);
        return c.unanswered();
    };

    auto alone = connection();
    EXPECT_TRUE(lost(*alone, [&] { return static_cast<bool>(alone->run("bump", {})); })) << "it commits itself";
    EXPECT_EQ(db_.sql("SELECT v FROM counter"), "2");

    auto inside = connection();
    ASSERT_TRUE(inside->exec("BEGIN")) << inside->cause();
    EXPECT_FALSE(lost(*inside, [&] { return static_cast<bool>(inside->run("bump", {})); }))
        << "inside a transaction that it does not commit";
    inside->rollback();
    EXPECT_EQ(db_.sql("SELECT v FROM counter"), "3");

    auto commit = connection();
    ASSERT_TRUE(commit->exec("BEGIN")) << commit->cause();
    ASSERT_TRUE(commit->run("bump", {})) << commit->cause();
    EXPECT_TRUE(lost(*commit, [&] { return static_cast<bool>(commit->exec("COMMIT")); }));
    EXPECT_EQ(db_.sql("SELECT v FROM counter"), "5") << "the server committed it";

    auto open_pipeline = connection();
    EXPECT_FALSE(lost(*open_pipeline, [&] {
        return !open_pipeline->run_pipeline({PgCall::begin(), {"bump", {}}}).empty();
    })) << "a pipeline that leaves its transaction open";
    open_pipeline->rollback();
    auto whole_pipeline = connection();
    EXPECT_TRUE(lost(*whole_pipeline, [&] {
        return !whole_pipeline->run_pipeline({PgCall::begin(), {"bump", {}}, PgCall::commit()}).empty();
    }));
    EXPECT_EQ(db_.sql("SELECT v FROM counter"), "8");
}

GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(PgStoreTest);
INSTANTIATE_TEST_SUITE_P(Engines, PgStoreTest, ::testing::ValuesIn(postgresql_only()), engine_name);
