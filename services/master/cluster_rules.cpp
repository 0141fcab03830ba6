#include "master/cluster_rules.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace by::master {

std::string_view to_string(Liveness l) {
    switch (l) {
    case Liveness::live: return "live";
    case Liveness::dead: return "dead";
    case Liveness::left: return "left";
    }
    return "dead";
}

uint64_t heartbeat_age(const MemberRow& row, uint64_t now) {
    return now > row.heartbeat_at ? now - row.heartbeat_at : 0;
}

Liveness liveness(const MemberRow& row, uint64_t now, uint64_t timeout) {
    if (row.status == "left") {
        return Liveness::left;
    }
    if (row.status != "joined" || heartbeat_age(row, now) > timeout) {
        return Liveness::dead;
    }
    return Liveness::live;
}

JoinVerdict may_join(const MemberRow& holder, uint64_t now, uint64_t timeout, bool holder_gone_here) {
    if (liveness(holder, now, timeout) != Liveness::live || holder_gone_here) {
        return {.allowed = true, .refusal = {}};
    }
    return {.allowed = false,
            .refusal = fmt::format("a live master named '{}' is in the cluster (host {}, pid {}, last heartbeat {} "
                                   "ago); two masters must not share a name: give this one another [master] name, "
                                   "or stop the other one",
                                   holder.name, holder.host.empty() ? "unknown" : holder.host, holder.pid,
                                   seconds_text(heartbeat_age(holder, now)))};
}

std::vector<MemberRow> to_declare_dead(const std::vector<MemberRow>& rows, const std::string& self, uint64_t now,
                                       uint64_t timeout, uint64_t watching_since) {
    std::vector<MemberRow> out;
    for (const MemberRow& r : rows) {
        MemberRow seen = r;
        seen.heartbeat_at = std::max(r.heartbeat_at, watching_since);
        if (r.name != self && r.status == "joined" && liveness(seen, now, timeout) == Liveness::dead) {
            out.push_back(r);
        }
    }
    return out;
}

HeartbeatVerdict judge_heartbeat(bool kept, uint64_t gap, uint64_t timeout) {
    if (!kept) {
        return HeartbeatVerdict::fenced;
    }
    return gap > timeout ? HeartbeatVerdict::late : HeartbeatVerdict::ok;
}

std::string seconds_text(uint64_t usec) {
    return fmt::format("{:.1f} s", static_cast<double>(usec) / 1e6);
}

}  // namespace by::master
