// The latent worker's state machine, driven with a hand-held clock.
#include <gtest/gtest.h>

#include "master/latent_state.hpp"

namespace by::master {
namespace {

constexpr uint64_t s = 1'000'000;
constexpr uint64_t t0 = 1'000'000 * s;

LatentMachine machine(int64_t build_wait, uint64_t timeout = 300) {
    return LatentMachine(LatentSettings{build_wait, timeout});
}

// offline -> substantiating -> idle/building, as a build arrives.
void bring_up(LatentMachine& m, uint64_t now, unsigned running = 1) {
    auto fx = m.build_assigned(now, running);
    ASSERT_TRUE(fx.start);
    ASSERT_EQ(m.state(), LatentState::substantiating);
    m.start_succeeded(now + s);
    m.attached(now + 2 * s, running);
}

TEST(LatentMachine, WaitingBuildStartsTheMachine) {
    auto m = machine(600);
    EXPECT_TRUE(m.accepts_builds(t0));
    EXPECT_FALSE(m.accepts_token());
    auto fx = m.build_assigned(t0, 1);
    EXPECT_TRUE(fx.start);
    EXPECT_TRUE(fx.changed);
    EXPECT_EQ(m.state(), LatentState::substantiating);
    EXPECT_TRUE(m.accepts_token());
    EXPECT_EQ(m.trouble_since(), t0);  // wanted, not there yet
    EXPECT_FALSE(m.start_failed());
    // A second build while it comes up starts nothing more.
    EXPECT_FALSE(m.build_assigned(t0 + 1, 2).start);
    EXPECT_FALSE(m.start_succeeded(t0 + s).changed);
    fx = m.attached(t0 + 5 * s, 2);
    EXPECT_TRUE(fx.changed);
    EXPECT_EQ(m.state(), LatentState::building);
    EXPECT_EQ(m.trouble_since(), 0u);
}

TEST(LatentMachine, AttachBeforeLatentdAnswers) {
    auto m = machine(600);
    m.build_assigned(t0, 1);
    m.attached(t0 + s, 1);
    EXPECT_EQ(m.state(), LatentState::building);
    EXPECT_FALSE(m.start_succeeded(t0 + 2 * s).changed);
    EXPECT_EQ(m.state(), LatentState::building);
}

TEST(LatentMachine, BuildWaitTimeoutPositiveStopsWhenIdleLongEnough) {
    auto m = machine(600);
    bring_up(m, t0);
    auto fx = m.builds_changed(t0 + 10 * s, 0);
    EXPECT_EQ(m.state(), LatentState::idle);
    EXPECT_FALSE(fx.stop);
    ASSERT_TRUE(m.next_deadline());
    EXPECT_EQ(*m.next_deadline(), t0 + 610 * s);
    EXPECT_FALSE(m.tick(t0 + 609 * s).stop);
    // A build in between cancels the deadline, and its end starts it again.
    m.build_assigned(t0 + 300 * s, 1);
    EXPECT_EQ(m.state(), LatentState::building);
    EXPECT_FALSE(m.next_deadline());
    m.builds_changed(t0 + 400 * s, 0);
    EXPECT_EQ(*m.next_deadline(), t0 + 1000 * s);
    EXPECT_FALSE(m.tick(t0 + 610 * s).stop);
    fx = m.tick(t0 + 1000 * s);
    EXPECT_TRUE(fx.stop);
    EXPECT_EQ(m.state(), LatentState::insubstantiating);
    EXPECT_EQ(m.trouble_since(), 0u);  // stopped on purpose: not missing
    EXPECT_FALSE(m.accepts_builds(t0 + 1000 * s));
    fx = m.stop_done(t0 + 1001 * s);
    EXPECT_EQ(m.state(), LatentState::offline);
    EXPECT_TRUE(fx.changed);
    EXPECT_TRUE(m.accepts_builds(t0 + 1001 * s));
}

TEST(LatentMachine, BuildWaitTimeoutZeroStopsAtOnce) {
    auto m = machine(0);
    bring_up(m, t0);
    auto fx = m.builds_changed(t0 + 10 * s, 0);
    EXPECT_TRUE(fx.stop);
    EXPECT_EQ(m.state(), LatentState::insubstantiating);
}

TEST(LatentMachine, BuildWaitTimeoutNegativeNeverStops) {
    auto m = machine(-1);
    bring_up(m, t0);
    m.builds_changed(t0 + 10 * s, 0);
    EXPECT_EQ(m.state(), LatentState::idle);
    EXPECT_FALSE(m.next_deadline());
    EXPECT_FALSE(m.tick(t0 + 1'000'000 * s).stop);
    // It may drop and come back freely.
    m.detached(t0 + 20 * s);
    EXPECT_EQ(m.state(), LatentState::substantiating);
    EXPECT_TRUE(m.accepts_token());
    m.attached(t0 + 30 * s, 0);
    EXPECT_EQ(m.state(), LatentState::idle);
    EXPECT_EQ(m.failures(), 0u);
    // A shutdown still stops it.
    EXPECT_TRUE(m.shutdown(t0 + 40 * s, false, 0).stop);
}

TEST(LatentMachine, SubstantiationTimesOut) {
    auto m = machine(600, 300);
    m.build_assigned(t0, 1);
    m.start_succeeded(t0 + s);
    EXPECT_EQ(*m.next_deadline(), t0 + 300 * s);
    EXPECT_FALSE(m.tick(t0 + 299 * s).changed);
    auto fx = m.tick(t0 + 300 * s);
    EXPECT_TRUE(fx.fail_waiting_builds);
    EXPECT_TRUE(fx.stop);  // whatever was made goes
    EXPECT_NE(fx.why.find("did not attach within 300 s"), std::string::npos) << fx.why;
    EXPECT_EQ(m.state(), LatentState::insubstantiating);
    EXPECT_TRUE(m.start_failed());
    EXPECT_EQ(m.trouble_since(), t0);
    EXPECT_EQ(m.failures(), 1u);
    EXPECT_EQ(m.quarantine_until(), t0 + 310 * s);
}

TEST(LatentMachine, QuarantineDoublesUpToAnHourAndResetsOnSuccess) {
    auto m = machine(600);
    uint64_t now = t0;
    const uint64_t expected[] = {10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600};
    for (uint64_t backoff : expected) {
        ASSERT_TRUE(m.accepts_builds(now));
        ASSERT_TRUE(m.build_assigned(now, 1).start);
        auto fx = m.start_failed(now + s, "no such domain template");
        EXPECT_TRUE(fx.fail_waiting_builds);
        EXPECT_EQ(m.quarantine_until(), now + s + backoff * s);
        m.stop_done(now + 2 * s);
        EXPECT_EQ(m.state(), LatentState::offline);
        EXPECT_TRUE(m.quarantined(now + 2 * s));
        EXPECT_FALSE(m.accepts_builds(now + 2 * s));
        EXPECT_FALSE(m.build_assigned(now + 2 * s, 1).start);
        // The end of the quarantine wakes the master up to dispatch.
        ASSERT_TRUE(m.next_deadline());
        EXPECT_EQ(*m.next_deadline(), m.quarantine_until());
        EXPECT_TRUE(m.tick(m.quarantine_until()).changed);
        now = m.quarantine_until();
    }
    EXPECT_EQ(m.last_error(), "its machine did not start: no such domain template");
    EXPECT_EQ(m.trouble_since(), t0);  // one streak of trouble, one report
    bring_up(m, now);
    EXPECT_EQ(m.failures(), 0u);
    EXPECT_EQ(m.quarantine_until(), 0u);
    EXPECT_EQ(m.trouble_since(), 0u);
    // The next failure starts from 10 s again.
    m.shutdown(now, false, 0);
    m.stop_done(now + s);
    m.build_assigned(now + 2 * s, 1);
    m.start_failed(now + 3 * s, "x");
    EXPECT_EQ(m.quarantine_until(), now + 13 * s);
}

TEST(LatentMachine, BuildArrivingWhileStoppingWaitsForTheStop) {
    auto m = machine(0);
    bring_up(m, t0);
    m.builds_changed(t0 + 10 * s, 0);
    ASSERT_EQ(m.state(), LatentState::insubstantiating);
    EXPECT_FALSE(m.accepts_builds(t0 + 11 * s));
    EXPECT_FALSE(m.build_assigned(t0 + 11 * s, 1).start);
    EXPECT_FALSE(m.accepts_token());  // the old worker may not come back
    m.stop_done(t0 + 12 * s);
    EXPECT_TRUE(m.accepts_builds(t0 + 12 * s));
    EXPECT_TRUE(m.build_assigned(t0 + 12 * s, 1).start);
}

TEST(LatentMachine, MachineEndingBeforeAttachFailsAtOnce) {
    auto m = machine(600);
    m.build_assigned(t0, 1);
    m.start_succeeded(t0 + s);
    auto fx = m.instance_gone(t0 + 2 * s, "container exited with status 1", 1);
    EXPECT_TRUE(fx.fail_waiting_builds);
    EXPECT_FALSE(fx.stop);  // latentd removed it already
    EXPECT_EQ(m.state(), LatentState::offline);
    EXPECT_TRUE(m.start_failed());
    EXPECT_NE(m.last_error().find("container exited with status 1"), std::string::npos);
}

TEST(LatentMachine, MachineEndingWhileAttachedDropsTheWorker) {
    auto m = machine(600);
    bring_up(m, t0);
    auto fx = m.instance_gone(t0 + 10 * s, "lease expired", 0);
    EXPECT_TRUE(fx.drop_link);
    EXPECT_FALSE(fx.fail_waiting_builds);  // the detach reruns its builds
    EXPECT_EQ(m.state(), LatentState::offline);
    EXPECT_EQ(m.trouble_since(), 0u);
    EXPECT_FALSE(m.detached(t0 + 10 * s).changed);
    EXPECT_TRUE(m.accepts_builds(t0 + 11 * s));
}

TEST(LatentMachine, DetachedWorkerThatNeverReturnsIsGivenUp) {
    auto m = machine(600, 60);
    bring_up(m, t0);
    m.detached(t0 + 10 * s);
    EXPECT_EQ(m.state(), LatentState::substantiating);
    EXPECT_EQ(*m.next_deadline(), t0 + 70 * s);
    auto fx = m.tick(t0 + 70 * s);
    EXPECT_TRUE(fx.stop);
    EXPECT_EQ(m.failures(), 1u);
}

TEST(LatentMachine, GracefulShutdownWaitsForBuilds) {
    auto m = machine(-1);
    bring_up(m, t0, 2);
    auto fx = m.shutdown(t0 + s, true, 2);
    EXPECT_FALSE(fx.stop);
    EXPECT_FALSE(m.accepts_builds(t0 + s));
    EXPECT_FALSE(m.builds_changed(t0 + 2 * s, 1).stop);
    fx = m.builds_changed(t0 + 3 * s, 0);
    EXPECT_TRUE(fx.stop);
    EXPECT_EQ(m.state(), LatentState::insubstantiating);
}

TEST(LatentMachine, ShutdownWhileSubstantiatingRerunsTheWaitingBuilds) {
    auto m = machine(600);
    m.build_assigned(t0, 1);
    auto fx = m.shutdown(t0 + s, false, 1);
    EXPECT_TRUE(fx.stop);
    EXPECT_TRUE(fx.fail_waiting_builds);
    EXPECT_EQ(m.failures(), 0u);  // asked for: no quarantine
    EXPECT_FALSE(m.shutdown(t0 + 2 * s, false, 0).stop);  // already stopping
}

TEST(LatentMachine, LateAnswersForAnOldStartChangeNothing) {
    auto m = machine(600);
    m.build_assigned(t0, 1);
    m.tick(t0 + 300 * s);  // gave up: stopping
    EXPECT_FALSE(m.start_succeeded(t0 + 301 * s).changed);
    EXPECT_FALSE(m.start_failed(t0 + 301 * s, "late").changed);
    EXPECT_FALSE(m.attached(t0 + 301 * s, 0).changed);
    EXPECT_EQ(m.state(), LatentState::insubstantiating);
    EXPECT_EQ(m.failures(), 1u);
}

TEST(LatentMachine, StateNames) {
    EXPECT_EQ(to_string(LatentState::offline), "offline");
    EXPECT_EQ(to_string(LatentState::substantiating), "substantiating");
    EXPECT_EQ(to_string(LatentState::idle), "idle");
    EXPECT_EQ(to_string(LatentState::building), "building");
    EXPECT_EQ(to_string(LatentState::insubstantiating), "insubstantiating");
}

}  // namespace
}  // namespace by::master

