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

// The dispatcher told of these builders and workers as they are now, then
// asked for a plan; `workers` gets the new load back, as the master's
// workers would after carrying it out.
std::vector<Assignment> plan_now(Dispatcher& d, const std::map<std::string, std::vector<std::string>>& builders,
                                 std::map<std::string, WorkerSlot>& workers, size_t limit = SIZE_MAX) {
    d.set_builders(builders);
    for (const auto& [name, s] : workers) d.update(name, s);
    auto out = d.plan(limit);
    for (auto& [name, s] : workers) s = *d.slot(name);
    return out;
}

}  // namespace

TEST(Dispatch, NothingPendingAssignsNothing) {
    Dispatcher d;
    std::map<std::string, WorkerSlot> w{{"w1", attached()}};
    EXPECT_TRUE(plan_now(d, one_builder({"w1"}), w).empty());
}

TEST(Dispatch, RespectsMaxBuildsAcrossBuilders) {
    Dispatcher d;
    for (uint64_t id = 1; id <= 5; ++id) d.enqueue(id % 2 ? "a" : "b", id);
    std::map<std::string, WorkerSlot> w{{"w1", attached(2, 1)}};  // one slot left
    auto plan = plan_now(d, {{"a", {"w1"}}, {"b", {"w1"}}}, w);
    ASSERT_EQ(plan.size(), 1u);
    EXPECT_EQ(plan[0].build, 1u);
    EXPECT_EQ(w["w1"].running, 2u);
    EXPECT_EQ(d.pending(), 4u);
}

TEST(Dispatch, ZeroMaxBuildsMeansNoLimit) {
    Dispatcher d;
    for (uint64_t id = 1; id <= 50; ++id) d.enqueue("b", id);
    std::map<std::string, WorkerSlot> w{{"w1", attached(0)}};
    EXPECT_EQ(plan_now(d, one_builder({"w1"}), w).size(), 50u);
    EXPECT_EQ(d.pending(), 0u);
}

TEST(Dispatch, ChoosesTheLeastBusyWorker) {
    Dispatcher d;
    d.enqueue("b", 1);
    std::map<std::string, WorkerSlot> w{{"w1", attached(4, 2)}, {"w2", attached(4, 1)}, {"w3", attached(4, 3)}};
    auto plan = plan_now(d, one_builder({"w1", "w2", "w3"}), w);
    ASSERT_EQ(plan.size(), 1u);
    EXPECT_EQ(plan[0].worker, "w2");
}

TEST(Dispatch, SpreadsEvenlyAndRoundRobinsOnTies) {
    Dispatcher d;
    for (uint64_t id = 1; id <= 4; ++id) d.enqueue("b", id);
    std::map<std::string, WorkerSlot> w{{"w1", attached(2)}, {"w2", attached(2)}};
    auto plan = plan_now(d, one_builder({"w1", "w2"}), w);
    ASSERT_EQ(plan.size(), 4u);
    EXPECT_EQ(plan[0].worker, "w1");
    EXPECT_EQ(plan[1].worker, "w2");
    EXPECT_EQ(plan[2].worker, "w1");
    EXPECT_EQ(plan[3].worker, "w2");
    // After the first has finished one, the next tie goes to whoever waited longest.
    w["w1"].running = 1;
    w["w2"].running = 1;
    d.enqueue("b", 5);
    plan = plan_now(d, one_builder({"w1", "w2"}), w);
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
    EXPECT_TRUE(plan_now(d, one_builder({"p", "c", "d"}), w).empty());
    EXPECT_EQ(d.pending(), 1u);
    w["ok"] = attached();
    auto plan = plan_now(d, one_builder({"p", "c", "d", "ok"}), w);
    ASSERT_EQ(plan.size(), 1u);
    EXPECT_EQ(plan[0].worker, "ok");
}

TEST(Dispatch, OnlyWorkersOfTheBuilder) {
    Dispatcher d;
    d.enqueue("b", 1);
    std::map<std::string, WorkerSlot> w{{"other", attached()}};
    EXPECT_TRUE(plan_now(d, {{"b", {"mine"}}, {"x", {"other"}}}, w).empty());
}

