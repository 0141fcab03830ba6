// MissingTracker: when a missing worker's mail falls due, driven by a clock
// the test sets.
#include <gtest/gtest.h>

#include "master/missing.hpp"

using by::master::MissingTracker;

namespace {

constexpr uint64_t S = 1000000;  // one second in microseconds

class MissingTest : public ::testing::Test {
protected:
    uint64_t now = 1000 * S;
    MissingTracker t{[this] { return now; }};

    std::vector<std::string> due() { return t.due(); }
};

using Names = std::vector<std::string>;

}  // namespace

TEST_F(MissingTest, DueOnceTheTimeoutHasPassedSinceTheDetach) {
    t.configure("w", 60 * S, true);
    t.attached("w");
    EXPECT_EQ(t.next_deadline(), std::nullopt);
    EXPECT_EQ(t.missing_since("w"), 0u);

    t.absent("w", now);
    EXPECT_EQ(t.missing_since("w"), 1000 * S);
    EXPECT_EQ(t.next_deadline(), 1060 * S);
    now += 59 * S;
    EXPECT_EQ(due(), Names{});
    now += S;
    EXPECT_EQ(due(), Names{"w"});
    EXPECT_FALSE(t.notified("w"));
}

TEST_F(MissingTest, ExactlyOnceForEachLoss) {
    t.configure("w", 10 * S, true);
    t.absent("w", now);
    now += 10 * S;
    ASSERT_EQ(due(), Names{"w"});
    t.mark_notified("w");
    EXPECT_TRUE(t.notified("w"));
    EXPECT_EQ(due(), Names{});
    EXPECT_EQ(t.next_deadline(), std::nullopt);
    // Hearing about the same loss again (another change of the worker)
    // neither resets the clock nor asks for a second mail.
    t.absent("w", 1000 * S);
    now += 3600 * S;
    EXPECT_EQ(due(), Names{});
    EXPECT_TRUE(t.notified("w"));
    EXPECT_EQ(t.missing_since("w"), 1000 * S);
}

TEST_F(MissingTest, ReattachingInTimeCancelsTheMail) {
    t.configure("w", 10 * S, true);
    t.absent("w", now);
    now += 9 * S;
    t.attached("w");
    EXPECT_EQ(t.next_deadline(), std::nullopt);
    now += 100 * S;
    EXPECT_EQ(due(), Names{});
    EXPECT_EQ(t.missing_since("w"), 0u);
    EXPECT_FALSE(t.notified("w"));
}

TEST_F(MissingTest, ALaterLossIsANewEvent) {
    t.configure("w", 10 * S, true);
    t.absent("w", now);
    now += 10 * S;
    ASSERT_EQ(due(), Names{"w"});
    t.mark_notified("w");
    t.attached("w");
    EXPECT_FALSE(t.notified("w"));  // nothing is missing now
    now += 5 * S;
    t.absent("w", now);
    EXPECT_FALSE(t.notified("w"));
    EXPECT_EQ(t.next_deadline(), now + 10 * S);
    now += 10 * S;
    EXPECT_EQ(due(), Names{"w"});
}

TEST_F(MissingTest, ARestartRemembersTheMailedLoss) {
    // The database says loss 900 s was mailed; the worker is still away
    // since then: no second mail, whatever the time.
    t.configure("w", 10 * S, true);
    t.set_notified_loss("w", 900 * S);
    t.absent("w", 900 * S);
    EXPECT_TRUE(t.notified("w"));
    EXPECT_EQ(due(), Names{});
    EXPECT_EQ(t.next_deadline(), std::nullopt);
}

TEST_F(MissingTest, ARestartKeepsTheClockOfAnUnmailedLoss) {
    // Away since 995 s, timeout 10 s, master back at 1000 s: due at 1005 s,
    // not 10 s after the restart.
    t.configure("w", 10 * S, true);
    t.set_notified_loss("w", 500 * S);  // an older loss
    t.absent("w", 995 * S);
    EXPECT_FALSE(t.notified("w"));
    EXPECT_EQ(t.next_deadline(), 1005 * S);
    now = 1005 * S;
    EXPECT_EQ(due(), Names{"w"});
}

TEST_F(MissingTest, LongGoneWorkerIsDueAtOnce) {
    t.configure("w", 10 * S, true);
    t.absent("w", 100 * S);
    EXPECT_EQ(due(), Names{"w"});
    EXPECT_LE(*t.next_deadline(), now);
}

