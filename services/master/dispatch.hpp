// Which pending build goes to which worker. Pure: the master feeds it the
// queue and the workers' availability and carries out its plan.
#pragma once

#include <cstdint>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <vector>

namespace by::master {

// What the dispatcher needs to know of one worker.
struct WorkerSlot {
    bool attached = false;
    bool paused = false;
    bool accepting = true;    // false while shutting down or removed from the config
    unsigned running = 0;     // across all builders
    unsigned max_builds = 0;  // 0: no limit
    uint64_t last_assigned = 0;  // sequence number of its last assignment; 0: never

    bool has_room() const { return attached && !paused && accepting && (max_builds == 0 || running < max_builds); }
};

struct Assignment {
    uint64_t build = 0;
    std::string builder;
    std::string worker;
};

class Dispatcher {
public:
    // Queues a pending build; builds of one builder leave in id order.
    void enqueue(const std::string& builder, uint64_t build);
    // Takes a pending build out of the queue (cancelled). False if absent.
    bool remove(const std::string& builder, uint64_t build);
    size_t pending() const { return pending_; }
    size_t pending(const std::string& builder) const;

    // Assigns as many pending builds as workers have room for. The oldest
    // pending build (lowest id) across builders goes first; each goes to
    // the least busy eligible worker of its builder, ties to the one that
    // waited longest, then by name. A builder without an eligible worker
    // does not hold up the others. Updates `workers` with the new load.
    // At most `limit` assignments are made.
    std::vector<Assignment> plan(const std::map<std::string, std::vector<std::string>>& builder_workers,
                                 std::map<std::string, WorkerSlot>& workers, size_t limit = SIZE_MAX);

private:
    std::map<std::string, std::deque<uint64_t>> queues_;
    size_t pending_ = 0;
    uint64_t sequence_ = 0;
};

}  // namespace by::master
