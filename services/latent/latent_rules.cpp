#include "latent/latent_rules.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "common/bus.hpp"

namespace by::latent {

std::string_view to_string(Phase p) {
    switch (p) {
    case Phase::creating: return "creating";
    case Phase::running: return "running";
    case Phase::stopping: return "stopping";
    }
    return "stopping";
}

std::optional<Phase> parse_phase(std::string_view s) {
    if (s == "creating") return Phase::creating;
    if (s == "running") return Phase::running;
    if (s == "stopping") return Phase::stopping;
    return std::nullopt;
}

bool valid_start_id(std::string_view s) {
    return s.size() == 32 &&
           std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

uint64_t lease_deadline(uint64_t now, uint64_t lease_usec) {
    return lease_usec > std::numeric_limits<uint64_t>::max() - now ? std::numeric_limits<uint64_t>::max()
                                                                   : now + lease_usec;
}

uint64_t shutdown_grace_usec(const config::Worker& w) {
    auto it = w.backend_options.find(w.backend + ".shutdown_timeout");
    uint64_t seconds = 60;
    if (it != w.backend_options.end()) {
        // The loader has checked it is a number of seconds.
        std::from_chars(it->second.data(), it->second.data() + it->second.size(), seconds);
    }
    return seconds * 1'000'000;
}

Verdict admit_start(const config::Config& cfg, const std::string& worker, const std::string& start,
                    const std::string& token, uint64_t lease_usec, const std::map<std::string, std::string>& live) {
    auto w = cfg.workers.find(worker);
    if (w == cfg.workers.end() || w->second.type != config::WorkerType::latent) {
        return {bus::error::NoSuchWorker, fmt::format("no latent worker named '{}'", worker)};
    }
    if (!valid_start_id(start)) {
        return {bus::error::InvalidArgument,
                fmt::format("invalid start id '{}': expected 32 lowercase hex digits", start)};
    }
    if (token.empty()) {
        return {bus::error::InvalidArgument, "the token is empty"};
    }
    if (lease_usec == 0) {
        return {bus::error::InvalidArgument, "the lease is 0"};
    }
    if (auto it = live.find(start); it != live.end()) {
        return {bus::error::Busy, fmt::format("start {} is live already (worker {})", start, it->second)};
    }
    for (const auto& [s, wname] : live) {
        if (wname == worker) {
            return {bus::error::Busy, fmt::format("worker {} has a live instance already (start {})", worker, s)};
        }
    }
    return {};
}

Recovery plan_recovery(const std::vector<StartRow>& rows, const config::Config& cfg, uint64_t now) {
    Recovery out;
    for (const auto& row : rows) {
        auto w = cfg.workers.find(row.worker);
        if (w == cfg.workers.end() || w->second.type != config::WorkerType::latent ||
            w->second.backend != row.backend) {
            out.orphans.push_back(row);
        } else if (row.phase != Phase::running) {
            out.dead.push_back(row);
        } else if (row.lease_expires <= now) {
            out.expired.push_back(row);
        } else {
            out.adopt.push_back(row);
        }
    }
    return out;
}

std::vector<std::string> expired_leases(const std::vector<StartRow>& rows, uint64_t now) {
    std::vector<std::string> out;
    for (const auto& row : rows) {
        if (row.phase == Phase::running && row.lease_expires <= now) {
            out.push_back(row.start);
        }
    }
    return out;
}

std::vector<Found> leaks(const std::vector<Found>& found, const std::set<std::string>& live_at_list,
                         const std::function<bool(const std::string&)>& live_now) {
    std::vector<Found> out;
    std::set<std::pair<std::string, std::string>> seen;  // workers sharing a URI or directory list it twice
    for (const auto& f : found) {
        if (!live_at_list.contains(f.tag.start) && !live_now(f.tag.start) && seen.emplace(f.kind, f.id).second) {
            out.push_back(f);
        }
    }
    std::stable_sort(out.begin(), out.end(),
                     [](const Found& a, const Found& b) { return (a.kind != "overlay") > (b.kind != "overlay"); });
    return out;
}

size_t count_latent_workers(const config::Config& cfg) {
    return static_cast<size_t>(std::count_if(cfg.workers.begin(), cfg.workers.end(), [](const auto& kv) {
        return kv.second.type == config::WorkerType::latent;
    }));
}

std::map<std::string, std::vector<const config::Worker*>> latent_workers_by_backend(const config::Config& cfg) {
    std::map<std::string, std::vector<const config::Worker*>> out;
    for (const auto& [name, w] : cfg.workers) {
        if (w.type == config::WorkerType::latent) {
            out[w.backend].push_back(&w);
        }
    }
    return out;
}

Timing::Timing(const config::Latentd& l, uint64_t test_create_delay)
    : create(l.create_timeout_usec),
      destroy(l.destroy_timeout_usec),
      health_interval(l.health_interval_usec),
      reap_interval(l.reap_interval_usec),
      lease_check_interval(l.lease_check_interval_usec),
      test_create_delay(test_create_delay) {}

}  // namespace by::latent
