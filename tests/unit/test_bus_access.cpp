// Who may change things (bus::may_administer) and how long a caller's
// names may be (limits::check): the rules, without a bus.
#include <gtest/gtest.h>

#include "common/bus_access.hpp"
#include "common/input_limits.hpp"

using by::bus::CallerCreds;
using by::bus::may_administer;

TEST(MayAdminister, RootOwnUidsAndTheGroup) {
    const std::vector<uid_t> own = {990, 991};
    const gid_t admins = 995;
    EXPECT_TRUE(may_administer({0, std::vector<gid_t>{}}, own, admins));
    EXPECT_TRUE(may_administer({990, std::nullopt}, own, admins));
    EXPECT_TRUE(may_administer({991, std::nullopt}, own, std::nullopt));
    EXPECT_TRUE(may_administer({1000, std::vector<gid_t>{100, 995}}, own, admins));
    EXPECT_FALSE(may_administer({1000, std::vector<gid_t>{100, 994}}, own, admins));
    EXPECT_FALSE(may_administer({65534, std::vector<gid_t>{65534}}, own, admins));
    // No group named buildyard: membership cannot help.
    EXPECT_FALSE(may_administer({1000, std::vector<gid_t>{995}}, own, std::nullopt));
}

TEST(MayAdminister, UnknownCredentialsDeny) {
    EXPECT_FALSE(may_administer({std::nullopt, std::nullopt}, {0}, 995));
    EXPECT_FALSE(may_administer({std::nullopt, std::nullopt}, {}, std::nullopt));
    // A known group list still admits a member whose uid is unknown.
    EXPECT_TRUE(may_administer({std::nullopt, std::vector<gid_t>{995}}, {}, 995));
}

TEST(AdmittedCallers, RemembersAdmissionsAndForgetsTheOldestPastCapacity) {
    by::bus::AdmittedCallers admitted(2);
    EXPECT_FALSE(admitted.contains("bus :1.5"));
    admitted.add("bus :1.5");
    admitted.add("bus :1.5");
    EXPECT_TRUE(admitted.contains("bus :1.5"));
    EXPECT_EQ(admitted.size(), 1u);
    // Unique names are per bus: the same name on another bus is another caller.
    EXPECT_FALSE(admitted.contains("other :1.5"));
    admitted.add("bus :1.6");
    admitted.add("bus :1.7");
    EXPECT_EQ(admitted.size(), 2u);
    EXPECT_FALSE(admitted.contains("bus :1.5"));
    EXPECT_TRUE(admitted.contains("bus :1.6"));
    EXPECT_TRUE(admitted.contains("bus :1.7"));
}

TEST(InputLimits, Check) {
    EXPECT_FALSE(by::limits::check("the worker name", std::string(64, 'a'), by::limits::name));
    auto e = by::limits::check("the worker name", std::string(65, 'a'), by::limits::name);
    ASSERT_TRUE(e);
    EXPECT_EQ(*e, "the worker name is 65 bytes long; the limit is 64");
}

TEST(InputLimits, Maps) {
    std::map<std::string, std::string> m;
    for (size_t i = 0; i < by::limits::properties; ++i) {
        m["k" + std::to_string(i)] = std::string(by::limits::property_value, 'v');
    }
    EXPECT_FALSE(by::limits::check_map("build properties", m));
    m["one-more"] = "";
    EXPECT_EQ(by::limits::check_map("build properties", m).value_or(""),
              "build properties: 129 entries; the limit is 128");
    std::map<std::string, std::string> long_key = {{std::string(129, 'k'), "v"}};
    EXPECT_EQ(by::limits::check_map("build properties", long_key).value_or(""),
              "build properties: a key is 129 bytes long; the limit is 128");
    std::map<std::string, std::string> long_value = {{"k", std::string(16385, 'v')}};
    EXPECT_EQ(by::limits::check_map("build properties", long_value).value_or(""),
              "build properties: the value of 'k' is 16385 bytes long; the limit is 16384");
}
