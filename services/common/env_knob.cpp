#include "common/env_knob.hpp"

#include <charconv>
#include <cmath>

#include <fmt/format.h>

#include "common/log.hpp"

namespace by {

std::optional<uint64_t> parse_usec(std::string_view text, const UsecKnob& knob) {
    if (text.empty()) {
        return std::nullopt;
    }
    const char* first = text.data();
    const char* last = first + text.size();
    uint64_t usec = 0;
    if (knob.unit == UsecKnob::Unit::microseconds) {
        auto [end, ec] = std::from_chars(first, last, usec);
        if (ec != std::errc() || end != last) {
            return std::nullopt;  // not a whole number, or past 2^64
        }
    } else {
        double seconds = 0;
        auto [end, ec] = std::from_chars(first, last, seconds);
        if (ec != std::errc() || end != last || !std::isfinite(seconds) || seconds < 0 ||
            seconds * 1e6 > static_cast<double>(knob.max_usec)) {
            return std::nullopt;
        }
        usec = static_cast<uint64_t>(std::llround(seconds * 1e6));
    }
    if ((usec == 0 && !knob.zero_ok) || usec > knob.max_usec) {
        return std::nullopt;
    }
    return usec;
}

std::string describe(const UsecKnob& knob) {
    const bool seconds = knob.unit == UsecKnob::Unit::seconds;
    std::string text = fmt::format("a {}number of {}", knob.zero_ok ? "" : "positive ", seconds ? "seconds" : "microseconds");
    if (knob.max_usec < UsecKnob{}.max_usec) {
        text += seconds ? fmt::format(" up to {:g}", static_cast<double>(knob.max_usec) / 1e6)
                        : fmt::format(" up to {}", knob.max_usec);
    }
    return text;
}

uint64_t usec_from_env(const char* name, uint64_t fallback, const UsecKnob& knob, std::vector<std::string>* bad,
                       const Getenv& getenv) {
    const char* text = getenv(name);
    if (!text || !*text) {
        return fallback;
    }
    if (auto usec = parse_usec(text, knob)) {
        return *usec;
    }
    if (bad) {
        bad->push_back(fmt::format("{}={}", name, text));
    } else {
        log::warning("ignoring {}={}: expected {}", name, text, describe(knob));
    }
    return fallback;
}

}  // namespace by
