// buildyard-latentd's decisions: admission of a Start, recovery after a
// restart, lease expiry, what counts as a leak, and the timing knobs.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "common/bus.hpp"
#include "latent/latent_rules.hpp"

using namespace by;
using namespace by::latent;

namespace {

const std::string start_a = "0123456789abcdef0123456789abcdef";
const std::string start_b = "fedcba9876543210fedcba9876543210";
const std::string start_c = "00000000000000000000000000000000";

config::Config make_config() {
    config::Config c;
    c.master.name = "m";
    config::Worker vm1;
    vm1.name = "vm1";
    vm1.type = config::WorkerType::latent;
    vm1.backend = "libvirt";
    vm1.backend_options = {{"libvirt.uri", "test:///default"}, {"libvirt.shutdown_timeout", "5"}};
    c.workers["vm1"] = vm1;
    config::Worker vm2 = vm1;
    vm2.name = "vm2";
    vm2.backend_options = {{"libvirt.uri", "qemu:///system"}};
    c.workers["vm2"] = vm2;
    config::Worker bot;
    bot.name = "bot";
    bot.type = config::WorkerType::standard;
    c.workers["bot"] = bot;
    return c;
}

StartRow row(const std::string& start, const std::string& worker, Phase phase, uint64_t lease_expires) {
    StartRow r;
    r.start = start;
    r.master = "m";
    r.worker = worker;
    r.backend = "libvirt";
    r.phase = phase;
    r.lease_expires = lease_expires;
    return r;
}

Found found(const std::string& start, const std::string& kind) {
    return Found{Tag{"m", "vm1", start}, kind, kind + "-" + start.substr(0, 4), kind != "overlay"};
}

}  // namespace

TEST(LatentRules, StartIds) {
    EXPECT_TRUE(valid_start_id(start_a));
    EXPECT_TRUE(valid_start_id(start_c));
    EXPECT_FALSE(valid_start_id(""));
    EXPECT_FALSE(valid_start_id(start_a.substr(1)));
    EXPECT_FALSE(valid_start_id(start_a + "0"));
    EXPECT_FALSE(valid_start_id("0123456789ABCDEF0123456789abcdef"));
    EXPECT_FALSE(valid_start_id("0123456789abcdef0123456789abcdeg"));
    EXPECT_FALSE(valid_start_id("../../../../../../etc/passwd.abcd"));
}

TEST(LatentRules, PhasesRoundTrip) {
    for (Phase p : {Phase::creating, Phase::running, Phase::stopping}) {
        EXPECT_EQ(parse_phase(to_string(p)), p);
    }
    EXPECT_EQ(parse_phase("gone"), std::nullopt);
}

TEST(LatentRules, AdmitsAStartOfAnIdleLatentWorker) {
    auto c = make_config();
    Verdict v = admit_start(c, "vm1", start_a, "token", 60'000'000, {{start_b, "vm2"}});
    EXPECT_TRUE(v) << v.message;
}

TEST(LatentRules, RefusesUnknownAndNonLatentWorkers) {
    auto c = make_config();
    Verdict v = admit_start(c, "ghost", start_a, "token", 1, {});
    EXPECT_STREQ(v.error, bus::error::NoSuchWorker);
    EXPECT_EQ(v.message, "no latent worker named 'ghost'");
    EXPECT_STREQ(admit_start(c, "bot", start_a, "token", 1, {}).error, bus::error::NoSuchWorker);
}

TEST(LatentRules, RefusesBadArguments) {
    auto c = make_config();
    EXPECT_STREQ(admit_start(c, "vm1", "xyz", "token", 1, {}).error, bus::error::InvalidArgument);
    EXPECT_STREQ(admit_start(c, "vm1", start_a, "", 1, {}).error, bus::error::InvalidArgument);
    EXPECT_STREQ(admit_start(c, "vm1", start_a, "token", 0, {}).error, bus::error::InvalidArgument);
}

TEST(LatentRules, NeverTwoInstancesOfOneWorker) {
    auto c = make_config();
    Verdict v = admit_start(c, "vm1", start_a, "token", 1, {{start_b, "vm1"}});
    EXPECT_STREQ(v.error, bus::error::Busy);
    EXPECT_NE(v.message.find(start_b), std::string::npos) << v.message;
    // The same start id again, even for another worker.
    EXPECT_STREQ(admit_start(c, "vm2", start_a, "token", 1, {{start_a, "vm1"}}).error, bus::error::Busy);
}

TEST(LatentRules, RecoveryAfterARestart) {
    auto c = make_config();
    const uint64_t now = 1000;
    std::vector<StartRow> rows = {
        row(start_a, "vm1", Phase::running, now + 1),  // lease still valid
        row(start_b, "vm2", Phase::running, now),      // lease just over
        row(start_c, "vm1", Phase::creating, now + 1000),
        row("11111111111111111111111111111111", "vm2", Phase::stopping, now + 1000),
        row("22222222222222222222222222222222", "ghost", Phase::running, now + 1000),
        row("33333333333333333333333333333333", "bot", Phase::creating, now + 1000),
    };
    auto other_backend = row("44444444444444444444444444444444", "vm1", Phase::running, now + 1000);
    other_backend.backend = "docker";
    rows.push_back(other_backend);

    Recovery r = plan_recovery(rows, c, now);
    ASSERT_EQ(r.adopt.size(), 1u);
    EXPECT_EQ(r.adopt[0].start, start_a);
    ASSERT_EQ(r.expired.size(), 1u);
    EXPECT_EQ(r.expired[0].start, start_b);
    ASSERT_EQ(r.dead.size(), 2u);
    EXPECT_EQ(r.dead[0].start, start_c);
    EXPECT_EQ(r.dead[1].phase, Phase::stopping);
    ASSERT_EQ(r.orphans.size(), 3u);
    EXPECT_EQ(r.orphans[0].worker, "ghost");
    EXPECT_EQ(r.orphans[1].worker, "bot");
    EXPECT_EQ(r.orphans[2].backend, "docker");
}

