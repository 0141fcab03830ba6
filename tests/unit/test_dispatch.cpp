// The dispatch rules: who gets which pending build.
#include <gtest/gtest.h>

#include "master/dispatch.hpp"

using by::master::Assignment;
using by::master::Dispatcher;
using by::master::WorkerSlot;

namespace {

WorkerSlot attached(unsigned max_builds = 0, unsigned running = 0) {
    WorkerSlot s;
    s.attached = true;
    s.max_builds = max_builds;
    s.running = running;
    return s;
}

std::map<std::string, std::vector<std::string>> one_builder(std::vector<std::string> workers) {
    return {{"b", std::move(workers)}};
}

}  // namespace

TEST(Dispatch, NothingPendingAssignsNothing) {
    Dispatcher d;
    std::map<std::string, WorkerSlot> w{{"w1", attached()}};
    EXPECT_TRUE(d.plan(one_builder({"w1"}), w).empty());
}

TEST(Dispatch, RespectsMaxBuildsAcrossBuilders) {
    Dispatcher d;
    for (uint64_t id = 1; id <= 5; ++id) d.enqueue(id % 2 ? "a" : "b", id);
    std::map<std::string, WorkerSlot> w{{"w1", attached(2, 1)}};  // one slot left
    auto plan = d.plan({{"a", {"w1"}}, {"b", {"w1"}}}, w);
    ASSERT_EQ(plan.size(), 1u);
    EXPECT_EQ(plan[0].build, 1u);
    EXPECT_EQ(w["w1"].running, 2u);
    EXPECT_EQ(d.pending(), 4u);
}

TEST(Dispatch, ZeroMaxBuildsMeansNoLimit) {
    Dispatcher d;
    for (uint64_t id = 1; id <= 50; ++id) d.enqueue("b", id);
    std::map<std::string, WorkerSlot> w{{"w1", attached(0)}};
    EXPECT_EQ(d.plan(one_builder({"w1"}), w).size(), 50u);
    EXPECT_EQ(d.pending(), 0u);
}

TEST(Dispatch, ChoosesTheLeastBusyWorker) {
    Dispatcher d;
    d.enqueue("b", 1);
    std::map<std::string, WorkerSlot> w{{"w1", attached(4, 2)}, {"w2", attached(4, 1)}, {"w3", attached(4, 3)}};
    auto plan = d.plan(one_builder({"w1", "w2", "w3"}), w);
    ASSERT_EQ(plan.size(), 1u);
    EXPECT_EQ(plan[0].worker, "w2");
}

TEST(Dispatch, SpreadsEvenlyAndRoundRobinsOnTies) {
    Dispatcher d;
    for (uint64_t id = 1; id <= 4; ++id) d.enqueue("b", id);
    std::map<std::string, WorkerSlot> w{{"w1", attached(2)}, {"w2", attached(2)}};
    auto plan = d.plan(one_builder({"w1", "w2"}), w);
    ASSERT_EQ(plan.size(), 4u);
    EXPECT_EQ(plan[0].worker, "w1");
    EXPECT_EQ(plan[1].worker, "w2");
    EXPECT_EQ(plan[2].worker, "w1");
    EXPECT_EQ(plan[3].worker, "w2");
    // After the first has finished one, the next tie goes to whoever waited longest.
    w["w1"].running = 1;
    w["w2"].running = 1;
    d.enqueue("b", 5);
    plan = d.plan(one_builder({"w1", "w2"}), w);
    ASSERT_EQ(plan.size(), 1u);
    EXPECT_EQ(plan[0].worker, "w1");
}

TEST(Dispatch, SkipsPausedDetachedAndNotAcceptingWorkers) {
    Dispatcher d;
    d.enqueue("b", 1);
    WorkerSlot paused = attached();
    paused.paused = true;
    WorkerSlot closing = attached();
    closing.accepting = false;
    WorkerSlot detached;
    std::map<std::string, WorkerSlot> w{{"p", paused}, {"c", closing}, {"d", detached}};
    EXPECT_TRUE(d.plan(one_builder({"p", "c", "d"}), w).empty());
    EXPECT_EQ(d.pending(), 1u);
    w["ok"] = attached();
    auto plan = d.plan(one_builder({"p", "c", "d", "ok"}), w);
    ASSERT_EQ(plan.size(), 1u);
    EXPECT_EQ(plan[0].worker, "ok");
}

TEST(Dispatch, OnlyWorkersOfTheBuilder) {
    Dispatcher d;
    d.enqueue("b", 1);
    std::map<std::string, WorkerSlot> w{{"other", attached()}};
    EXPECT_TRUE(d.plan({{"b", {"mine"}}, {"x", {"other"}}}, w).empty());
}

TEST(Dispatch, OldestBuildFirstAcrossBuilders) {
    Dispatcher d;
    d.enqueue("late", 7);
    d.enqueue("early", 3);
    d.enqueue("late", 9);
    std::map<std::string, WorkerSlot> w{{"w", attached(2)}};
    auto plan = d.plan({{"late", {"w"}}, {"early", {"w"}}}, w);
    ASSERT_EQ(plan.size(), 2u);
    EXPECT_EQ(plan[0].build, 3u);
    EXPECT_EQ(plan[1].build, 7u);
}

TEST(Dispatch, BlockedBuilderDoesNotHoldUpOthers) {
    Dispatcher d;
    d.enqueue("stuck", 1);  // its only worker is busy
    d.enqueue("free", 2);
    std::map<std::string, WorkerSlot> w{{"busy", attached(1, 1)}, {"idle", attached(1)}};
    auto plan = d.plan({{"stuck", {"busy"}}, {"free", {"idle"}}}, w);
    ASSERT_EQ(plan.size(), 1u);
    EXPECT_EQ(plan[0].build, 2u);
    EXPECT_EQ(d.pending("stuck"), 1u);
}

TEST(Dispatch, RemoveAndRequeueKeepIdOrder) {
    Dispatcher d;
    d.enqueue("b", 5);
    d.enqueue("b", 9);
    EXPECT_TRUE(d.remove("b", 5));
    EXPECT_FALSE(d.remove("b", 5));
    EXPECT_FALSE(d.remove("nope", 1));
    d.enqueue("b", 7);  // lower than the tail: goes in its place
    std::map<std::string, WorkerSlot> w{{"w", attached(1)}};
    auto plan = d.plan(one_builder({"w"}), w);
    ASSERT_EQ(plan.size(), 1u);
    EXPECT_EQ(plan[0].build, 7u);
}

TEST(Dispatch, UnknownBuilderWaits) {
    Dispatcher d;
    d.enqueue("gone", 1);
    std::map<std::string, WorkerSlot> w{{"w", attached()}};
    EXPECT_TRUE(d.plan(one_builder({"w"}), w).empty());
    EXPECT_EQ(d.pending("gone"), 1u);
}

TEST(Dispatch, LimitCapsAssignmentsAndKeepsTheRestQueued) {
    Dispatcher d;
    for (uint64_t id = 1; id <= 10; ++id) d.enqueue("b", id);
    std::map<std::string, WorkerSlot> w{{"w", attached(0)}};
    auto plan = d.plan(one_builder({"w"}), w, 3);
    ASSERT_EQ(plan.size(), 3u);
    EXPECT_EQ(plan[2].build, 3u);
    EXPECT_EQ(d.pending(), 7u);
}
