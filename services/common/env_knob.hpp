// Durations in microseconds: one parser for the config's SECONDS values
// ("0.5") and for what is still read from the environment (the testing aid
// BUILDYARD_LATENT_TEST_CREATE_DELAY), and one warning for the latter.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace by {

// What a knob holds and which values it takes.
struct UsecKnob {
    enum class Unit { seconds, microseconds };
    Unit unit = Unit::seconds;        // "1.5" (seconds) or "1500000" (whole microseconds)
    bool zero_ok = false;             // whether 0 is a value or a mistake
    uint64_t max_usec = 1'000'000'000'000'000;  // 10^9 s
};

// `text` in microseconds; nullopt when it is not a number in the knob's
// unit, negative, 0 where that is not taken, or past the knob's maximum.
std::optional<uint64_t> parse_usec(std::string_view text, const UsecKnob& knob = {});

// "a positive number of seconds up to 3600", ...: what the
// knob expected, for the warning that ignores a bad value.
std::string describe(const UsecKnob& knob);

using Getenv = std::function<const char*(const char*)>;

// The knob `name` in microseconds, or `fallback` when it is absent or empty.
// A bad value also gives `fallback`: it is appended to `bad` as
// "NAME=TEXT" when `bad` is given, else logged as a warning. `getenv` is
// injectable for tests.
uint64_t usec_from_env(const char* name, uint64_t fallback, const UsecKnob& knob = {},
                       std::vector<std::string>* bad = nullptr, const Getenv& getenv = std::getenv);

}  // namespace by
