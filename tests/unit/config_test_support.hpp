// Shared by the config loader's tests: a temporary directory per test and
// a fixture that writes master.ini and drop-ins into it.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "common/config.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;
using namespace by::config;

namespace {

std::string joined(const std::vector<Error>& errors) {
    std::string out;
    for (const auto& e : errors) {
        out += "  " + e.str() + "\n";
    }
    return out.empty() ? "  (no errors)\n" : out;
}

::testing::AssertionResult has_error(const std::vector<Error>& errors, const std::string& text) {
    for (const auto& e : errors) {
        if (e.str().find(text) != std::string::npos) {
            return ::testing::AssertionSuccess();
        }
    }
    return ::testing::AssertionFailure() << "no error contains\n  " << text << "\nerrors:\n" << joined(errors);
}

class ConfigTest : public ::testing::Test {
protected:
    ConfigTest() {
        env.hostname = "testhost";
    }

    LoadResult load_text(const std::string& text) {
        main = dir.write("master.ini", text);
        return load(main, env);
    }

    Config load_ok(const std::string& text) {
        auto r = load_text(text);
        EXPECT_TRUE(r.errors.empty()) << joined(r.errors);
        EXPECT_TRUE(r.config.has_value());
        return r.config.value_or(Config{});
    }

    // `where_what` is "LINE: [section] key: message" (or a prefix of it),
    // checked against master.ini.
    void expect_error(const std::string& text, const std::string& where_what) {
        auto r = load_text(text);
        EXPECT_FALSE(r.config.has_value());
        EXPECT_TRUE(has_error(r.errors, main + ":" + where_what)) << "config:\n" << text;
    }

    TempDir dir{"by-config"};
    Environment env;
    std::string main;
};

const std::string local_worker = "[worker w]\ntype = local\n";

// A latent worker's backend options as `parse` (docker_options, ec2_options)
// reads them; a parse error fails the test.
template <typename Parse>
auto backend_options_of(Parse parse, const Config& c, const std::string& worker) {
    std::string error;
    auto o = parse(c.workers.at(worker).backend_options, error);
    EXPECT_TRUE(o.has_value()) << error;
    return o.value_or(typename decltype(o)::value_type{});
}

}  // namespace
