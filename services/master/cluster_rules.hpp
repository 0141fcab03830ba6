// The rules of cluster membership, free of I/O: whether a master is live
// at a given time, whether a master may take a name, whom to declare dead,
// and what a heartbeat found. Every time here is the database's clock
// (microseconds since the epoch), read by the caller: two machines' clocks
// are never compared.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace by::master {

// A master's row in the shared table `masters`.
struct MemberRow {
    std::string name;
    // "joined": it heartbeats (or did until it died); "left": it stopped
    // cleanly; "dead": another master declared it dead and fenced it.
    std::string status = "left";
    uint64_t fence = 0;           // raised at each join and each declaration of death
    uint64_t heartbeat_at = 0;
    uint64_t started_at = 0;      // its last join
    std::string host;             // the host name it runs on
    std::string address;          // its listen address, for display
    uint32_t pid = 0;
    std::string declared_dead_by; // the master that declared it dead, if one did
};

enum class Liveness { live, dead, left };
std::string_view to_string(Liveness l);

// How old `row`'s heartbeat is at `now`; 0 if it is not older.
uint64_t heartbeat_age(const MemberRow& row, uint64_t now);
// A joined master is live while its heartbeat is at most `timeout` old;
// past that, or once declared dead, it is dead.
Liveness liveness(const MemberRow& row, uint64_t now, uint64_t timeout);

// Whether a master may take the name of `holder` (the row under that name)
// at `now`. `holder_gone_here`: the row names this host and a process id
// that no longer exists here (the same master restarted after a crash).
// On refusal, `refusal` says why, for the admin.
struct JoinVerdict {
    bool allowed = false;
    std::string refusal;
};
JoinVerdict may_join(const MemberRow& holder, uint64_t now, uint64_t timeout, bool holder_gone_here);

// The joined members other than `self` whose heartbeat is older than
// `timeout` at `now`: the ones to declare dead. `watching_since`: when
// `self` began to watch the others without a break (the database's time at
// its first heartbeat after one it could not record or that came late);
// a heartbeat older than that counts as of then, for while `self` could
// not reach the database nobody may have been able to: after an outage of
// the database, the others get `timeout` to heartbeat again before they
// are dead.
std::vector<MemberRow> to_declare_dead(const std::vector<MemberRow>& rows, const std::string& self, uint64_t now,
                                       uint64_t timeout, uint64_t watching_since = 0);

// What one heartbeat found: `kept` whether our row still had our fence
// (and was updated), `gap` the time since our previous heartbeat.
enum class HeartbeatVerdict { ok, late, fenced };
HeartbeatVerdict judge_heartbeat(bool kept, uint64_t gap, uint64_t timeout);

// "1.2 s": a duration in microseconds, for the log and for status.
std::string seconds_text(uint64_t usec);

}  // namespace by::master
