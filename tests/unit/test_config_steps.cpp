// Step commands and inih's inline comments.
#include <gtest/gtest.h>


#include "common/config.hpp"
#include "temp_dir.hpp"

namespace {

by::config::LoadResult load_text(const std::string& text) {
    TempDir dir("buildyard-steps");
    by::config::Environment env;
    env.hostname = "host";
    return by::config::load(dir.write("master.ini", text), env);
}

const char* head = "[worker w]\ntype = local\n[builder b]\nworkers = w\n";

}  // namespace

TEST(ConfigSteps, SemicolonAfterABlankInAStepIsAnError) {
    auto r = load_text(std::string(head) + "step.1 = make ; make install\n");
    ASSERT_FALSE(r.config);
    ASSERT_EQ(r.errors.size(), 1u) << r.errors[0].str();
    EXPECT_EQ(r.errors[0].line, 5);
    EXPECT_EQ(r.errors[0].key, "step.1");
    EXPECT_NE(r.errors[0].message.find("would run only 'make'"), std::string::npos) << r.errors[0].str();
}

TEST(ConfigSteps, SemicolonWithoutABlankAndAndAndAreFine) {
    auto r = load_text(std::string(head) + "step.1 = make; make install\nstep.2 = a && b\n");
    ASSERT_TRUE(r.config) << (r.errors.empty() ? "" : r.errors[0].str());
    const auto& steps = r.config->builders.at("b").steps;
    ASSERT_EQ(steps.size(), 2u);
    EXPECT_EQ(steps[0], "make; make install");
    EXPECT_EQ(steps[1], "a && b");
}

TEST(ConfigSteps, CommentsOnOtherKeysStillWork) {
    auto r = load_text("[worker w]\ntype = local\nmax_builds = 2 ; two at once\n[builder b]\nworkers = w\nstep.1 = true\n");
    ASSERT_TRUE(r.config) << (r.errors.empty() ? "" : r.errors[0].str());
    EXPECT_EQ(r.config->workers.at("w").max_builds, 2u);
}
