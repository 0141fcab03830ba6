// A fixture whose tests run in a pinned local time zone (TZ), so that
// expectations about local times hold on any machine; the caller's TZ is
// back when the test ends.
#pragma once

#include <cstdlib>
#include <ctime>
#include <optional>
#include <string>

#include <gtest/gtest.h>

class TimeZoneTest : public ::testing::Test {
protected:
    explicit TimeZoneTest(const char* zone) {
        const char* tz = std::getenv("TZ");
        saved_ = tz ? std::optional<std::string>(tz) : std::nullopt;
        set_time_zone(zone);
    }
    ~TimeZoneTest() override {
        if (saved_) {
            setenv("TZ", saved_->c_str(), 1);
        } else {
            unsetenv("TZ");
        }
        tzset();
    }

    // Another zone for the rest of this test.
    static void set_time_zone(const char* zone) {
        setenv("TZ", zone, 1);
        tzset();
    }

private:
    std::optional<std::string> saved_;
};
