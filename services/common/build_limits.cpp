#include "common/build_limits.hpp"


#include <iterator>

#include <fmt/format.h>

#include "common/config_values.hpp"

namespace by::config {

namespace {

using detail::parse_uint;

constexpr uint64_t max_memory = 1ULL << 50;        // 1 PiB
constexpr uint64_t max_cpu_percent = 100000;      // a thousand CPUs
constexpr uint64_t max_tasks = 4194304;           // the kernel's pid_max limit

std::optional<uint64_t> parse_bytes(std::string_view text) {
    if (text.empty()) return std::nullopt;
    uint64_t unit = 1;
    switch (text.back()) {
    case 'K': unit = 1ULL << 10; break;
    case 'M': unit = 1ULL << 20; break;
    case 'G': unit = 1ULL << 30; break;
    case 'T': unit = 1ULL << 40; break;
    default: break;
    }
    if (unit != 1) text.remove_suffix(1);
    const auto n = parse_uint(text, max_memory / unit);
    if (!n || *n == 0) return std::nullopt;
    return *n * unit;
}

}  // namespace

std::string_view to_string(Sandbox s) {
    switch (s) {
    case Sandbox::none: return "none";
    case Sandbox::standard: return "standard";
    case Sandbox::strict: return "strict";
    }
    return "none";
}

bool is_limit_key(std::string_view key) {
    return key == "memory_max" || key == "cpu_quota" || key == "tasks_max" || key == "timeout" || key == "sandbox";
}

bool parse_limit(std::string_view key, std::string_view text, BuildLimits& limits, std::string& error) {
    if (key == "memory_max") {
        if (const auto v = parse_bytes(text)) {
            limits.memory_max = *v;
            return true;
        }
        error = "expected a positive number of bytes, with an optional K, M, G or T suffix (1024-based), up to 1P";
    } else if (key == "cpu_quota") {
        if (!text.empty() && text.back() == '%') {
            if (const auto v = parse_uint(text.substr(0, text.size() - 1), max_cpu_percent); v && *v > 0) {
                limits.cpu_quota = *v;
                return true;
            }
        }
        error = "expected a percentage of one CPU such as 50% or 200%, from 1% to 100000%";
    } else if (key == "tasks_max") {
        if (const auto v = parse_uint(text, max_tasks); v && *v > 0) {
            limits.tasks_max = *v;
            return true;
        }
        error = "expected a number of processes and threads from 1 to 4194304";
    } else if (key == "timeout") {
        if (const auto v = parse_uint(text, detail::max_seconds); v && *v > 0) {
            limits.timeout = *v;
            return true;
        }
        error = "expected a positive number of seconds";
    } else if (key == "sandbox") {
        for (Sandbox s : {Sandbox::none, Sandbox::standard, Sandbox::strict}) {
            if (text == to_string(s)) {
                limits.sandbox = s;
                return true;
            }
        }
        error = "expected none, standard or strict";
    } else {
        error = "unknown key";
    }
    return false;
}

std::map<std::string, std::string> limits_to_map(const BuildLimits& l) {
    std::map<std::string, std::string> m;
    if (l.memory_max) m["memory_max"] = std::to_string(l.memory_max);
    if (l.cpu_quota) m["cpu_quota"] = std::to_string(l.cpu_quota) + "%";
    if (l.tasks_max) m["tasks_max"] = std::to_string(l.tasks_max);
    if (l.timeout) m["timeout"] = std::to_string(l.timeout);
    if (l.sandbox != Sandbox::none) m["sandbox"] = std::string(to_string(l.sandbox));
    return m;
}

std::optional<BuildLimits> limits_from_map(const std::map<std::string, std::string>& map, std::string& error) {
    BuildLimits l;
    for (const auto& [key, value] : map) {
        std::string why;
        if (!parse_limit(key, value, l, why)) {
            error = "limit " + key + " = '" + value + "': " + why;
            return std::nullopt;
        }
    }
    return l;
}

}  // namespace by::config

namespace by {

namespace {
struct UsageField {
    const char* name;
    uint64_t BuildUsage::*field;
};
constexpr UsageField usage_fields[] = {
    {"cpu_nsec", &BuildUsage::cpu_nsec},
    {"memory_peak", &BuildUsage::memory_peak},
    {"io_read_bytes", &BuildUsage::io_read_bytes},
    {"io_write_bytes", &BuildUsage::io_write_bytes},
};
}  // namespace

std::map<std::string, uint64_t> usage_to_map(const BuildUsage& u) {
    std::map<std::string, uint64_t> m;
    for (const auto& f : usage_fields) {
        if (u.*f.field != BuildUsage::unknown) m[f.name] = u.*f.field;
    }
    return m;
}

BuildUsage usage_from_map(const std::map<std::string, uint64_t>& m) {
    BuildUsage u;
    for (const auto& f : usage_fields) {
        if (auto it = m.find(f.name); it != m.end()) u.*f.field = it->second;
    }
    return u;
}

namespace {
std::string bytes_text(uint64_t n) {
    if (n == BuildUsage::unknown) return "unknown";
    if (n < 1024) return std::to_string(n) + " B";
    static constexpr const char* units[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = static_cast<double>(n) / 1024;
    size_t u = 0;
    while (v >= 1024 && u + 1 < std::size(units)) {
        v /= 1024;
        ++u;
    }
    return fmt::format("{:.1f} {}", v, units[u]);
}
}  // namespace

std::string describe_usage(const BuildUsage& u) {
    if (u == BuildUsage{}) return "";
    const std::string cpu =
        u.cpu_nsec == BuildUsage::unknown ? "unknown" : fmt::format("{:.3f} s", static_cast<double>(u.cpu_nsec) / 1e9);
    return fmt::format("CPU {}, peak memory {}, IO {} read, {} written", cpu, bytes_text(u.memory_peak),
                       bytes_text(u.io_read_bytes), bytes_text(u.io_write_bytes));
}

}  // namespace by
