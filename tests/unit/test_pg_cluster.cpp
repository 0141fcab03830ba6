// The cluster's table in PostgreSQL (cluster_store.hpp): join, heartbeat,
// declare dead and leave, as two masters' stores see them, each with its
// own connection to one database. Runs in the CTest test
// cluster.store_postgresql (tests/lib/postgresql.py starts the server).
#include "pg_cluster_test_support.hpp"

using namespace pg_cluster_test;

TEST_P(PgClusterTest, TwoMastersJoinAndSeeEachOtherLive) {
    auto a = store(), b = store();
    const auto empty = a->members()->list_members();
    ASSERT_TRUE(empty);
    EXPECT_TRUE(empty->rows.empty());
    EXPECT_GT(empty->now, 1'700'000'000'000'000u) << "the database's time, in microseconds";
    EXPECT_EQ(join(*a, "m1", 101), 1u);
    EXPECT_EQ(join(*b, "m2", 102), 1u);
    const auto listing = b->members()->list_members();
    ASSERT_TRUE(listing);
    ASSERT_EQ(listing->rows.size(), 2u);
    for (const MemberRow& r : listing->rows) {
        EXPECT_EQ(liveness(r, listing->now, timeout), Liveness::live) << r.name;
        EXPECT_EQ(r.status, "joined");
        EXPECT_EQ(r.host, "h1");
        EXPECT_EQ(r.address, "127.0.0.1:9989");
        EXPECT_LE(r.started_at, listing->now);
    }
    EXPECT_EQ(listing->rows[0].pid, 101u);
    EXPECT_EQ(listing->rows[1].pid, 102u);
}

TEST_P(PgClusterTest, ALiveNameIsRefusedAndADeadOneTakenWithANewFence) {
    auto a = store(), b = store();
    ASSERT_EQ(join(*a, "m1", 101), 1u);
    EXPECT_EQ(join(*b, "m1", 102), 0u) << "refused: m1 is live";
    EXPECT_EQ(row_of(*a, "m1").pid, 101u) << "the refused join changed nothing";
    // m1 stops heartbeating: an hour later (moved back by SQL) it is dead.
    db_.sql("UPDATE masters SET heartbeat_at = now() - interval '1 hour'");
    EXPECT_EQ(join(*b, "m1", 102), 2u);
    EXPECT_EQ(row_of(*a, "m1").pid, 102u);
    const auto hb = a->members()->heartbeat("m1", 1);
    ASSERT_TRUE(hb) << a->error();
    EXPECT_FALSE(hb->kept) << "the old incarnation is fenced";
}

TEST_P(PgClusterTest, AHeartbeatMovesTheTimeAndTellsTheGap) {
    auto a = store();
    ASSERT_EQ(join(*a, "m1", 101), 1u);
    db_.sql("UPDATE masters SET heartbeat_at = now() - interval '5 seconds'");
    const auto hb = a->members()->heartbeat("m1", 1);
    ASSERT_TRUE(hb) << a->error();
    EXPECT_TRUE(hb->kept);
    EXPECT_GE(hb->gap, 5'000'000u);
    EXPECT_LT(hb->gap, 7'000'000u);
    const auto listing = a->members()->list_members();
    ASSERT_TRUE(listing);
    EXPECT_LT(heartbeat_age(listing->rows.at(0), listing->now), 2'000'000u);
}

TEST_P(PgClusterTest, ADeadMasterIsDeclaredDeadOnceAndFenced) {
    auto a = store(), b = store(), c = store();
    ASSERT_EQ(join(*a, "m1", 101), 1u);
    ASSERT_EQ(join(*b, "m2", 102), 1u);
    db_.sql("UPDATE masters SET heartbeat_at = now() - interval '1 minute' WHERE name = 'm1'");
    const MemberRow seen = row_of(*b, "m1");
    const auto listing = b->members()->list_members();
    ASSERT_TRUE(listing);
    ASSERT_EQ(to_declare_dead(listing->rows, "m2", listing->now, timeout).size(), 1u);
    EXPECT_EQ(b->members()->declare_dead(seen, "m2", 1, taken), std::optional<bool>(true));
    EXPECT_EQ(c->members()->declare_dead(seen, "m3", 1, taken), std::optional<bool>(false)) << "once: m2 was first";
    const MemberRow dead = row_of(*c, "m1");
    EXPECT_EQ(dead.status, "dead");
    EXPECT_EQ(dead.fence, 2u);
    EXPECT_EQ(dead.declared_dead_by, "m2");
    const auto hb = a->members()->heartbeat("m1", 1);
    ASSERT_TRUE(hb);
    EXPECT_FALSE(hb->kept) << "m1 finds itself fenced";
    EXPECT_EQ(join(*a, "m1", 101), 3u) << "and joins again";
    EXPECT_EQ(row_of(*c, "m1").status, "joined");
    EXPECT_EQ(row_of(*c, "m1").declared_dead_by, "");
}

TEST_P(PgClusterTest, AMemberThatHeartbeatAfterItWasReadIsNotDeclaredDead) {
    auto a = store(), b = store();
    ASSERT_EQ(join(*a, "m1", 101), 1u);
    db_.sql("UPDATE masters SET heartbeat_at = now() - interval '1 minute' WHERE name = 'm1'");
    const MemberRow seen = row_of(*b, "m1");
    ASSERT_TRUE(a->members()->heartbeat("m1", 1).value_or(HeartbeatRecord{}).kept);
    EXPECT_EQ(b->members()->declare_dead(seen, "m2", 1, taken), std::optional<bool>(false));
    EXPECT_EQ(row_of(*b, "m1").status, "joined");
}

TEST_P(PgClusterTest, ACleanStopLeavesAndOnlyWithItsFence) {
    auto a = store(), b = store();
    ASSERT_EQ(join(*a, "m1", 101), 1u);
    EXPECT_TRUE(a->members()->leave("m1", 7)) << "another fence: nothing changes";
    EXPECT_EQ(row_of(*b, "m1").status, "joined");
    EXPECT_TRUE(a->members()->leave("m1", 1));
    const MemberRow left = row_of(*b, "m1");
    EXPECT_EQ(left.status, "left");
    EXPECT_EQ(liveness(left, left.heartbeat_at, timeout), Liveness::left);
    EXPECT_EQ(join(*b, "m1", 102), 2u) << "a name left is free at once";
}

GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(PgClusterTest);
INSTANTIATE_TEST_SUITE_P(Engines, PgClusterTest, ::testing::ValuesIn(postgresql_only()), engine_name);
