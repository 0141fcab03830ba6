// The one parser of the daemons' duration knobs (common/env_knob.hpp).
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/env_knob.hpp"

using by::UsecKnob;

namespace {

const UsecKnob usec{.unit = UsecKnob::Unit::microseconds};
const UsecKnob up_to_an_hour{.max_usec = 3600'000'000};

by::Getenv from(const std::map<std::string, std::string>& env) {
    return [env](const char* name) -> const char* {
        auto it = env.find(name);
        return it == env.end() ? nullptr : it->second.c_str();
    };
}

}  // namespace

TEST(EnvKnob, ValidSeconds) {
    EXPECT_EQ(by::parse_usec("1.5"), 1'500'000u);
    EXPECT_EQ(by::parse_usec("0.001"), 1'000u);
    EXPECT_EQ(by::parse_usec("300"), 300'000'000u);
    EXPECT_EQ(by::parse_usec("3600", up_to_an_hour), 3600'000'000u);
    EXPECT_EQ(by::parse_usec("0", {.zero_ok = true}), 0u);
}

TEST(EnvKnob, ValidMicroseconds) {
    EXPECT_EQ(by::parse_usec("1", usec), 1u);
    EXPECT_EQ(by::parse_usec("250000", usec), 250'000u);
}

TEST(EnvKnob, Garbage) {
    for (const char* text : {"", "x", "2s", "1.5.1", " 1", "1 ", "-1", "+1", "nan", "inf", "0x10"}) {
        EXPECT_EQ(by::parse_usec(text), std::nullopt) << text;
    }
    for (const char* text : {"", "1.5", "1e3", "-1", "12x"}) {
        EXPECT_EQ(by::parse_usec(text, usec), std::nullopt) << text;
    }
    // 0 is a mistake unless the knob takes it.
    EXPECT_EQ(by::parse_usec("0"), std::nullopt);
    EXPECT_EQ(by::parse_usec("0", usec), std::nullopt);
}

TEST(EnvKnob, Overflow) {
    EXPECT_EQ(by::parse_usec("3600.5", up_to_an_hour), std::nullopt);
    EXPECT_EQ(by::parse_usec("1e9"), 1'000'000'000'000'000u);
    EXPECT_EQ(by::parse_usec("1.1e9"), std::nullopt);
    EXPECT_EQ(by::parse_usec("1e300"), std::nullopt);
    EXPECT_EQ(by::parse_usec("18446744073709551615", usec), std::nullopt);  // past 10^9 s
    EXPECT_EQ(by::parse_usec("18446744073709551616", usec), std::nullopt);  // past 2^64
    EXPECT_EQ(by::parse_usec("99999999999999999999999", usec), std::nullopt);
}

TEST(EnvKnob, Describe) {
    EXPECT_EQ(by::describe({}), "a positive number of seconds");
    EXPECT_EQ(by::describe({.zero_ok = true}), "a number of seconds");
    EXPECT_EQ(by::describe(usec), "a positive number of microseconds");
    EXPECT_EQ(by::describe(up_to_an_hour), "a positive number of seconds up to 3600");
}

TEST(EnvKnob, FromTheEnvironment) {
    auto env = from({{"GOOD", "2.5"}, {"EMPTY", ""}, {"BAD", "soon"}, {"ZERO", "0"}, {"HUGE", "1e12"}});
    std::vector<std::string> bad;
    EXPECT_EQ(by::usec_from_env("GOOD", 7, {}, &bad, env), 2'500'000u);
    // Absent and empty: the fallback, and nothing to complain about.
    EXPECT_EQ(by::usec_from_env("ABSENT", 7, {}, &bad, env), 7u);
    EXPECT_EQ(by::usec_from_env("EMPTY", 7, {}, &bad, env), 7u);
    EXPECT_TRUE(bad.empty());
    // Garbage, a refused 0 and an overflow: the fallback, each named.
    EXPECT_EQ(by::usec_from_env("BAD", 7, {}, &bad, env), 7u);
    EXPECT_EQ(by::usec_from_env("ZERO", 7, {}, &bad, env), 7u);
    EXPECT_EQ(by::usec_from_env("ZERO", 7, {.zero_ok = true}, &bad, env), 0u);
    EXPECT_EQ(by::usec_from_env("HUGE", 7, {}, &bad, env), 7u);
    EXPECT_EQ(bad, (std::vector<std::string>{"BAD=soon", "ZERO=0", "HUGE=1e12"}));
    // Without `bad` the value is logged and ignored all the same.
    EXPECT_EQ(by::usec_from_env("BAD", 7, {}, nullptr, env), 7u);
}
