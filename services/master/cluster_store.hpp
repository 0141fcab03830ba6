// What cluster membership needs of a shared database: the table `masters`
// (one row per master name), read and changed in the database's clock.
// PgStore is the one implementation; SQLite holds no cluster.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "master/cluster_rules.hpp"
#include "master/store.hpp"

namespace by::master {

// What a master tells about itself when it joins.
struct MemberIdentity {
    std::string name;
    std::string host;
    std::string address;
    uint32_t pid = 0;
};

// Every member's row and the database's time when they were read.
struct MemberListing {
    uint64_t now = 0;
    std::vector<MemberRow> rows;
};

// One heartbeat: whether the row still had our fence (and now has a new
// heartbeat), and how long it was since the previous one.
struct HeartbeatRecord {
    bool kept = false;
    uint64_t gap = 0;
};

class MemberStore {
public:
    virtual ~MemberStore() = default;
    virtual const std::string& error() const = 0;

    // In one transaction: the row named me.name (a blank "left" one if
    // there was none), locked, is handed to `decide` with the database's
    // time; if decide returns true the row becomes me's, "joined", with a
    // new heartbeat and its fence raised by one. The new fence; 0 when
    // decide refused; nullopt with error() set on failure.
    virtual std::optional<uint64_t> join(const MemberIdentity& me,
                                         const std::function<bool(const MemberRow&, uint64_t now)>& decide) = 0;
    // A new heartbeat for `name`, if its row is still joined with `fence`.
    virtual std::optional<HeartbeatRecord> heartbeat(const std::string& name, uint64_t fence) = 0;
    virtual std::optional<MemberListing> list_members() = 0;
    // Declares `row` dead and raises its fence, if it is still as it was
    // read (same fence and heartbeat): true if this call did it, false if
    // it had changed (it heartbeat, rejoined, or another master was first).
    // In the same commit the builds that master held (running or waiting
    // for cleanup) end retry at `now` and their reruns are queued: `taken`
    // gets each, as record_retries leaves it. Once only, then: no write of
    // the dead master's can land after it (its fence is gone).
    virtual std::optional<bool> declare_dead(const MemberRow& row, const std::string& by, uint64_t now,
                                             std::vector<Retry>& taken) = 0;
    // A clean stop: `name` leaves, if it still holds `fence`.
    virtual bool leave(const std::string& name, uint64_t fence) = 0;
};

}  // namespace by::master
