// buildyard-latentd's record of its starts, in SQLite (WAL) at
// $STATE_DIRECTORY/latent.db. A row is written before the backend creates
// anything and deleted only once everything of the start is removed, so a
// latentd killed at any moment finds every start it was working on.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/sqlite.hpp"
#include "latent/latent_rules.hpp"

namespace by::latent {

class LatentStore {
public:
    // Opens or creates latent.db in `directory`. Returns false with error() set.
    bool open(const std::string& directory);
    const std::string& error() const { return error_; }

    // A new row; fails (false) if the start or its worker has a row already.
    bool insert(const StartRow& row);
    bool set_phase(const std::string& start, Phase phase);
    bool set_running(const std::string& start, const std::string& instance, uint64_t lease_expires,
                     uint64_t running_at);
    bool set_lease(const std::string& start, uint64_t lease_expires);
    // Deleting a row that is not there is no error.
    bool remove(const std::string& start);
    std::optional<StartRow> load(const std::string& start);
    std::vector<StartRow> load_all();

private:
    bool check(int rc, const char* what);

    sqlite::Database db_;
    std::string error_;
};

}  // namespace by::latent