TEST(Dispatch, OldestBuildFirstAcrossBuilders) {
    Dispatcher d;
    d.enqueue("late", 7);
    d.enqueue("early", 3);
    d.enqueue("late", 9);
    std::map<std::string, WorkerSlot> w{{"w", attached(2)}};
    auto plan = plan_now(d, {{"late", {"w"}}, {"early", {"w"}}}, w);
    ASSERT_EQ(plan.size(), 2u);
    EXPECT_EQ(plan[0].build, 3u);
    EXPECT_EQ(plan[1].build, 7u);
}

TEST(Dispatch, BlockedBuilderDoesNotHoldUpOthers) {
    Dispatcher d;
    d.enqueue("stuck", 1);  // its only worker is busy
    d.enqueue("free", 2);
    std::map<std::string, WorkerSlot> w{{"busy", attached(1, 1)}, {"idle", attached(1)}};
    auto plan = plan_now(d, {{"stuck", {"busy"}}, {"free", {"idle"}}}, w);
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
    auto plan = plan_now(d, one_builder({"w"}), w);
    ASSERT_EQ(plan.size(), 1u);
    EXPECT_EQ(plan[0].build, 7u);
}

TEST(Dispatch, UnknownBuilderWaits) {
    Dispatcher d;
    d.enqueue("gone", 1);
    std::map<std::string, WorkerSlot> w{{"w", attached()}};
    EXPECT_TRUE(plan_now(d, one_builder({"w"}), w).empty());
    EXPECT_EQ(d.pending("gone"), 1u);
}

TEST(Dispatch, LimitCapsAssignmentsAndKeepsTheRestQueued) {
    Dispatcher d;
    for (uint64_t id = 1; id <= 10; ++id) d.enqueue("b", id);
    std::map<std::string, WorkerSlot> w{{"w", attached(0)}};
    auto plan = plan_now(d, one_builder({"w"}), w, 3);
    ASSERT_EQ(plan.size(), 3u);
    EXPECT_EQ(plan[2].build, 3u);
    EXPECT_EQ(d.pending(), 7u);
}

// The index the dispatcher keeps between plans, as the master drives it:
// one update per change of one worker.

TEST(DispatchIndex, UpdatesMoveAWorkerInAndOutOfTheChoice) {
    Dispatcher d;
    d.set_builders(one_builder({"w1", "w2"}));
    d.update("w1", attached(1));
    d.update("w2", attached(1));
    d.enqueue("b", 1);
    auto p = d.plan();
    ASSERT_EQ(p.size(), 1u);
    EXPECT_EQ(p[0].worker, "w1");
    EXPECT_EQ(d.slot("w1")->running, 1u);
    // w1 is full now; w2 gets the next, then nobody has room.
    d.enqueue("b", 2);
    d.enqueue("b", 3);
    p = d.plan();
    ASSERT_EQ(p.size(), 1u);
    EXPECT_EQ(p[0].worker, "w2");
    EXPECT_EQ(d.pending(), 1u);
    // w1's build ended: it takes the waiting one.
    WorkerSlot done = *d.slot("w1");
    done.running = 0;
    d.update("w1", done);
    p = d.plan();
    ASSERT_EQ(p.size(), 1u);
    EXPECT_EQ(p[0].worker, "w1");
    EXPECT_EQ(p[0].build, 3u);
}

TEST(DispatchIndex, PausedDetachedAndForgottenWorkersGetNothing) {
    Dispatcher d;
    d.set_builders(one_builder({"a", "b"}));
    d.update("a", attached());
    d.update("b", attached());
    WorkerSlot paused = attached();
    paused.paused = true;
    d.update("a", paused);
    d.update("b", WorkerSlot{});  // detached
    d.enqueue("b", 1);
    EXPECT_TRUE(d.plan().empty());
    d.update("b", attached());
    d.forget("b");
    EXPECT_TRUE(d.plan().empty());
    EXPECT_EQ(d.slot("b")->attached, false);
    d.update("b", attached());  // back under the same name
    auto p = d.plan();
    ASSERT_EQ(p.size(), 1u);
    EXPECT_EQ(p[0].worker, "b");
}

TEST(DispatchIndex, ReconfiguredBuildersTakeEffect) {
    Dispatcher d;
    d.set_builders({{"x", {"w1"}}, {"y", {"w2"}}});
    d.update("w1", attached());
    d.update("w2", attached());
    d.enqueue("x", 1);
    d.set_builders({{"x", {"w2"}}});
    auto p = d.plan();
    ASSERT_EQ(p.size(), 1u);
    EXPECT_EQ(p[0].worker, "w2");
    // A builder that left keeps its builds pending.
    d.enqueue("y", 2);
    EXPECT_TRUE(d.plan().empty());
    EXPECT_EQ(d.pending("y"), 1u);
}

