#include "ctl/format.hpp"

#include <algorithm>
#include <ctime>
#include <optional>

#include <fmt/format.h>

#include "common/duration.hpp"

namespace by::ctl {

Table::Table(std::vector<std::string> header) : header_(std::move(header)) {}

void Table::add_row(std::vector<std::string> cells) {
    cells.resize(header_.size());
    for (auto& c : cells) {
        c = or_dash(std::move(c));
    }
    rows_.push_back(std::move(cells));
}

std::string Table::render() const {
    std::vector<std::size_t> widths(header_.size(), 0);
    auto measure = [&](const std::vector<std::string>& row) {
        for (std::size_t i = 0; i < row.size(); ++i) {
            widths[i] = std::max(widths[i], display_width(row[i]));
        }
    };
    measure(header_);
    for (const auto& row : rows_) {
        measure(row);
    }

    std::string out;
    auto emit = [&](const std::vector<std::string>& row) {
        for (std::size_t i = 0; i < row.size(); ++i) {
            out += row[i];
            if (i + 1 < row.size()) {
                out.append(widths[i] - display_width(row[i]) + 2, ' ');
            }
        }
        out += '\n';
    };
    emit(header_);
    for (const auto& row : rows_) {
        emit(row);
    }
    return out;
}

std::size_t display_width(std::string_view s) {
    std::size_t n = 0;
    for (char c : s) {
        // Continuation bytes (10xxxxxx) belong to the code point before them.
        if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) {
            ++n;
        }
    }
    return n;
}

namespace {

std::optional<int64_t> exit_status(const PropertyMap& build) {
    auto it = build.find("ExitStatus");
    const int64_t* status = it == build.end() ? nullptr : std::get_if<int64_t>(&it->second);
    if (!status || *status < 0 || prop_string(build, "State") != "finished") {
        return std::nullopt;
    }
    return *status;
}

std::optional<uint64_t> duration_usec(const PropertyMap& build, uint64_t now) {
    const uint64_t started = prop_uint(build, "StartedAt");
    if (started == 0) {
        return std::nullopt;
    }
    const uint64_t finished = prop_uint(build, "FinishedAt");
    const uint64_t end = finished != 0 ? finished : now;
    return end > started ? end - started : 0;
}

}  // namespace

std::string build_exit_cell(const PropertyMap& build) {
    const auto status = exit_status(build);
    return status ? std::to_string(*status) : std::string();
}

std::string build_duration_cell(const PropertyMap& build, uint64_t now) {
    const auto usec = duration_usec(build, now);
    return usec ? format_duration(*usec) : std::string();
}

nlohmann::json build_exit_json(const PropertyMap& build) {
    const auto status = exit_status(build);
    return status ? nlohmann::json(*status) : nlohmann::json(nullptr);
}

nlohmann::json build_duration_json(const PropertyMap& build, uint64_t now) {
    const auto usec = duration_usec(build, now);
    return usec ? nlohmann::json(static_cast<double>(*usec) / 1e6) : nlohmann::json(nullptr);
}

std::string format_time(uint64_t usec) {
    if (usec == 0) {
        return "-";
    }
    std::time_t t = static_cast<std::time_t>(usec / 1000000u);
    std::tm tm{};
    if (!localtime_r(&t, &tm)) {
        return "-";
    }
    char buf[64];
    if (std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm) == 0) {
        return "-";
    }
    return buf;
}

std::string join_notes(const std::string& a, const std::string& b) {
    return a.empty() ? b : b.empty() ? a : a + "; " + b;
}

uint64_t now_usec() {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1'000'000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
}

std::string or_dash(std::string s) { return s.empty() ? std::string("-") : s; }

std::string format_build_slots(uint64_t running, uint64_t max) {
    if (max == 0) {
        return fmt::format("{}/-", running);
    }
    return fmt::format("{}/{}", running, max);
}

std::string worker_note(bool paused, const std::string& pause_reason, bool configured,
                        uint64_t missing_since, bool missing_notified) {
    std::string note;
    if (paused) {
        note = pause_reason.empty() ? "paused" : "paused: " + pause_reason;
    }
    if (!configured) {
        if (!note.empty()) {
            note += "; ";
        }
        note += "removed from config";
    }
    if (missing_since != 0) {
        if (!note.empty()) {
            note += "; ";
        }
        note += "missing since " + format_time(missing_since) + (missing_notified ? ", mailed" : "");
    }
    return note;
}

std::string latent_note(uint64_t quarantined_until, uint64_t start_failures, const std::string& last_error,
                        uint64_t now) {
    if (start_failures == 0) {
        return "";
    }
    std::string note = fmt::format("{} failed start{}", start_failures, start_failures == 1 ? "" : "s");
    if (quarantined_until > now) {
        note += ", quarantined until " + format_time(quarantined_until);
    }
    if (!last_error.empty()) {
        note += ": " + last_error;
    }
    return note;
}

std::vector<std::string> worker_row(const PropertyMap& w) {
    bool connected = prop_bool(w, "Connected");
    auto info = prop_map(w, "Info");
    auto host = info.find("host");
    return {
        prop_string(w, "Name"),
        prop_string(w, "Type"),
        prop_string(w, "State"),
        format_build_slots(prop_uint(w, "RunningBuilds"), prop_uint(w, "MaxBuilds")),
        connected ? format_time(prop_uint(w, "LastConnected")) : "-",
        host == info.end() ? std::string() : host->second,
        // A worker object without Configured counts as configured.
        join_notes(worker_note(prop_bool(w, "Paused"), prop_string(w, "PauseReason"),
                               prop_bool(w, "Configured", true), prop_uint(w, "MissingSince"),
                               prop_bool(w, "MissingNotified")),
                   latent_note(prop_uint(w, "QuarantinedUntil"), prop_uint(w, "StartFailures"),
                               prop_string(w, "LastStartError"), now_usec())),
    };
}

std::string format_status(const MasterStatus& s) {
    return fmt::format(
        "version: {}\n"
        "name: {}\n"
        "tls fingerprint: {}\n"
        "workers: {}\n"
        "connected workers: {}\n"
        "running builds: {}\n"
        "pending builds: {}\n",
        or_dash(s.version), or_dash(s.name),
        s.tls_fingerprint.empty() ? std::string("none (tls = no)") : s.tls_fingerprint, s.workers, s.connected_workers, s.running_builds,
        s.pending_builds);
}

std::string format_cluster(const std::vector<ClusterMember>& members) {
    Table t({"MASTER", "STATE", "HEARTBEAT", "FENCE", "HOST", "PID", "ADDRESS", "NOTE"});
    for (const ClusterMember& m : members) {
        t.add_row({m.name, m.state, fmt::format("{:.1f} s ago", static_cast<double>(m.heartbeat_age) / 1e6),
                   std::to_string(m.fence), m.host, m.pid ? std::to_string(m.pid) : "", m.address,
                   m.self ? "this master" : ""});
    }
    return fmt::format("cluster members: {}\n", members.size()) + t.render();
}

}  // namespace by::ctl
