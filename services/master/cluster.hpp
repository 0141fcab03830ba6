// This master's membership of the cluster: it joins at start (refusing to
// run beside a live master of the same name), heartbeats on the loop's
// timer, declares dead the members whose heartbeat timed out, notices when
// it was fenced itself and joins again, and leaves on a clean stop. The
// rules are cluster_rules.hpp's; the table is the store's
// (cluster_store.hpp). With a store of its own (SQLite) the master is the
// only member and nothing is stored.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <systemd/sd-event.h>

#include "common/raii.hpp"
#include "master/cluster_store.hpp"

namespace by::master {

struct ClusterTiming {
    uint64_t heartbeat_usec = 2'000'000;
    uint64_t timeout_usec = 10'000'000;
};

// A member as the bus shows it.
struct MemberView {
    MemberRow row;
    Liveness liveness = Liveness::live;
    uint64_t heartbeat_age = 0;
    bool self = false;
};

// What the master does when the cluster changes under it.
struct ClusterHooks {
    // This master was fenced and a live master now holds its name: it must stop.
    std::function<void()> name_lost;
    // This master was fenced (`why`), before it joins again: what it held
    // is another's now (its builds were rerun), so it lets go of it.
    std::function<void(const std::string& why)> fenced;
    // This master declared master `dead` dead and took over its builds:
    // each ended retry, with its rerun queued.
    std::function<void(const std::string& dead, std::vector<Retry>& taken)> took_over;
    // After each heartbeat: the members that are live now (this one too).
    std::function<void(const std::set<std::string>& live)> ticked;
};

class ClusterMembership {
public:
    // `store`: nullptr for a master alone.
    ClusterMembership(sd_event* event, MemberStore* store, MemberIdentity me, ClusterTiming timing,
                      ClusterHooks hooks);

    // Joins and starts the heartbeat. False with `error` set when a live
    // master holds the name or the database fails.
    bool start(std::string& error);
    void set_timing(ClusterTiming timing) { timing_ = timing; }
    // A clean stop: the others see this master "left", not dead.
    void leave();

    // Every member, this one included; nullopt with `error` set when the
    // database fails.
    std::optional<std::vector<MemberView>> members(std::string& error) const;
    uint64_t fence() const { return fence_; }
    // A write was refused as fenced: the next heartbeat (which finds out
    // and joins again) comes now, from the loop, not at its time.
    void check_soon();

private:
    // Joins under our name. False with `error` set; `refused` (if given)
    // tells a live holder of the name from a database that failed.
    bool join(bool first, std::string& error, bool* refused = nullptr);
    void tick();
    void fenced();
    void declare_dead(const MemberListing& listing);
    static int on_timer(sd_event_source* s, uint64_t usec, void* userdata);

    sd_event* event_;
    MemberStore* store_;
    MemberIdentity me_;
    ClusterTiming timing_;
    ClusterHooks hooks_;
    uint64_t fence_ = 0;
    uint64_t started_at_ = 0;   // alone: when this master started (its own clock)
    bool failing_ = false;      // the last heartbeat could not be recorded
    // This master could not see the others for a while (a heartbeat failed
    // or came late): the next listing starts a new watch, from its time.
    bool blind_ = false;
    uint64_t watching_since_ = 0;  // the database's time; to_declare_dead
    SourcePtr timer_;
};

}  // namespace by::master
