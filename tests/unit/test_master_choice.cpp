// MasterChoice: which of a remote worker's masters it tries next, and when,
// with the time passed in.
#include <algorithm>

#include <gtest/gtest.h>

#include "worker/master_choice.hpp"

using by::worker::MasterChoice;

namespace {

constexpr uint64_t s = 1'000'000;  // one second in usec

// The wait of a step, checked against the back-off's bounds for step `k`
// (1 s doubling up to reconnect_max, then a random point in its upper half).
void expect_wait(const MasterChoice::Next& next, uint64_t now, unsigned k, unsigned max) {
    const uint64_t full = std::min<uint64_t>(uint64_t{1} << k, max) * s;
    EXPECT_GE(next.at, now + full / 2) << "step " << k;
    EXPECT_LE(next.at, now + full) << "step " << k;
}

TEST(MasterChoiceTest, OneMasterBacksOffAsAlways) {
    MasterChoice c(1, 60, 7);
    EXPECT_EQ(c.current(), 0u);
    uint64_t now = 100 * s;
    for (unsigned k = 0; k < 10; ++k) {
        const auto next = c.failed(now, false);
        EXPECT_EQ(next.master, 0u);
        EXPECT_FALSE(next.give_up);
        expect_wait(next, now, k, 60);
        EXPECT_EQ(c.rounds(), k + 1);
        now = next.at;
    }
    c.attached();
    EXPECT_EQ(c.rounds(), 0u);
    expect_wait(c.failed(now, false), now, 0, 60);
}

TEST(MasterChoiceTest, OneMasterThatRefusesIsFinal) {
    MasterChoice c(1, 60, 7);
    EXPECT_TRUE(c.failed(0, true).give_up);
}

TEST(MasterChoiceTest, StartsWithTheFirstAndGoesRoundTheList) {
    MasterChoice c(3, 60, 1);
    EXPECT_EQ(c.current(), 0u);
    EXPECT_EQ(c.failed(0, false).master, 1u);
    EXPECT_EQ(c.current(), 1u);
    EXPECT_EQ(c.failed(0, false).master, 2u);
    EXPECT_EQ(c.failed(0, false).master, 0u);
    EXPECT_EQ(c.failed(0, false).master, 1u);
}

TEST(MasterChoiceTest, BacksOffOncePerRoundOnly) {
    // Three dead masters: within a round each step waits the first step's
    // half second to a second; the wrap waits the growing back-off.
    MasterChoice c(3, 60, 3);
    uint64_t now = 0;
    for (unsigned round = 0; round < 8; ++round) {
        for (int step = 0; step < 2; ++step) {
            const auto next = c.failed(now, false);
            expect_wait(next, now, 0, 60);
            EXPECT_EQ(c.rounds(), round);
            now = next.at;
        }
        const auto wrap = c.failed(now, false);
        EXPECT_EQ(wrap.master, 0u);
        expect_wait(wrap, now, round, 60);
        EXPECT_EQ(c.rounds(), round + 1);
        now = wrap.at;
    }
}

TEST(MasterChoiceTest, ADeadFirstMasterDoesNotDelayALiveSecond) {
    // After many rounds with both down, the first still refuses connections
    // when the second comes back: the step to it stays short.
    MasterChoice c(2, 3600, 5);
    uint64_t now = 0;
    for (int i = 0; i < 40; ++i) {
        now = c.failed(now, false).at;
    }
    ASSERT_EQ(c.current(), 0u);
    const auto next = c.failed(now, false);
    EXPECT_EQ(next.master, 1u);
    EXPECT_LE(next.at, now + s);
}

TEST(MasterChoiceTest, StaysWithTheMasterThatTookIt) {
    // Attached to the second; when it is lost the worker tries the first
    // (the one after it), then the second again, and the back-off is fresh.
    MasterChoice c(2, 60, 9);
    uint64_t now = 0;
    for (int i = 0; i < 9; ++i) {
        now = c.failed(now, false).at;
    }
    ASSERT_EQ(c.current(), 1u);
    c.attached();
    EXPECT_EQ(c.current(), 1u) << "nothing moves a worker off a master that keeps it";
    EXPECT_EQ(c.rounds(), 0u);
    auto next = c.failed(now, false);
    EXPECT_EQ(next.master, 0u);
    expect_wait(next, now, 0, 60);
    now = next.at;
    next = c.failed(now, false);
    EXPECT_EQ(next.master, 1u);
    expect_wait(next, now, 0, 60);  // the first full round's back-off
    EXPECT_EQ(c.rounds(), 1u);
}

TEST(MasterChoiceTest, GivesUpWhenEveryMasterOfARoundRefused) {
    MasterChoice c(3, 60, 11);
    EXPECT_FALSE(c.failed(0, true).give_up);
    EXPECT_FALSE(c.failed(0, false).give_up) << "one master of the round did not refuse";
    EXPECT_FALSE(c.failed(0, true).give_up);
    EXPECT_FALSE(c.failed(0, true).give_up);
    EXPECT_FALSE(c.failed(0, true).give_up);
    EXPECT_TRUE(c.failed(0, true).give_up);
}

TEST(MasterChoiceTest, AnAttachmentForgetsRefusals) {
    MasterChoice c(2, 60, 13);
    EXPECT_FALSE(c.failed(0, true).give_up);
    c.attached();
    EXPECT_FALSE(c.failed(0, true).give_up);
    EXPECT_TRUE(c.failed(0, true).give_up);
}

TEST(MasterChoiceTest, BackOffStopsAtReconnectMax) {
    MasterChoice c(2, 5, 17);
    uint64_t now = 0;
    for (int i = 0; i < 200; ++i) {
        const auto next = c.failed(now, false);
        EXPECT_LE(next.at, now + 5 * s);
        now = next.at;
    }
    EXPECT_EQ(c.rounds(), 40u) << "the count of rounds is bounded";
}

TEST(MasterChoiceTest, SameSeedSameWaits) {
    MasterChoice a(2, 60, 21);
    MasterChoice b(2, 60, 21);
    for (int i = 0; i < 20; ++i) {
        EXPECT_EQ(a.failed(i * s, false).at, b.failed(i * s, false).at);
    }
}

}  // namespace
