// buildyard-latentd's SQLite record of its starts: rows survive reopening,
// one row per worker, phases and leases are written through.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "latent/latent_store.hpp"
#include "temp_dir.hpp"

using namespace by::latent;

namespace {

class LatentStoreTest : public ::testing::Test {
protected:
    TempDir tmp_{"buildyard-latent-store"};
    const std::string dir_ = tmp_.path();
};

StartRow row(const std::string& start, const std::string& worker) {
    return StartRow{start, "m", worker, "libvirt", Phase::creating, "", 1000, 2000, 0};
}

const std::string start_a = "0123456789abcdef0123456789abcdef";
const std::string start_b = "fedcba9876543210fedcba9876543210";

}  // namespace

TEST_F(LatentStoreTest, RowsSurviveReopen) {
    {
        LatentStore s;
        ASSERT_TRUE(s.open(dir_)) << s.error();
        ASSERT_TRUE(s.insert(row(start_a, "vm1"))) << s.error();
        ASSERT_TRUE(s.insert(row(start_b, "vm2"))) << s.error();
        ASSERT_TRUE(s.set_running(start_a, "buildyard-m-vm1", 5000, 1500)) << s.error();
        ASSERT_TRUE(s.set_phase(start_b, Phase::stopping)) << s.error();
    }
    EXPECT_TRUE(std::filesystem::exists(dir_ + "/latent.db"));
    LatentStore s;
    ASSERT_TRUE(s.open(dir_)) << s.error();
    auto rows = s.load_all();
    ASSERT_EQ(rows.size(), 2u);
    StartRow a = row(start_a, "vm1");
    a.phase = Phase::running;
    a.instance = "buildyard-m-vm1";
    a.lease_expires = 5000;
    a.running_at = 1500;
    EXPECT_EQ(rows[0], a);
    EXPECT_EQ(rows[1].start, start_b);
    EXPECT_EQ(rows[1].phase, Phase::stopping);
    EXPECT_EQ(s.load(start_a), a);
    EXPECT_EQ(s.load("nope"), std::nullopt);
}

TEST_F(LatentStoreTest, OneRowPerWorkerAndPerStart) {
    LatentStore s;
    ASSERT_TRUE(s.open(dir_)) << s.error();
    ASSERT_TRUE(s.insert(row(start_a, "vm1")));
    EXPECT_FALSE(s.insert(row(start_b, "vm1")));
    EXPECT_NE(s.error().find("UNIQUE"), std::string::npos) << s.error();
    EXPECT_FALSE(s.insert(row(start_a, "vm2")));
    ASSERT_TRUE(s.remove(start_a));
    EXPECT_TRUE(s.insert(row(start_b, "vm1"))) << s.error();
    EXPECT_EQ(s.load_all().size(), 1u);
}

TEST_F(LatentStoreTest, LeasesAndRemoval) {
    LatentStore s;
    ASSERT_TRUE(s.open(dir_)) << s.error();
    ASSERT_TRUE(s.insert(row(start_a, "vm1")));
    ASSERT_TRUE(s.set_lease(start_a, UINT64_MAX));
    // Stored as SQLite's largest integer, still later than any real time.
    EXPECT_EQ(s.load(start_a)->lease_expires, static_cast<uint64_t>(INT64_MAX));
    ASSERT_TRUE(s.remove(start_a));
    EXPECT_TRUE(s.remove(start_a)) << "deleting a missing row is no error";
    EXPECT_TRUE(s.load_all().empty());
}

TEST_F(LatentStoreTest, AnUnwritableDirectoryIsAnError) {
    LatentStore s;
    EXPECT_FALSE(s.open(dir_ + "/does/not/exist"));
    EXPECT_NE(s.error().find("latent.db"), std::string::npos) << s.error();
}