TEST_F(MissingTest, NewTimeoutRearmsARunningTimer) {
    t.configure("w", 60 * S, true);
    t.absent("w", now);
    EXPECT_EQ(t.next_deadline(), 1060 * S);
    t.configure("w", 120 * S, true);
    EXPECT_EQ(t.next_deadline(), 1120 * S);
    now += 61 * S;
    EXPECT_EQ(due(), Names{});
    t.configure("w", 30 * S, true);  // already past: due now
    EXPECT_EQ(t.next_deadline(), 1030 * S);
    EXPECT_EQ(due(), Names{"w"});
}

TEST_F(MissingTest, TimeoutZeroOrNoAddressesDisable) {
    t.configure("w", 0, true);
    t.absent("w", now);
    now += 1000000 * S;
    EXPECT_EQ(due(), Names{});
    EXPECT_EQ(t.next_deadline(), std::nullopt);
    // Still reported as missing, just never mailed.
    EXPECT_EQ(t.missing_since("w"), 1000 * S);

    t.configure("w", 10 * S, false);
    EXPECT_EQ(due(), Names{});
    t.configure("w", 10 * S, true);
    EXPECT_EQ(due(), Names{"w"});
}

TEST_F(MissingTest, PostponedAfterAFailureToQueue) {
    t.configure("w", 10 * S, true);
    t.absent("w", now);
    now += 10 * S;
    ASSERT_EQ(due(), Names{"w"});
    t.postpone("w", now + 60 * S);
    EXPECT_EQ(due(), Names{});
    EXPECT_EQ(t.next_deadline(), now + 60 * S);
    now += 60 * S;
    EXPECT_EQ(due(), Names{"w"});
}

TEST_F(MissingTest, EarliestDeadlineAcrossWorkers) {
    t.configure("a", 30 * S, true);
    t.configure("b", 10 * S, true);
    t.configure("c", 20 * S, true);
    t.attached("c");
    t.absent("a", now);
    t.absent("b", now + 5 * S);
    EXPECT_EQ(t.next_deadline(), 1015 * S);
    now += 30 * S;
    EXPECT_EQ(due(), (Names{"a", "b"}));
    t.mark_notified("b");
    EXPECT_EQ(t.next_deadline(), 1030 * S);
}

TEST_F(MissingTest, ForgottenAndUnknownWorkers) {
    t.configure("w", 10 * S, true);
    t.absent("w", now);
    EXPECT_TRUE(t.tracks("w"));
    t.forget("w");
    EXPECT_FALSE(t.tracks("w"));
    now += 100 * S;
    EXPECT_EQ(due(), Names{});
    EXPECT_EQ(t.missing_since("w"), 0u);
    EXPECT_FALSE(t.notified("w"));
    // Calls about workers it does not track change nothing.
    t.absent("x", now);
    t.mark_notified("x");
    EXPECT_FALSE(t.tracks("x"));
    EXPECT_EQ(t.next_deadline(), std::nullopt);
}

TEST_F(MissingTest, MarkNotifiedWhileAttachedDoesNothing) {
    t.configure("w", 10 * S, true);
    t.attached("w");
    t.mark_notified("w");
    t.absent("w", now);
    now += 10 * S;
    EXPECT_EQ(due(), Names{"w"});
}

// A latent worker whose machine failed to start is reported at once; the
// rest of the same trouble (further failed starts) adds no mail.
TEST_F(MissingTest, AtOnceForAFailedLatentStart) {
    t.configure("vm1", 300 * S, true);
    t.absent("vm1", now);  // wanted, coming up
    EXPECT_EQ(t.next_deadline(), 1300 * S);
    now += 5 * S;
    t.absent("vm1", 1000 * S, true);  // its start failed: same trouble, due now
    EXPECT_EQ(t.next_deadline(), 1000 * S);
    EXPECT_EQ(due(), Names{"vm1"});
    t.mark_notified("vm1");
    t.absent("vm1", 1000 * S, true);
    EXPECT_EQ(due(), Names{});
    EXPECT_EQ(t.next_deadline(), std::nullopt);
    // It comes up: the next failure is new trouble, with its own mail.
    t.attached("vm1");
    now += 100 * S;
    t.absent("vm1", now, true);
    EXPECT_EQ(due(), Names{"vm1"});
    // Disabled with a zero timeout, as for any worker.
    t.configure("vm1", 0, true);
    EXPECT_EQ(due(), Names{});
}
