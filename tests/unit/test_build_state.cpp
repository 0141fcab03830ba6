// The build state machine and the step environment.
#include <gtest/gtest.h>

#include "common/duration.hpp"
#include "master/build.hpp"

using namespace by::master;

TEST(BuildState, StartMergesPropertiesWorkerWins) {
    Build b;
    b.id = 4;
    b.builder = "hello";
    b.requested = {{"os", "submitted"}, {"branch", "main"}, {"workername", "liar"}};
    ASSERT_EQ(start_build(b, "bot1", {{"os", "debian"}}, 100), TransitionError::none);
    EXPECT_EQ(b.state, BuildState::running);
    EXPECT_EQ(b.worker, "bot1");
    EXPECT_EQ(b.started_at, 100u);
    EXPECT_EQ(b.properties.at("os"), "debian");
    EXPECT_EQ(b.properties.at("branch"), "main");
    EXPECT_EQ(b.properties.at("workername"), "bot1");
}

TEST(BuildState, OnlyPendingBuildsStart) {
    Build b;
    ASSERT_EQ(start_build(b, "w", {}, 1), TransitionError::none);
    EXPECT_EQ(start_build(b, "w", {}, 2), TransitionError::not_pending);
    EXPECT_EQ(b.started_at, 1u);
}

TEST(BuildState, FinishOnlyFromRunning) {
    Build b;
    EXPECT_EQ(finish_build(b, Result::success, 0, 5), TransitionError::not_running);
    start_build(b, "w", {}, 1);
    ASSERT_EQ(finish_build(b, Result::failure, 2, 5), TransitionError::none);
    EXPECT_EQ(b.state, BuildState::finished);
    EXPECT_EQ(b.result, Result::failure);
    EXPECT_EQ(b.exit_status, 2);
    EXPECT_EQ(b.finished_at, 5u);
    EXPECT_EQ(finish_build(b, Result::success, 0, 6), TransitionError::already_finished);
    EXPECT_EQ(b.result, Result::failure);
}

TEST(BuildState, CancelPending) {
    Build b;
    ASSERT_EQ(cancel_pending(b, 9), TransitionError::none);
    EXPECT_EQ(b.result, Result::cancelled);
    EXPECT_EQ(cancel_pending(b, 10), TransitionError::already_finished);
    Build running;
    start_build(running, "w", {}, 1);
    EXPECT_EQ(cancel_pending(running, 2), TransitionError::not_pending);
    EXPECT_EQ(running.state, BuildState::running);
}

TEST(BuildState, RetryFinishesAndMakesARerunOfTheSameRequest) {
    Build b;
    b.id = 10;
    b.request_id = 10;
    b.builder = "hello";
    b.requested = {{"branch", "main"}};
    start_build(b, "bot1", {{"os", "debian"}}, 1);
    auto next = retry_build(b, 7);
    ASSERT_TRUE(next);
    EXPECT_EQ(b.state, BuildState::finished);
    EXPECT_EQ(b.result, Result::retry);
    EXPECT_EQ(next->state, BuildState::pending);
    EXPECT_EQ(next->request_id, 10u);
    EXPECT_EQ(next->builder, "hello");
    EXPECT_TRUE(next->worker.empty());
    // The rerun carries what was submitted, not the first worker's properties.
    EXPECT_EQ(next->properties, (std::map<std::string, std::string>{{"branch", "main"}}));
    EXPECT_FALSE(retry_build(b, 8));  // a finished build cannot be retried again
}

TEST(BuildState, RetryOfARerunKeepsTheOriginalRequest) {
    Build b;
    b.id = 12;
    b.request_id = 10;
    start_build(b, "w", {}, 1);
    auto next = retry_build(b, 2);
    ASSERT_TRUE(next);
    EXPECT_EQ(next->request_id, 10u);
}

TEST(BuildState, StepEnvironment) {
    Build b;
    b.id = 42;
    b.builder = "hello";
    b.requested = {{"os", "linux"}, {"weird-key.x", "v"}};
    start_build(b, "bot1", {}, 1);
    auto env = step_environment(b);
    EXPECT_EQ(env.at("BUILDYARD_BUILD_ID"), "42");
    EXPECT_EQ(env.at("BUILDYARD_BUILDER"), "hello");
    EXPECT_EQ(env.at("BUILDYARD_WORKER"), "bot1");
    EXPECT_EQ(env.at("BUILDYARD_PROP_os"), "linux");
    EXPECT_EQ(env.at("BUILDYARD_PROP_workername"), "bot1");
    EXPECT_EQ(env.at("BUILDYARD_PROP_weird_key_x"), "v");
}

TEST(BuildState, NamesRoundTrip) {
    for (auto r : {Result::success, Result::failure, Result::exception, Result::retry, Result::cancelled}) {
        EXPECT_EQ(parse_result(to_string(r)), r);
    }
    for (auto s : {BuildState::pending, BuildState::running, BuildState::finished}) {
        EXPECT_EQ(parse_build_state(to_string(s)), s);
    }
    EXPECT_FALSE(parse_result("bogus"));
}

TEST(BuildState, LogTrailerSaysHowAFailureEnded) {
    Build b;
    b.id = 7;
    start_build(b, "w", {}, 1'000'000);
    finish_build(b, Result::failure, 2, 2'250'000);
    EXPECT_EQ(log_trailer(b), "--- failure: exit status 2, after 1.25 s\n");

    Build cancelled;
    start_build(cancelled, "w", {}, 1'000'000);
    finish_build(cancelled, Result::cancelled, -1, 76'000'000);
    EXPECT_EQ(log_trailer(cancelled), "--- cancelled: after 1 min 15 s\n");

    Build ok;
    start_build(ok, "w", {}, 1);
    finish_build(ok, Result::success, 0, 2);
    EXPECT_EQ(log_trailer(ok), "") << "a success needs no trailer";
    Build never;
    cancel_pending(never, 5);
    EXPECT_EQ(log_trailer(never), "") << "a build that never ran has no log";
}

TEST(Duration, Format) {
    EXPECT_EQ(by::format_duration(0), "0.00 s");
    EXPECT_EQ(by::format_duration(12'340'000), "12.3 s");
    EXPECT_EQ(by::format_duration(185'000'000), "3 min 05 s");
    EXPECT_EQ(by::format_duration(7'380'000'000), "2 h 03 min");
}

TEST(BuildState, DefaultPropertiesLoseToSubmittedOnesWhichLoseToTheWorkers) {
    Build b;
    b.requested = {{"branch", "feature"}, {"os", "submitted"}};
    start_build(b, "w1", {{"os", "debian"}}, 1, {{"branch", "main"}, {"jobs", "4"}, {"os", "default"}});
    EXPECT_EQ(b.properties, (std::map<std::string, std::string>{
                                {"branch", "feature"}, {"jobs", "4"}, {"os", "debian"}, {"workername", "w1"}}));
}