TEST(LatentRules, LeasesExpireOnlyForRunningInstances) {
    std::vector<StartRow> rows = {
        row(start_a, "vm1", Phase::running, 100),
        row(start_b, "vm2", Phase::running, 101),
        row(start_c, "vm3", Phase::creating, 50),
        row("11111111111111111111111111111111", "vm4", Phase::stopping, 50),
    };
    EXPECT_EQ(expired_leases(rows, 99), std::vector<std::string>{});
    EXPECT_EQ(expired_leases(rows, 100), std::vector<std::string>{start_a});
    EXPECT_EQ(expired_leases(rows, 1000), (std::vector<std::string>{start_a, start_b}));
}

TEST(LatentRules, LeaseDeadlineSaturates) {
    EXPECT_EQ(lease_deadline(10, 5), 15u);
    EXPECT_EQ(lease_deadline(10, UINT64_MAX), UINT64_MAX);
    EXPECT_EQ(lease_deadline(UINT64_MAX - 1, 2), UINT64_MAX);
}

TEST(LatentRules, ShutdownGrace) {
    auto c = make_config();
    EXPECT_EQ(shutdown_grace_usec(c.workers["vm1"]), 5'000'000u);
    EXPECT_EQ(shutdown_grace_usec(c.workers["vm2"]), 60'000'000u);
}

TEST(LatentRules, LeaksAreWhatNoLiveStartOwns) {
    std::vector<Found> all = {found(start_a, "overlay"), found(start_a, "domain"), found(start_b, "domain"),
                              found(start_c, "overlay"), found(start_c, "domain")};
    // a: live when the listing began (it may have ended since: its own stop
    // removes it); b: became live after the listing began; c: a leak.
    auto out = leaks(all, {start_a}, [](const std::string& s) { return s == start_b; });
    ASSERT_EQ(out.size(), 2u);
    // The domain goes before its overlay.
    EXPECT_EQ(out[0].kind, "domain");
    EXPECT_EQ(out[0].tag.start, start_c);
    EXPECT_EQ(out[1].kind, "overlay");
    EXPECT_EQ(out[1].tag.start, start_c);
    EXPECT_TRUE(leaks(all, {start_a, start_b, start_c}, [](const std::string&) { return false; }).empty());
    // Two workers on one URI or overlay directory list the same things twice.
    std::vector<Found> twice = {found(start_c, "overlay"), found(start_c, "overlay")};
    EXPECT_EQ(leaks(twice, {}, [](const std::string&) { return false; }).size(), 1u);
}

TEST(LatentRules, WorkersByBackend) {
    auto c = make_config();
    EXPECT_EQ(count_latent_workers(c), 2u);
    auto groups = latent_workers_by_backend(c);
    ASSERT_EQ(groups.size(), 1u);
    ASSERT_EQ(groups["libvirt"].size(), 2u);
    EXPECT_EQ(groups["libvirt"][0]->name, "vm1");
    EXPECT_TRUE(latent_workers_by_backend(config::Config{}).empty());
}

TEST(LatentRules, Seconds) {
    EXPECT_EQ(parse_seconds("0"), 0u);
    EXPECT_EQ(parse_seconds("1.5"), 1'500'000u);
    EXPECT_EQ(parse_seconds("0.001"), 1'000u);
    EXPECT_EQ(parse_seconds("300"), 300'000'000u);
    EXPECT_EQ(parse_seconds(""), std::nullopt);
    EXPECT_EQ(parse_seconds("-1"), std::nullopt);
    EXPECT_EQ(parse_seconds("2s"), std::nullopt);
    EXPECT_EQ(parse_seconds("nan"), std::nullopt);
    EXPECT_EQ(parse_seconds("inf"), std::nullopt);
}

TEST(LatentRules, TimingFromTheConfig) {
    Timing d;
    EXPECT_EQ(d.create, 300'000'000u);
    EXPECT_EQ(d.destroy, 120'000'000u);
    EXPECT_EQ(d.call, 60'000'000u);
    EXPECT_EQ(d.health_interval, 10'000'000u);
    EXPECT_EQ(d.reap_interval, 60'000'000u);
    EXPECT_EQ(d.lease_check_interval, 1'000'000u);
    EXPECT_EQ(d.test_create_delay, 0u);

    const by::config::Latentd l{.create_timeout_usec = 2'500'000,
                                .destroy_timeout_usec = 3'000'000,
                                .health_interval_usec = 200'000,
                                .reap_interval_usec = 400'000,
                                .lease_check_interval_usec = 500'000};
    Timing t(l, 7'000'000);
    EXPECT_EQ(t.create, 2'500'000u);
    EXPECT_EQ(t.destroy, 3'000'000u);
    EXPECT_EQ(t.health_interval, 200'000u);
    EXPECT_EQ(t.reap_interval, 400'000u);
    EXPECT_EQ(t.lease_check_interval, 500'000u);
    EXPECT_EQ(t.test_create_delay, 7'000'000u);
    EXPECT_EQ(t.call, 60'000'000u);
}
