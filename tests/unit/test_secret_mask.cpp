// Secrets in build logs become "***" before they are stored, wherever the
// Output chunks happen to cut them; secret properties stay out of sight.
#include <gtest/gtest.h>

#include <random>

#include "master/build.hpp"
#include "master/secret_mask.hpp"

using namespace by::master;

namespace {

// Feeds `text` cut at the given offsets and returns everything stored.
std::string through(SecretMask& mask, const std::string& text, std::vector<size_t> cuts) {
    std::string out;
    size_t from = 0;
    cuts.push_back(text.size());
    for (size_t cut : cuts) {
        out += mask.feed(std::string_view(text).substr(from, cut - from));
        from = cut;
    }
    return out + mask.finish();
}

}  // namespace

TEST(SecretMask, MasksWholeChunks) {
    SecretMask mask({"hunter2"});
    EXPECT_EQ(mask.feed("token=hunter2\n"), "token=***\n");
    EXPECT_EQ(mask.feed("twice hunter2hunter2 end\n"), "twice ****** end\n");
    EXPECT_EQ(mask.finish(), "");
}

TEST(SecretMask, MasksAValueSplitAcrossChunks) {
    SecretMask mask({"s3cr3t-value"});
    EXPECT_EQ(mask.feed("login with s3c"), "login with ");
    EXPECT_EQ(mask.held(), 3u);
    EXPECT_EQ(mask.feed("r3t-"), "");
    EXPECT_EQ(mask.feed("value done\n"), "*** done\n");
    EXPECT_EQ(mask.finish(), "");
}

TEST(SecretMask, APrefixThatNeverCompletesIsKept) {
    SecretMask mask({"abcdef"});
    EXPECT_EQ(mask.feed("xx abc"), "xx ");
    EXPECT_EQ(mask.feed("dxyz"), "abcdxyz");
    EXPECT_EQ(mask.feed("ends with abcde"), "ends with ");
    EXPECT_EQ(mask.finish(), "abcde");
}

TEST(SecretMask, LongestSecretWinsAndEmptyOnesAreIgnored) {
    SecretMask mask({"", "pass", "password123"});
    EXPECT_EQ(mask.feed("password123 and pass\n"), "*** and ***\n");
    SecretMask none({""});
    EXPECT_EQ(none.feed("anything"), "anything");
}

TEST(SecretMask, EveryCutOfARandomLogGivesTheSameResult) {
    const std::vector<std::string> secrets = {"tok-9f8e7d", "pw!", "9f8e"};
    std::mt19937 rng(1414);
    std::uniform_int_distribution<int> pick(0, 9);
    for (int round = 0; round < 300; ++round) {
        std::string text;
        for (int i = 0; i < 40; ++i) {
            const int p = pick(rng);
            text += p < 2 ? secrets[static_cast<size_t>(p)] : p == 2 ? "tok-9f" : std::string(1, static_cast<char>('a' + p));
        }
        SecretMask whole(secrets);
        const std::string expected = through(whole, text, {});
        EXPECT_EQ(expected.find("tok-9f8e7d"), std::string::npos);
        EXPECT_EQ(expected.find("pw!"), std::string::npos);
        EXPECT_EQ(expected.find("9f8e"), std::string::npos);
        std::vector<size_t> cuts;
        for (size_t at = 0; at < text.size(); at += 1 + static_cast<size_t>(pick(rng))) {
            cuts.push_back(at);
        }
        SecretMask cut(secrets);
        EXPECT_EQ(through(cut, text, cuts), expected) << text;
    }
}

TEST(SecretProperties, HiddenFromThePublicView) {
    std::map<std::string, std::string> all = {{"branch", "main"}, {"secret.token", "t0k"}, {"secretive", "no"}};
    EXPECT_EQ(public_properties(all), (std::map<std::string, std::string>{{"branch", "main"}, {"secretive", "no"}}));
}

TEST(SecretProperties, StepsGetThemAsBuildyardSecret) {
    Build b;
    b.id = 7;
    b.builder = "hello";
    b.requested = {{"branch", "main"}, {"secret.token", "from-submit"}, {"secret.db", "submitted"}};
    start_build(b, "bot1", {}, 1);
    auto env = step_environment(b, {{"db", "configured"}, {"api-key", "k"}});
    EXPECT_EQ(env["BUILDYARD_PROP_branch"], "main");
    EXPECT_EQ(env["BUILDYARD_SECRET_token"], "from-submit");
    EXPECT_EQ(env["BUILDYARD_SECRET_db"], "configured");  // the builder's own wins
    EXPECT_EQ(env["BUILDYARD_SECRET_api_key"], "k");
    EXPECT_EQ(env.count("BUILDYARD_PROP_secret_token"), 0u);
}
