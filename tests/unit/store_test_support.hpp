// The master's store under test, opened as the master opens it and used
// through the Store interface only.
#pragma once

#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "master/store.hpp"

inline std::unique_ptr<by::master::Store> open_test_store(const std::string& directory) {
    std::string error;
    auto store = by::master::open_sqlite_store(directory, error);
    EXPECT_TRUE(store) << error;
    return store;
}
