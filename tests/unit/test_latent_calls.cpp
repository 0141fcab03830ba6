// CallRunner: a backend call runs on its own thread, its result comes back
// to the sd-event loop, and a deadline that passes first cancels it and
// sends the late result elsewhere. The loop keeps running meanwhile.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "common/raii.hpp"
#include "latent/backend_call.hpp"

using namespace by;
using namespace by::latent;
using namespace std::chrono_literals;

namespace {

class CallRunnerTest : public ::testing::Test {
protected:
    void SetUp() override {
        sd_event* e = nullptr;
        ASSERT_GE(sd_event_new(&e), 0);
        event_.reset(e);
        // A guard: no test may hang the suite.
        sd_event_source* s = nullptr;
        ASSERT_GE(sd_event_add_time_relative(
                      e, &s, CLOCK_MONOTONIC, 20'000'000, 0,
                      [](sd_event_source* src, uint64_t, void*) {
                          ADD_FAILURE() << "the loop ran for 20 s";
                          return sd_event_exit(sd_event_source_get_event(src), 1);
                      },
                      nullptr),
                  0);
        guard_.reset(s);
    }
    int loop() { return sd_event_loop(event_.get()); }
    void quit() { sd_event_exit(event_.get(), 0); }

    EventPtr event_;
    SourcePtr guard_;
};

// Waits until `flag` is set, for at most 10 s.
bool wait_flag(const std::atomic<bool>& flag) {
    for (int i = 0; i < 1000 && !flag; ++i) {
        std::this_thread::sleep_for(10ms);
    }
    return flag;
}

}  // namespace

TEST_F(CallRunnerTest, DeliversTheResultOnTheLoop) {
    CallRunner runner(event_.get());
    const auto loop_thread = std::this_thread::get_id();
    std::thread::id work_thread;
    int done = 0, expired = 0, late = 0;
    std::string value;
    ASSERT_EQ(runner.run<std::string>(
                  10'000'000,
                  [&work_thread](const Cancelled&) {
                      work_thread = std::this_thread::get_id();
                      return Outcome<std::string>{"domain-1", ""};
                  },
                  [&](Outcome<std::string> out) {
                      ++done;
                      value = out.value;
                      EXPECT_EQ(std::this_thread::get_id(), loop_thread);
                      quit();
                  },
                  [&] { ++expired; }, [&](Outcome<std::string>) { ++late; }),
              0);
    EXPECT_EQ(runner.running(), 1u);
    EXPECT_EQ(done, 0) << "never delivered from inside run()";
    ASSERT_EQ(loop(), 0);
    EXPECT_EQ(done, 1);
    EXPECT_EQ(value, "domain-1");
    EXPECT_NE(work_thread, loop_thread);
    EXPECT_EQ(expired, 0);
    EXPECT_EQ(late, 0);
    EXPECT_EQ(runner.running(), 0u);
}

TEST_F(CallRunnerTest, ADeadlineCancelsAndTheLateResultGoesElsewhere) {
    CallRunner runner(event_.get());
    std::atomic<bool> saw_cancel{false};
    std::vector<std::string> order;
    ASSERT_EQ(runner.run<bool>(
                  50'000,
                  [&saw_cancel](const Cancelled& c) {
                      saw_cancel = wait_flag(c);
                      return Outcome<bool>{false, "gave up"};
                  },
                  [&](Outcome<bool>) { order.push_back("done"); },
                  [&] { order.push_back("expired"); },
                  [&](Outcome<bool> out) {
                      order.push_back("late: " + out.error);
                      quit();
                  }),
              0);
    ASSERT_EQ(loop(), 0);
    EXPECT_TRUE(saw_cancel);
    EXPECT_EQ(order, (std::vector<std::string>{"expired", "late: gave up"}));
    EXPECT_EQ(runner.running(), 0u);
}

TEST_F(CallRunnerTest, TheLoopRunsWhileACallBlocks) {
    CallRunner runner(event_.get());
    auto release = std::make_shared<std::atomic<bool>>(false);
    bool done = false;
    ASSERT_EQ(runner.run<int>(
                  10'000'000,
                  [release](const Cancelled&) {
                      // Blocks until the loop itself lets it go.
                      return Outcome<int>{wait_flag(*release) ? 7 : 0, ""};
                  },
                  [&](Outcome<int> out) {
                      done = true;
                      EXPECT_EQ(out.value, 7);
                      quit();
                  },
                  [] { ADD_FAILURE() << "deadline"; }, [](Outcome<int>) {}),
              0);
    sd_event_source* s = nullptr;
    ASSERT_GE(sd_event_add_time_relative(
                  event_.get(), &s, CLOCK_MONOTONIC, 20'000, 0,
                  [](sd_event_source*, uint64_t, void* flag) {
                      static_cast<std::atomic<bool>*>(flag)->store(true);
                      return 0;
                  },
                  release.get()),
              0);
    SourcePtr timer(s);
    ASSERT_EQ(loop(), 0);
    EXPECT_TRUE(done);
}

TEST_F(CallRunnerTest, ManyCallsAtOnce) {
    CallRunner runner(event_.get());
    int done = 0;
    for (int i = 0; i < 16; ++i) {
        ASSERT_EQ(runner.run<int>(
                      10'000'000, [i](const Cancelled&) { return Outcome<int>{i, ""}; },
                      [&](Outcome<int>) {
                          if (++done == 16) quit();
                      },
                      [] {}, [](Outcome<int>) {}),
                  0);
    }
    ASSERT_EQ(loop(), 0);
    EXPECT_EQ(done, 16);
}

TEST_F(CallRunnerTest, ARunnerGoneFirstLeavesItsCallsToFinishAlone) {
    auto finished = std::make_shared<std::atomic<bool>>(false);
    const unsigned before = CallRunner::detached_threads();
    {
        CallRunner runner(event_.get());
        ASSERT_EQ(runner.run<int>(
                      10'000'000,
                      [finished](const Cancelled& c) {
                          wait_flag(c);  // set by the runner's destructor
                          finished->store(true);
                          return Outcome<int>{1, ""};
                      },
                      [](Outcome<int>) { ADD_FAILURE() << "delivered after the runner was gone"; }, [] {},
                      [](Outcome<int>) {}),
                  0);
    }
    EXPECT_EQ(CallRunner::detached_threads(), before + 1);
    EXPECT_TRUE(wait_flag(*finished));
}
