// Two or three masters' stores on one PostgreSQL database, each with its
// own connection, joined to the cluster as the master joins
// (test_pg_cluster.cpp, test_pg_cluster_builds.cpp).
#pragma once

#include <gtest/gtest.h>

#include "store_test_support.hpp"

namespace pg_cluster_test {

using namespace by::master;

constexpr uint64_t timeout = 10'000'000;

class PgClusterTest : public ::testing::TestWithParam<std::string> {
protected:
    TestDatabase db_{GetParam()};
    std::vector<Retry> taken;
    std::vector<Retry> taken_over;

    std::unique_ptr<Store> store() {
        auto s = db_.open();
        EXPECT_TRUE(s && s->members());
        return s;
    }

    // Joins as `name` under the rules, as the master does; 0 when refused.
    static uint64_t join(Store& s, const std::string& name, uint32_t pid) {
        const auto fence = s.members()->join({.name = name, .host = "h1", .address = "127.0.0.1:9989", .pid = pid},
                                             [](const MemberRow& holder, uint64_t now) {
                                                 return may_join(holder, now, timeout, false).allowed;
                                             });
        EXPECT_TRUE(fence) << s.error();
        return fence.value_or(0);
    }

    // A store joined as `name`, the first time (fence 1).
    std::unique_ptr<Store> joined(const std::string& name, uint32_t pid) {
        auto s = store();
        EXPECT_EQ(join(*s, name, pid), 1u);
        return s;
    }

    static MemberRow row_of(Store& s, const std::string& name) {
        const auto listing = s.members()->list_members();
        EXPECT_TRUE(listing) << s.error();
        for (const MemberRow& r : listing ? listing->rows : std::vector<MemberRow>{}) {
            if (r.name == name) return r;
        }
        ADD_FAILURE() << "no member " << name;
        return {};
    }
};

}  // namespace pg_cluster_test
