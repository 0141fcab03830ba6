// Many deadlines behind one timer (the remote workers' keepalives).
#include <gtest/gtest.h>

#include "master/deadline_queue.hpp"

using by::master::DeadlineQueue;

TEST(DeadlineQueue, TakesTheDueOnesEarliestFirst) {
    DeadlineQueue q;
    EXPECT_FALSE(q.next());
    q.set(1, 300);
    q.set(2, 100);
    q.set(3, 200);
    EXPECT_EQ(q.next(), 100u);
    EXPECT_TRUE(q.take_due(99).empty());
    EXPECT_EQ(q.take_due(200), (std::vector<uint64_t>{2, 3}));
    EXPECT_EQ(q.size(), 1u);
    EXPECT_FALSE(q.has(2));
    EXPECT_EQ(q.next(), 300u);
    EXPECT_EQ(q.take_due(1000), (std::vector<uint64_t>{1}));
    EXPECT_FALSE(q.next());
}

TEST(DeadlineQueue, ASecondDeadlineReplacesTheFirst) {
    DeadlineQueue q;
    q.set(7, 100);
    q.set(7, 500);
    EXPECT_EQ(q.size(), 1u);
    EXPECT_EQ(q.next(), 500u);
    EXPECT_TRUE(q.take_due(400).empty());
    q.set(7, 50);  // earlier works too
    EXPECT_EQ(q.take_due(60), (std::vector<uint64_t>{7}));
}

TEST(DeadlineQueue, CancelledKeysAreNotTaken) {
    DeadlineQueue q;
    q.set(1, 10);
    q.set(2, 10);
    q.cancel(1);
    q.cancel(1);   // twice: harmless
    q.cancel(99);  // never set: harmless
    EXPECT_EQ(q.take_due(10), (std::vector<uint64_t>{2}));
    EXPECT_EQ(q.size(), 0u);
}

TEST(DeadlineQueue, EqualDeadlinesAllComeDue) {
    DeadlineQueue q;
    for (uint64_t k = 1; k <= 10000; ++k) q.set(k, 1000 + k % 3);
    auto due = q.take_due(1001);
    EXPECT_EQ(due.size(), 6667u);  // k % 3 == 0 or 1
    EXPECT_EQ(q.size(), 3333u);
    EXPECT_EQ(q.next(), 1002u);
}
