// Builder limits (parsing, errors at FILE:LINE, the StartBuild map), the
// cleanup state of a lost worker's build, usage in the store, and the names
// of build units.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "common/config.hpp"
#include "master/build.hpp"
#include "store_test_support.hpp"
#include "temp_dir.hpp"
#include "worker/isolation.hpp"

using namespace by;

namespace {

config::LoadResult load_text(const std::string& text) {
    TempDir dir("buildyard-limits");
    std::ofstream(dir.path() + "/master.ini") << text;
    config::Environment env;
    env.hostname = "host";
    return config::load(dir.path() + "/master.ini", env);
}

const char* head = "[worker w]\ntype = local\n[builder b]\nworkers = w\nstep.1 = true\n";

std::string errors_of(const config::LoadResult& r) {
    std::string out;
    for (const auto& e : r.errors) out += e.str() + "\n";
    return out;
}

}  // namespace

TEST(BuildLimits, EveryKeyParses) {
    auto r = load_text(std::string(head) + "memory_max = 512M\ncpu_quota = 150%\ntasks_max = 64\ntimeout = 3600\n"
                                           "sandbox = none\n");
    ASSERT_TRUE(r.config) << errors_of(r);
    const auto& l = r.config->builders.at("b").limits;
    EXPECT_EQ(l.memory_max, 512ull << 20);
    EXPECT_EQ(l.cpu_quota, 150u);
    EXPECT_EQ(l.tasks_max, 64u);
    EXPECT_EQ(l.timeout, 3600u);
    EXPECT_EQ(l.sandbox, config::Sandbox::none);
    EXPECT_EQ(config::limits_to_map(l),
              (std::map<std::string, std::string>{{"memory_max", std::to_string(512ull << 20)},
                                                  {"cpu_quota", "150%"},
                                                  {"tasks_max", "64"},
                                                  {"timeout", "3600"}}));
    std::string error;
    auto back = config::limits_from_map(config::limits_to_map(l), error);
    ASSERT_TRUE(back) << error;
    EXPECT_EQ(*back, l);
}

TEST(BuildLimits, SandboxLevelsParseAndTravelToTheWorker) {
    for (auto [text, level] : {std::pair{"standard", config::Sandbox::standard},
                               std::pair{"strict", config::Sandbox::strict}}) {
        auto r = load_text(std::string(head) + "sandbox = " + text + "\n");
        ASSERT_TRUE(r.config) << errors_of(r);
        const auto& l = r.config->builders.at("b").limits;
        EXPECT_EQ(l.sandbox, level);
        EXPECT_EQ(config::limits_to_map(l), (std::map<std::string, std::string>{{"sandbox", text}}));
        std::string error;
        auto back = config::limits_from_map(config::limits_to_map(l), error);
        ASSERT_TRUE(back) << error;
        EXPECT_EQ(back->sandbox, level);
    }
}

TEST(BuildLimits, BadValuesNameFileLineSectionAndKey) {
    struct Case {
        const char* line;
        const char* error;
    } cases[] = {
        {"memory_max = 0", ":6: [builder b] memory_max: invalid value '0': expected a positive number of bytes"},
        {"memory_max = 2X", ":6: [builder b] memory_max: invalid value '2X'"},
        {"cpu_quota = 50", ":6: [builder b] cpu_quota: invalid value '50': expected a percentage"},
        {"cpu_quota = 0%", ":6: [builder b] cpu_quota: invalid value '0%'"},
        {"tasks_max = -1", ":6: [builder b] tasks_max: invalid value '-1'"},
        {"timeout = 0", ":6: [builder b] timeout: invalid value '0': expected a positive number of seconds"},
        {"sandbox = tight", ":6: [builder b] sandbox: invalid value 'tight': expected none, standard or strict"},
        {"sandbox = Strict", ":6: [builder b] sandbox: invalid value 'Strict': expected none, standard or strict"},
    };
    for (const auto& c : cases) {
        auto r = load_text(std::string(head) + c.line + "\n");
        EXPECT_FALSE(r.config) << c.line;
        EXPECT_NE(errors_of(r).find(c.error), std::string::npos) << c.line << "\n" << errors_of(r);
    }
}

TEST(BuildLimits, WorkerRefusesLimitsItDoesNotKnow) {
    std::string error;
    EXPECT_FALSE(config::limits_from_map({{"nice", "5"}}, error));
    EXPECT_NE(error.find("nice"), std::string::npos);
    EXPECT_FALSE(config::limits_from_map({{"tasks_max", "many"}}, error));
}

