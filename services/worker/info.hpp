// What a worker tells the master about itself when it attaches
// (WorkerLink1.Attach's info: host, os, cpus, version, admin, basedir).
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "common/bus.hpp"
#include "common/worker_config.hpp"

namespace by::worker {

// PRETTY_NAME from an os-release(5) file; nullopt if the file cannot be read
// or does not set it.
std::optional<std::string> read_pretty_name(const std::filesystem::path& os_release);

// /etc/os-release, then /usr/lib/os-release, then "Linux" as os-release(5) says.
std::string os_pretty_name();

// CPUs this process may run on.
unsigned cpu_count();

bus::StringMap host_info(const config::WorkerSelf& self);

}  // namespace by::worker
