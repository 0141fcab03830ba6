// When the subreaper's sweep of a build's processes may end
// (sweep_rounds.hpp): not while a process of the build may be alive or
// exiting, and never for long on processes that are not its own.
#include <gtest/gtest.h>

#include "worker/sweep_rounds.hpp"

using namespace by::worker;

namespace {

// Rounds until the sweep ends, feeding `rounds` and then quiet ones; 0 if
// it did not end within 1000.
unsigned rounds_until_done(std::vector<SweepRound> rounds) {
    SweepProgress p;
    for (unsigned n = 1; n <= 1000; ++n) {
        const SweepRound r = n <= rounds.size() ? rounds[n - 1] : SweepRound{};
        if (!sweep_again(p, r)) {
            return n;
        }
    }
    return 0;
}

}  // namespace

TEST(SweepRounds, AQuietFirstRoundEndsIt) {
    EXPECT_EQ(rounds_until_done({}), 1u);
}

TEST(SweepRounds, AfterAKillTwoQuietRoundsInARow) {
    EXPECT_EQ(rounds_until_done({{.alive = 1}}), 3u);
    EXPECT_EQ(rounds_until_done({{.alive = 2}, {}, {.alive = 1}}), 5u);
}

TEST(SweepRounds, AnEmptyEnvironmentIsWaitedForAFewRounds) {
    EXPECT_EQ(rounds_until_done(std::vector<SweepRound>(50, {.unsure = 1})), max_unsure_rounds + 1);
    // After a kill too: a process that cleared its own environment (of
    // another build, maybe) holds no sweep up for long.
    std::vector<SweepRound> cleared{{.alive = 1}};
    cleared.resize(50, {.unsure = 1});
    EXPECT_EQ(rounds_until_done(cleared), 1 + max_unsure_rounds + 2);
}

// A killed process reads an empty environment while it exits: waited for
// as long as it exits, then two quiet rounds.
TEST(SweepRounds, AProcessExitingIsWaitedFor) {
    std::vector<SweepRound> exiting{{.alive = 1}};
    exiting.resize(30, {.exiting = 1});
    EXPECT_EQ(rounds_until_done(exiting), 32u);
}

TEST(SweepRounds, ProcessesThatKeepExitingCostABoundedNumberOfRounds) {
    EXPECT_EQ(rounds_until_done(std::vector<SweepRound>(200, {.exiting = 1})), max_exiting_rounds + 1);
}