TEST(BuildLimits, LostBuildGraceDefaultsToTheKeepaliveTimeout) {
    auto r = load_text("[worker a]\npassword = p\nkeepalive_timeout = 7\n[worker b]\npassword = p\nlost_build_grace = 0\n"
                       "[worker c]\npassword = p\nlost_build_grace = 90\n[builder x]\nworkers = a\nstep.1 = true\n");
    ASSERT_TRUE(r.config) << errors_of(r);
    EXPECT_EQ(config::lost_build_grace(r.config->workers.at("a")), 7u);
    EXPECT_EQ(config::lost_build_grace(r.config->workers.at("b")), 0u);
    EXPECT_EQ(config::lost_build_grace(r.config->workers.at("c")), 90u);
    auto bad = load_text("[worker a]\ntype = local\nlost_build_grace = soon\n[builder x]\nworkers = a\nstep.1 = true\n");
    EXPECT_NE(errors_of(bad).find(":3: [worker a] lost_build_grace:"), std::string::npos) << errors_of(bad);
}

TEST(BuildLimits, UsageIsDescribedAndUnknownLeftOut) {
    BuildUsage u;
    EXPECT_EQ(describe_usage(u), "");
    EXPECT_TRUE(usage_to_map(u).empty());
    u.cpu_nsec = 1'250'000'000;
    u.memory_peak = 100ull << 20;
    EXPECT_EQ(describe_usage(u), "CPU 1.250 s, peak memory 100.0 MiB, IO unknown read, unknown written");
    EXPECT_EQ(usage_from_map(usage_to_map(u)), u);
}

TEST(CleanupState, ALostBuildWaitsThenEndsRetry) {
    master::Build b;
    EXPECT_EQ(master::await_cleanup(b), master::TransitionError::not_running);
    master::start_build(b, "w", {}, 1);
    ASSERT_EQ(master::await_cleanup(b), master::TransitionError::none);
    EXPECT_EQ(b.state, master::BuildState::cleanup);
    EXPECT_EQ(b.result, master::Result::none);
    EXPECT_EQ(master::to_string(b.state), "cleanup");
    EXPECT_EQ(master::parse_build_state("cleanup"), master::BuildState::cleanup);
    auto next = master::retry_build(b, 9);
    ASSERT_TRUE(next);
    EXPECT_EQ(b.state, master::BuildState::finished);
    EXPECT_EQ(b.result, master::Result::retry);
    EXPECT_EQ(next->state, master::BuildState::pending);
    EXPECT_EQ(master::await_cleanup(b), master::TransitionError::already_finished);
}

TEST(CleanupState, UsageAndTheCleanupStateSurviveTheStore) {
    TempDir dir("buildyard-limits-store");
    uint64_t id = 0;
    {
        auto s = open_test_store(dir.path());
        ASSERT_TRUE(s);
        master::Build b;
        b.builder = "b";
        ASSERT_TRUE(s->record_submitted(b));
        id = b.id;
        master::start_build(b, "w", {}, 1);
        master::await_cleanup(b);
        b.usage.cpu_nsec = 42;
        b.usage.io_write_bytes = 4096;
        ASSERT_TRUE(s->record_cleanups({b}));
    }
    auto s = open_test_store(dir.path());
    ASSERT_TRUE(s);
    auto b = s->load_build(id);
    ASSERT_TRUE(b);
    EXPECT_EQ(b->state, master::BuildState::cleanup);
    EXPECT_EQ(b->usage.cpu_nsec, 42u);
    EXPECT_EQ(b->usage.io_write_bytes, 4096u);
    EXPECT_EQ(b->usage.memory_peak, BuildUsage::unknown);
    EXPECT_EQ(s->load_unfinished().size(), 1u);
}

TEST(BuildUnitName, OnlyThisWorkersBuildsMatch) {
    EXPECT_EQ(worker::build_unit_name("bot1", 17), "buildyard-build-bot1-17.scope");
    EXPECT_EQ(worker::build_unit_id("bot1", "buildyard-build-bot1-17.scope"), 17u);
    EXPECT_EQ(worker::build_unit_id("bot1", "buildyard-build-bot1-x-5.scope"), 0u);  // worker bot1-x
    EXPECT_EQ(worker::build_unit_id("bot1-x", "buildyard-build-bot1-x-5.scope"), 5u);
    EXPECT_EQ(worker::build_unit_id("bot1", "buildyard-build-bot1-.scope"), 0u);
    // A sandboxed build's unit is a service.
    EXPECT_EQ(worker::build_unit_name("bot1", 17, true), "buildyard-build-bot1-17.service");
    EXPECT_EQ(worker::build_unit_id("bot1", "buildyard-build-bot1-17.service"), 17u);
    EXPECT_EQ(worker::build_unit_id("bot1", "buildyard-build-bot1-17.slice"), 0u);
    EXPECT_EQ(worker::build_unit_id("bot1", "buildyard-build-bot1-17.service.scope"), 0u);
}
