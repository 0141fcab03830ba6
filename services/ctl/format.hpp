// Human output of buildyardctl: aligned tables and the cells in them.
// Pure code, no bus.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ctl/value.hpp"

namespace by::ctl {

// A table with a header row. Columns are left-aligned and separated by two
// spaces; the last column is not padded, so no line ends in blanks. Empty
// cells print as "-".
class Table {
public:
    explicit Table(std::vector<std::string> header);

    // Missing cells at the end are empty; cells beyond the header are dropped.
    void add_row(std::vector<std::string> cells);
    std::size_t rows() const { return rows_.size(); }

    // The whole table, one line per row, each ending in '\n'.
    std::string render() const;

private:
    std::vector<std::string> header_;
    std::vector<std::vector<std::string>> rows_;
};

// Width of a string on a terminal, counting each UTF-8 code point as one column.
std::size_t display_width(std::string_view s);

// Microseconds since the epoch as local time "YYYY-MM-DD HH:MM:SS"; 0 -> "-".
std::string format_time(uint64_t usec);

// "-" for an empty string, else the string.
std::string or_dash(std::string s);

// BUILDS column of `workers`: "RUNNING/MAX", "RUNNING/-" when max is 0 (no limit).
std::string format_build_slots(uint64_t running, uint64_t max);

// NOTE column of `workers`: "paused: REASON" (or "paused"), "removed from config",
// "missing since TIME" (", mailed" once its missing mail went out), joined by
// "; "; empty when there is nothing to note. missing_since 0: not missing.
// A latent worker's failed starts and quarantine, for the notes column.
std::string latent_note(uint64_t quarantined_until, uint64_t start_failures, const std::string& last_error,
                        uint64_t now);
std::string worker_note(bool paused, const std::string& pause_reason, bool configured,
                        uint64_t missing_since = 0, bool missing_notified = false);

// One row of the `workers` table from a Worker1 GetAll reply.
std::vector<std::string> worker_row(const PropertyMap& worker);
inline const std::vector<std::string> worker_columns = {"NAME",      "TYPE", "STATE", "BUILDS",
                                                        "CONNECTED", "HOST", "NOTE"};

inline const std::vector<std::string> build_columns = {"ID",     "BUILDER", "WORKER",  "STATE",
                                                       "RESULT", "EXIT",    "DURATION"};

// EXIT column from a Build1 GetAll reply: the exit status of a finished
// build, empty when it has none (-1: never ran, cancelled, lost).
std::string build_exit_cell(const PropertyMap& build);
// DURATION column: from StartedAt to FinishedAt, or to `now` (usec since the
// epoch) while running; empty before it starts.
std::string build_duration_cell(const PropertyMap& build, uint64_t now);
// The same two as JSON: exit_status (null for none) and duration in seconds
// (null before the start).
nlohmann::json build_exit_json(const PropertyMap& build);
nlohmann::json build_duration_json(const PropertyMap& build, uint64_t now);

// One entry of Master1.ListClusterMembers.
struct ClusterMember {
    std::string name;
    std::string state;           // live, dead, left
    uint64_t fence = 0;
    uint64_t heartbeat_age = 0;  // microseconds
    uint64_t started_at = 0;
    bool self = false;
    std::string host;
    std::string address;
    uint32_t pid = 0;
};

// The members under `status`: a line that counts them, then a table of
// MASTER, STATE, HEARTBEAT (its age), FENCE, HOST, PID, ADDRESS, NOTE.
std::string format_cluster(const std::vector<ClusterMember>& members);

// `status` as "key: value" lines, in a fixed order.
struct MasterStatus {
    std::string version;
    std::string name;
    std::string tls_fingerprint;   // empty: remote workers use plain TCP
    uint64_t workers = 0;
    uint64_t connected_workers = 0;
    uint64_t running_builds = 0;
    uint64_t pending_builds = 0;
};
std::string format_status(const MasterStatus& status);

}  // namespace by::ctl
