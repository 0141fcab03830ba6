// What a builder's builds may use, and what a build used.
// Limits: what they may use ([builder NAME] memory_max, cpu_quota,
// tasks_max, timeout, sandbox in buildyard.ini(5)), how each value is
// written in the config, and how the master hands them to a worker
// (Agent1.StartBuild's `limits`, buildyard-protocol(7)).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace by::config {

enum class Sandbox { none, standard, strict };
std::string_view to_string(Sandbox s);

struct BuildLimits {
    uint64_t memory_max = 0;   // bytes; 0: no limit
    uint64_t cpu_quota = 0;    // percent of one CPU; 0: no limit
    uint64_t tasks_max = 0;    // 0: no limit
    uint64_t timeout = 0;      // seconds for the whole build; 0: none
    Sandbox sandbox = Sandbox::none;
    bool operator==(const BuildLimits&) const = default;
};

// Whether `key` is one of the keys above.
bool is_limit_key(std::string_view key);
// Sets `key` of `limits` from `text` as written in the config; false with
// `error` set if the value is wrong.
bool parse_limit(std::string_view key, std::string_view text, BuildLimits& limits, std::string& error);

// For StartBuild: only the keys that are set, each in the config's syntax.
std::map<std::string, std::string> limits_to_map(const BuildLimits& limits);
// The worker's side; an unknown key or a bad value is an error.
std::optional<BuildLimits> limits_from_map(const std::map<std::string, std::string>& map, std::string& error);

}  // namespace by::config

namespace by {

// What a build used, from its cgroup (WorkerLink1.BuildDone's `usage`,
// Build1's CPUTimeNSec, MemoryPeak, IOReadBytes, IOWriteBytes). A field the
// worker could not measure is `unknown`, as systemd says it.
struct BuildUsage {
    static constexpr uint64_t unknown = UINT64_MAX;
    uint64_t cpu_nsec = unknown;
    uint64_t memory_peak = unknown;  // bytes
    uint64_t io_read_bytes = unknown;
    uint64_t io_write_bytes = unknown;
    bool operator==(const BuildUsage&) const = default;
};

// Only the known fields, by the names above (cpu_nsec, memory_peak,
// io_read_bytes, io_write_bytes); unknown names are ignored when reading.
std::map<std::string, uint64_t> usage_to_map(const BuildUsage& u);
BuildUsage usage_from_map(const std::map<std::string, uint64_t>& m);

// "CPU 1.25 s, peak memory 100.0 MiB, IO 0 B read, 4.0 KiB written", with
// "unknown" for what was not measured; empty if nothing was.
std::string describe_usage(const BuildUsage& u);

}  // namespace by