TEST(DispatchIndex, StandbyWorkersOnlyWhenAskedAndByTheSameRank) {
    Dispatcher d;
    d.set_builders(one_builder({"busy", "latent"}));
    d.update("busy", attached(1, 1));
    WorkerSlot latent;
    latent.standby = true;
    latent.max_builds = 1;
    d.update("latent", latent);
    d.enqueue("b", 1);
    EXPECT_TRUE(d.plan().empty());
    auto p = d.plan(SIZE_MAX, true);
    ASSERT_EQ(p.size(), 1u);
    EXPECT_EQ(p[0].worker, "latent");
    // An attached worker with room ranks with it: the less busy one wins.
    d.update("busy", attached(2, 1));
    latent.running = 0;
    latent.max_builds = 0;
    latent.last_assigned = d.slot("latent")->last_assigned;
    d.update("latent", latent);
    d.enqueue("b", 2);
    p = d.plan(SIZE_MAX, true);
    ASSERT_EQ(p.size(), 1u);
    EXPECT_EQ(p[0].worker, "latent");
    // A standby worker that is paused does not count.
    latent.paused = true;
    d.update("latent", latent);
    d.enqueue("b", 3);
    p = d.plan(SIZE_MAX, true);
    ASSERT_EQ(p.size(), 1u);
    EXPECT_EQ(p[0].worker, "busy");
}

TEST(DispatchIndex, ManyWorkersSpreadInRoundRobinOrder) {
    // Ten thousand idle workers: each of the first builds goes to a worker
    // that has none, in name order, and the one that waited longest comes
    // next after all have had one.
    Dispatcher d;
    std::vector<std::string> names;
    for (int i = 0; i < 10000; ++i) names.push_back("w" + std::to_string(10000 + i));
    d.set_builders(one_builder(names));
    for (const auto& n : names) d.update(n, attached(1));
    for (uint64_t id = 1; id <= 3; ++id) d.enqueue("b", id);
    auto p = d.plan();
    ASSERT_EQ(p.size(), 3u);
    EXPECT_EQ(p[0].worker, "w10000");
    EXPECT_EQ(p[1].worker, "w10001");
    EXPECT_EQ(p[2].worker, "w10002");
    // w10001 finishes first; it ranks after every worker that never had one.
    WorkerSlot s = *d.slot("w10001");
    s.running = 0;
    d.update("w10001", s);
    for (uint64_t id = 4; id <= 10001; ++id) d.enqueue("b", id);
    p = d.plan();
    ASSERT_EQ(p.size(), 9998u);
    EXPECT_EQ(p.front().worker, "w10003");
    EXPECT_EQ(p.back().worker, "w10001");
    EXPECT_EQ(d.pending(), 0u);
}

// A rerun (a new id, queued with its request's first id) goes before the
// builds submitted after that request, on its builder and across builders,
// and leaves the queue by its id.
TEST(Dispatch, ARerunGoesBeforeTheBuildsSubmittedAfterItsRequest) {
    Dispatcher d;
    for (uint64_t id = 10; id <= 12; ++id) d.enqueue("b", id);
    d.enqueue("a", 115);
    d.enqueue("b", 20, 3);  // rerun of request 3
    d.enqueue("a", 21, 7);  // rerun of request 7
    EXPECT_EQ(d.queued("b"), (std::vector<uint64_t>{20, 10, 11, 12}));
    EXPECT_TRUE(d.remove("b", 11));
    EXPECT_FALSE(d.remove("b", 20)) << "queued under its request, not its id";
    EXPECT_TRUE(d.remove("b", 20, 3));
    d.enqueue("b", 20, 3);
    std::map<std::string, WorkerSlot> w{{"w1", attached(2)}};
    auto plan = plan_now(d, {{"a", {"w1"}}, {"b", {"w1"}}}, w);
    ASSERT_EQ(plan.size(), 2u);
    EXPECT_EQ(plan[0].build, 20u);
    EXPECT_EQ(plan[1].build, 21u);
}
