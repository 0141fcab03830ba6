// How many remote connections the master's descriptors allow, and the cap
// per peer address before authentication.
#include <gtest/gtest.h>

#include "master/connection_limits.hpp"

using by::master::ConnectionLimits;
using Verdict = ConnectionLimits::Verdict;

TEST(ConnectionLimits, LeavesTheReserveAndRoomForBuildLogs) {
    // systemd's default soft limit: far below max_connections.
    EXPECT_EQ(ConnectionLimits::for_descriptors(1024), (1024u - ConnectionLimits::reserve) / ConnectionLimits::descriptors_per_connection);
    EXPECT_EQ(ConnectionLimits::for_descriptors(ConnectionLimits::reserve), 0u);
    EXPECT_EQ(ConnectionLimits::for_descriptors(10), 0u);
    // The unit's LimitNOFILE=65792 fits max_connections, and 10,000 workers.
    EXPECT_EQ(ConnectionLimits::for_descriptors(65792), ConnectionLimits::max_connections);
    EXPECT_GE(ConnectionLimits::max_connections, 10000u);
    EXPECT_GE((65792u - ConnectionLimits::reserve) / ConnectionLimits::descriptors_per_connection,
              ConnectionLimits::max_connections);
    EXPECT_EQ(ConnectionLimits::for_descriptors(UINT64_MAX), ConnectionLimits::max_connections);
}

TEST(ConnectionLimits, AdmitsUpToTheLimitAndThePerAddressCap) {
    EXPECT_EQ(ConnectionLimits::admit(0, 10, 0), Verdict::accept);
    EXPECT_EQ(ConnectionLimits::admit(9, 10, 0), Verdict::accept);
    EXPECT_EQ(ConnectionLimits::admit(10, 10, 0), Verdict::full);
    EXPECT_EQ(ConnectionLimits::admit(0, 0, 0), Verdict::full);
    const auto cap = ConnectionLimits::max_unauthenticated_per_address;
    EXPECT_EQ(ConnectionLimits::admit(cap, 100000, cap - 1), Verdict::accept);
    EXPECT_EQ(ConnectionLimits::admit(cap, 100000, cap), Verdict::address_full);
}
