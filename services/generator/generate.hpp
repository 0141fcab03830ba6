// What buildyard-generator decides: which buildyard-worker@NAME.service
// instances buildyard-workers.target wants. Kept apart from main() so unit
// tests run it on a temporary directory.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "common/config.hpp"

namespace by::generator {

// The unit file names of the local workers' instances, e.g.
// "buildyard-worker@bot\x2dlinux.service", in the config's name order.
std::vector<std::string> local_worker_units(const config::Config& config);

// Creates `dir`/buildyard-workers.target.wants/UNIT -> `unit_template` for
// each unit. Returns the errors, one line each; empty on success.
std::vector<std::string> write_wants(const std::filesystem::path& dir, const std::vector<std::string>& units,
                                     const std::filesystem::path& unit_template);

}  // namespace by::generator
