// Where a build's log lives, for whoever writes or reads it (the master's
// build logs, the result mail's tail): STATE_DIRECTORY/logs/ID.log, as
// buildyard-masterd(8) says.
#pragma once

#include <cstdint>
#include <string>

namespace by::master {

inline std::string build_log_path(const std::string& state_directory, uint64_t id) {
    return state_directory + "/logs/" + std::to_string(id) + ".log";
}

}  // namespace by::master
