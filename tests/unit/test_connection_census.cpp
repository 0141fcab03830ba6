// ConnectionCensus (master/connection_census.hpp): counts kept as connection
// phases change, and the end of a handshake storm.
#include <string>

#include <gtest/gtest.h>

#include "master/connection_census.hpp"

using namespace by::master;
using P = ConnectionPhase;

namespace {

TEST(ConnectionCensus, CountsUnauthenticatedPerAddressUntilTheyAttachOrClose) {
    ConnectionCensus c;
    c.changed("10.0.0.1", P::closed, P::fresh);
    c.changed("10.0.0.1", P::closed, P::fresh);
    c.changed("10.0.0.2", P::closed, P::fresh);
    c.changed("10.0.0.1", P::fresh, P::challenged);  // still before authentication
    EXPECT_EQ(c.unauthenticated_from("10.0.0.1"), 2u);
    EXPECT_EQ(c.unauthenticated_from("10.0.0.2"), 1u);
    EXPECT_EQ(c.unauthenticated_from("10.0.0.3"), 0u);
    c.changed("10.0.0.1", P::challenged, P::attached);
    c.changed("10.0.0.2", P::fresh, P::closed);
    EXPECT_EQ(c.unauthenticated_from("10.0.0.1"), 1u);
    EXPECT_EQ(c.unauthenticated_from("10.0.0.2"), 0u);
    EXPECT_TRUE(c.any_unauthenticated());
    c.changed("10.0.0.1", P::fresh, P::closed);
    EXPECT_FALSE(c.any_unauthenticated());
    // A worker whose proof failed starts again with a new Hello.
    c.changed("10.0.0.1", P::challenged, P::fresh);  // no change of count
    EXPECT_EQ(c.unauthenticated_from("10.0.0.1"), 0u);
}

TEST(ConnectionCensus, CountsArbitratingConnections) {
    ConnectionCensus c;
    c.changed("a", P::closed, P::fresh);
    c.changed("a", P::fresh, P::arbitrating);
    EXPECT_EQ(c.arbitrating(), 1u);
    EXPECT_FALSE(c.any_unauthenticated());
    c.changed("a", P::arbitrating, P::challenged);  // the old link answered
    EXPECT_EQ(c.arbitrating(), 0u);
    EXPECT_EQ(c.unauthenticated_from("a"), 1u);
}

TEST(ConnectionCensus, AStormEndsWhenNoHandshakeIsLeftAfterEnough) {
    ConnectionCensus c;
    for (size_t i = 0; i < ConnectionCensus::storm; ++i) {
        c.changed("a", P::closed, P::fresh);
    }
    // The last handshake to end, and only it, ends the storm.
    for (size_t i = 0; i + 1 < ConnectionCensus::storm; ++i) {
        EXPECT_FALSE(c.changed("a", P::fresh, P::attached)) << i;
    }
    EXPECT_TRUE(c.changed("a", P::fresh, P::attached));
    c.storm_handled();
    // A few more are no storm.
    c.changed("a", P::closed, P::fresh);
    EXPECT_FALSE(c.changed("a", P::fresh, P::closed));
}

}  // namespace
