// The master's state in SQLite (WAL) under the state directory: builds with
// their requests and results, and each worker's admin state. Every change
// is committed before the master acts on it or replies, so a kill -9 at any
// moment loses nothing that a client was told about.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/sqlite.hpp"
#include "master/build.hpp"

namespace by::master {

struct WorkerRecord {
    std::string name;
    bool paused = false;
    std::string pause_reason;
    uint64_t last_connected = 0;
    uint64_t last_disconnected = 0;
    std::map<std::string, std::string> info;
};

class Store {
public:
    // Opens or creates state.db in `directory`. Returns false with
    // error() set on failure.
    bool open(const std::string& directory);
    const std::string& error() const { return error_; }

    // Inserts a new pending build and sets b.id.
    bool insert_build(Build& b);
    // Writes the mutable columns of b (state, worker, result, times...).
    bool update_build(const Build& b);
    // In one transaction: writes `old` (finished retry) and inserts `next`,
    // setting next.id and old.retried_as.
    bool insert_retry(Build& old, Build& next);

    std::optional<Build> load_build(uint64_t id);
    // Builds that are not finished, in id order.
    std::vector<Build> load_unfinished();
    // Newest first; limit 0 means all.
    std::vector<Build> list_builds(uint64_t limit);

    std::optional<WorkerRecord> load_worker(const std::string& name);
    bool save_worker(const WorkerRecord& w);

private:
    bool check(int rc, const char* what);
    Build row_to_build(sqlite::Statement& s);

    sqlite::Database db_;
    sqlite::Statement insert_build_;
    sqlite::Statement update_build_;
    sqlite::Statement load_build_;
    sqlite::Statement save_worker_;
    sqlite::Statement load_worker_;
    std::string error_;
};

}  // namespace by::master
