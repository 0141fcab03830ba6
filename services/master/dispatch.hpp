// Which pending build goes to which worker. Pure: the master feeds it the
// queue and each worker's availability as it changes, and carries out its
// plan. It keeps the workers that can take a build ranked per builder, so
// that choosing one costs the same with ten workers attached or ten
// thousand.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

namespace by::master {

// What the dispatcher needs to know of one worker.
struct WorkerSlot {
    bool attached = false;
    // Not attached, but may take builds when no attached worker can (a
    // latent worker whose machine would be started for them).
    bool standby = false;
    bool paused = false;
    bool accepting = true;    // false while shutting down or removed from the config
    unsigned running = 0;     // across all builders
    unsigned max_builds = 0;  // 0: no limit
    uint64_t last_assigned = 0;  // sequence number of its last assignment; 0: never

    bool has_room() const { return attached && room(); }
    bool standby_room() const { return !attached && standby && room(); }
    bool room() const { return !paused && accepting && (max_builds == 0 || running < max_builds); }
};

struct Assignment {
    uint64_t build = 0;
    std::string builder;
    std::string worker;
};

class Dispatcher {
public:
    // Queues a pending build; builds of one builder leave in the order of
    // `order` (0: the build's id), then of their ids. The master orders by
    // request (the id of its first build), so the rerun of a build that
    // was interrupted goes before the builds submitted after it.
    void enqueue(const std::string& builder, uint64_t build, uint64_t order = 0);
    // Takes a pending build out of the queue (cancelled), queued with
    // `order`. False if absent.
    bool remove(const std::string& builder, uint64_t build, uint64_t order = 0);
    size_t pending() const { return pending_; }
    size_t pending(const std::string& builder) const;
    // The ids queued for `builder`, oldest first.
    std::vector<uint64_t> queued(const std::string& builder) const;
    // How many attached workers of `builder` have room for a build now.
    size_t ready(const std::string& builder) const;

    // Which workers serve which builder (the configuration). Builders not
    // named here keep their pending builds until they are.
    void set_builders(const std::map<std::string, std::vector<std::string>>& builder_workers);
    // A worker's availability now (each time it changes), or its end.
    void update(const std::string& worker, const WorkerSlot& slot);
    void forget(const std::string& worker);
    // nullptr if the worker was never updated (or was forgotten).
    const WorkerSlot* slot(const std::string& worker) const;

    // Assigns as many pending builds as workers have room for. The oldest
    // pending build (lowest id) across builders goes first; each goes to
    // the least busy eligible worker of its builder, ties to the one that
    // waited longest, then by name. A builder without an eligible worker
    // does not hold up the others. With `standby`, workers on standby are
    // eligible too. Updates the chosen workers' slots with the new load.
    // At most `limit` assignments are made. Its cost grows with the
    // builders and the assignments, not with the workers.
    std::vector<Assignment> plan(size_t limit = SIZE_MAX, bool standby = false);

private:
    // Best first: least busy, then waited longest, then by name.
    struct Rank {
        unsigned running;
        uint64_t last_assigned;
        std::string name;
        bool operator<(const Rank& o) const;
    };
    struct Pool {
        std::set<Rank> ready;    // attached, with room
        std::set<Rank> standby;  // on standby, with room
    };
    struct Entry {
        WorkerSlot slot;
        std::vector<std::string> builders;
    };
    void index(const std::string& name, const Entry& e);
    void unindex(const std::string& name, const Entry& e);

    struct Queued {
        uint64_t order;
        uint64_t id;
        bool operator<(const Queued& o) const { return std::tie(order, id) < std::tie(o.order, o.id); }
    };
    std::map<std::string, std::deque<Queued>> queues_;
    size_t pending_ = 0;
    uint64_t sequence_ = 0;
    std::map<std::string, Entry> workers_;
    std::map<std::string, std::vector<std::string>> builder_workers_;
    std::map<std::string, Pool> pools_;  // one per configured builder
};

}  // namespace by::master
