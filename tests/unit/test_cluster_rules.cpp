// The rules of cluster membership (cluster_rules.hpp), with the database's
// clock given as numbers: when a member is live, dead or gone, who may take
// a name, whom a master declares dead, and what a heartbeat found.
#include <gtest/gtest.h>

#include "master/cluster_rules.hpp"

using namespace by::master;

namespace {

constexpr uint64_t s = 1'000'000;
constexpr uint64_t timeout = 10 * s;
constexpr uint64_t t0 = 1'800'000'000 * s;

MemberRow joined(const std::string& name, uint64_t heartbeat_at, uint64_t fence = 1) {
    MemberRow r;
    r.name = name;
    r.status = "joined";
    r.fence = fence;
    r.heartbeat_at = heartbeat_at;
    r.host = "h1";
    r.pid = 4242;
    return r;
}

}  // namespace

TEST(ClusterRules, ALiveMemberIsOneWhoseHeartbeatIsAtMostTheTimeoutOld) {
    const MemberRow m = joined("m1", t0);
    EXPECT_EQ(liveness(m, t0, timeout), Liveness::live);
    EXPECT_EQ(liveness(m, t0 + timeout, timeout), Liveness::live) << "exactly the timeout: still live";
    EXPECT_EQ(liveness(m, t0 + timeout + 1, timeout), Liveness::dead);
    EXPECT_EQ(heartbeat_age(m, t0 + 3 * s), 3 * s);
    // A heartbeat "in the future" (the row was read before the time was
    // taken) is no age at all, not a huge one.
    EXPECT_EQ(heartbeat_age(m, t0 - 1), 0u);
    EXPECT_EQ(liveness(m, t0 - 1, timeout), Liveness::live);
}

TEST(ClusterRules, DeclaredDeadOrLeftIsNotLiveWhateverTheHeartbeat) {
    MemberRow m = joined("m1", t0);
    m.status = "dead";
    EXPECT_EQ(liveness(m, t0, timeout), Liveness::dead);
    m.status = "left";
    EXPECT_EQ(liveness(m, t0, timeout), Liveness::left);
    EXPECT_EQ(to_string(Liveness::left), "left");
    EXPECT_EQ(to_string(Liveness::live), "live");
    EXPECT_EQ(to_string(Liveness::dead), "dead");
}

TEST(ClusterRules, ANameHeldByALiveMasterIsRefusedWithTheReason) {
    const MemberRow holder = joined("m1", t0);
    const JoinVerdict v = may_join(holder, t0 + 2 * s, timeout, false);
    EXPECT_FALSE(v.allowed);
    EXPECT_EQ(v.refusal,
              "a live master named 'm1' is in the cluster (host h1, pid 4242, last heartbeat 2.0 s ago); two "
              "masters must not share a name: give this one another [master] name, or stop the other one");
    // Its old process gone from this host: the same master restarted after
    // a crash takes its name back without waiting for the timeout.
    EXPECT_TRUE(may_join(holder, t0 + 2 * s, timeout, true).allowed);
}

TEST(ClusterRules, ANameOfADeadLeftOrNewMemberMayBeTaken) {
    EXPECT_TRUE(may_join(joined("m1", t0), t0 + timeout + 1, timeout, false).allowed);
    MemberRow m = joined("m1", t0);
    m.status = "left";
    EXPECT_TRUE(may_join(m, t0, timeout, false).allowed);
    m.status = "dead";
    EXPECT_TRUE(may_join(m, t0, timeout, false).allowed);
    MemberRow blank;
    blank.name = "new";
    EXPECT_TRUE(may_join(blank, t0, timeout, false).allowed) << "a blank row";
}

TEST(ClusterRules, OnlyJoinedOthersPastTheTimeoutAreDeclaredDead) {
    std::vector<MemberRow> rows{joined("self", t0 - 60 * s), joined("live", t0 - timeout),
                                joined("late", t0 - timeout - 1), joined("old", t0 - 3600 * s)};
    rows.push_back(joined("gone", t0 - 3600 * s));
    rows.back().status = "left";
    rows.push_back(joined("fenced", t0 - 3600 * s));
    rows.back().status = "dead";
    std::vector<std::string> names;
    for (const MemberRow& r : to_declare_dead(rows, "self", t0, timeout)) {
        names.push_back(r.name);
    }
    EXPECT_EQ(names, (std::vector<std::string>{"late", "old"}));
    EXPECT_TRUE(to_declare_dead(rows, "self", t0 - 3601 * s, timeout).empty()) << "an hour earlier: all live";
}

TEST(ClusterRules, AfterItsOwnBlindSpellAMasterGivesTheOthersTheTimeoutToHeartbeatAgain) {
    // The database was away from t0 - 60 s to t0: nobody could heartbeat.
    // This master's first heartbeat after it was at t0.
    const std::vector<MemberRow> rows{joined("self", t0), joined("other", t0 - 60 * s)};
    EXPECT_EQ(to_declare_dead(rows, "self", t0, timeout).size(), 1u) << "without the watch: dead at once";
    EXPECT_TRUE(to_declare_dead(rows, "self", t0, timeout, t0).empty());
    EXPECT_TRUE(to_declare_dead(rows, "self", t0 + timeout, timeout, t0).empty());
    // The other did not come back within the timeout: dead then.
    const auto dead = to_declare_dead(rows, "self", t0 + timeout + 1, timeout, t0);
    ASSERT_EQ(dead.size(), 1u);
    EXPECT_EQ(dead[0].name, "other");
    EXPECT_EQ(dead[0].heartbeat_at, t0 - 60 * s) << "the row as read, for the declaration's check";
    // A heartbeat newer than the watch counts as it is.
    const std::vector<MemberRow> later{joined("self", t0 + 20 * s), joined("other", t0 + 5 * s)};
    EXPECT_EQ(to_declare_dead(later, "self", t0 + 16 * s, timeout, t0).size(), 1u);
    EXPECT_TRUE(to_declare_dead(later, "self", t0 + 15 * s, timeout, t0).empty());
}

TEST(ClusterRules, AHeartbeatIsOkLateOrFenced) {
    EXPECT_EQ(judge_heartbeat(true, 2 * s, timeout), HeartbeatVerdict::ok);
    EXPECT_EQ(judge_heartbeat(true, timeout, timeout), HeartbeatVerdict::ok);
    EXPECT_EQ(judge_heartbeat(true, timeout + 1, timeout), HeartbeatVerdict::late);
    EXPECT_EQ(judge_heartbeat(false, 0, timeout), HeartbeatVerdict::fenced);
    EXPECT_EQ(judge_heartbeat(false, 2 * s, timeout), HeartbeatVerdict::fenced);
    EXPECT_EQ(seconds_text(1'250'000), "1.2 s");
    EXPECT_EQ(seconds_text(12'000'000), "12.0 s");
}