namespace by::master {
namespace {

// The worker detached, then latentd found its machine dead: that start had
// worked, so this is a loss, not a failed start. Builds waiting for the
// worker get a fresh machine at once; without any, it simply goes offline.
TEST(LatentMachine, MachineDyingAfterItsWorkerDetachedIsNoFailure) {
    auto m = machine(600);
    bring_up(m, t0);
    m.detached(t0 + 10 * s);
    ASSERT_EQ(m.state(), LatentState::substantiating);
    auto fx = m.instance_gone(t0 + 11 * s, "container exited with status 137", 1);
    EXPECT_TRUE(fx.start);
    EXPECT_FALSE(fx.fail_waiting_builds);
    EXPECT_EQ(m.state(), LatentState::substantiating);
    EXPECT_EQ(m.failures(), 0u);
    EXPECT_FALSE(m.quarantined(t0 + 11 * s));
    // The new start is a start like any other: if it dies unattached, it failed.
    m.start_succeeded(t0 + 12 * s);
    fx = m.instance_gone(t0 + 13 * s, "container exited with status 1", 1);
    EXPECT_TRUE(fx.fail_waiting_builds);
    EXPECT_EQ(m.failures(), 1u);

    auto idle = machine(600);
    bring_up(idle, t0);
    idle.detached(t0 + 10 * s);
    fx = idle.instance_gone(t0 + 11 * s, "lease expired", 0);
    EXPECT_FALSE(fx.start);
    EXPECT_EQ(idle.state(), LatentState::offline);
    EXPECT_EQ(idle.failures(), 0u);
    EXPECT_EQ(idle.trouble_since(), 0u);
}

// A master restart carries the failure streak over (state.db): the new
// machine is still quarantined, still in the same trouble, and the next
// failure doubles the backoff instead of starting at 10 s.
TEST(LatentMachine, ARestoredStreakKeepsItsQuarantineAndTrouble) {
    auto before = machine(600);
    before.build_assigned(t0, 1);
    before.start_failed(t0 + s, "no such base image");
    before.stop_done(t0 + 2 * s);
    const LatentMachine::Record saved = before.record();
    EXPECT_EQ(saved.failures, 1u);
    EXPECT_EQ(saved.quarantine_until, t0 + 11 * s);
    EXPECT_EQ(saved.trouble_since, t0);

    auto after = machine(600);
    after.restore(saved);
    EXPECT_EQ(after.record(), saved);
    EXPECT_EQ(after.state(), LatentState::offline);
    EXPECT_TRUE(after.start_failed());
    EXPECT_FALSE(after.accepts_builds(t0 + 5 * s));
    EXPECT_FALSE(after.build_assigned(t0 + 5 * s, 1).start);
    ASSERT_TRUE(after.next_deadline());
    EXPECT_EQ(*after.next_deadline(), t0 + 11 * s);
    EXPECT_TRUE(after.tick(t0 + 11 * s).changed);
    ASSERT_TRUE(after.build_assigned(t0 + 12 * s, 1).start);
    after.start_failed(t0 + 13 * s, "no such base image");
    EXPECT_EQ(after.failures(), 2u);
    EXPECT_EQ(after.quarantine_until(), t0 + 33 * s);
    EXPECT_EQ(after.trouble_since(), t0);

    // Restoring a running machine would contradict it: ignored.
    auto running = machine(600);
    bring_up(running, t0);
    running.restore(saved);
    EXPECT_EQ(running.failures(), 0u);
}

}  // namespace
}  // namespace by::master
