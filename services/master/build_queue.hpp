// The builds the master holds: the active ones (pending, running, waiting
// for cleanup) with the dispatcher's queue of pending ones, a small cache of
// finished ones, the running counts, and the StartBuild calls awaiting their
// reply. Master (the coordinator) decides what happens to them.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <systemd/sd-bus.h>

#include "common/config.hpp"
#include "common/raii.hpp"
#include "master/build.hpp"
#include "master/dispatch.hpp"
#include "master/secret_mask.hpp"
#include "master/store.hpp"

namespace by::master {

// How a running build ends, decided but not yet in the store (its write
// failed, e.g. on a full disk). Until it is stored the build stays running,
// as the store says, and the master retries the write every second.
struct Ending {
    Result result = Result::none;  // retry: rerun, for `why`
    int exit_status = -1;
    uint64_t at = 0;               // when it ended
    std::string why;
    // Let go without a record (build_cluster.cpp): the master that took it
    // over reruns it, and its log is not shared with the cluster either.
    bool let_go = false;
};

struct ActiveBuild {
    Build build;
    std::vector<std::string> steps;
    config::BuildLimits limits;   // its builder's, as it started
    std::map<std::string, std::string> secrets;  // the builder's, taken at start
    SecretMask mask;              // over everything written to the log
    Fd log;                       // open while running
    std::string path;
    Build shown;                  // what Build1 last told the bus
    std::optional<Ending> ending;
    bool pulled = false;          // queued by another master sharing the store (build_cluster.cpp)
    uint64_t log_lost = 0;        // bytes of output not written (ENOSPC), since the last write that worked
    std::string log_lost_error;

    explicit ActiveBuild(Build b);
};

class BuildQueue {
public:
    using Active = std::map<uint64_t, std::unique_ptr<ActiveBuild>>;

    // nullptr unless build `id` is active.
    ActiveBuild* active(uint64_t id);
    const Active& all_active() const { return active_; }
    // A build, active or finished (from the store, through a small cache);
    // nullptr if there is none.
    const Build* find(uint64_t id, Store& store);
    // ListBuilds: as the store has them, with active builds as they are now.
    std::vector<Build> list(Store& store, uint64_t before, uint64_t limit);
    // The active builds and up to `n` finished ones, for the bus's node list.
    std::vector<uint64_t> recent_ids(size_t n) const;

    // A pending build, queued; a build found running at start-up whose end
    // waits for the store (it counts as running).
    ActiveBuild& add_pending(Build b);
    // A new build that a worker takes at once: active, never queued.
    ActiveBuild& add_starting(Build b);
    ActiveBuild& add_unstored_end(Build b, Ending e);
    // An ended build leaves; `ended` is kept in the cache.
    void retire(uint64_t id, const Build& ended);
    // A pending build that another master took (or ended) leaves, and the
    // store tells what became of it.
    void drop_pending(uint64_t id);

    Dispatcher& dispatcher() { return dispatcher_; }
    unsigned pending() const { return static_cast<unsigned>(dispatcher_.pending()); }
    unsigned pending(const std::string& builder) const { return static_cast<unsigned>(dispatcher_.pending(builder)); }
    unsigned running() const { return running_; }
    unsigned running(const std::string& builder) const;
    // A build of `builder` started (+1) or ended (-1).
    void count_running(const std::string& builder, int delta);

    // StartBuild calls awaiting their reply, by (link bus, cookie): cookies
    // are per connection. The slot keeps the bus alive until the entry goes.
    size_t starts_in_flight() const { return start_calls_.size(); }
    void start_sent(sd_bus* link, uint64_t cookie, uint64_t build, SlotPtr slot);
    // The build whose StartBuild this reply answers, if it was awaited.
    // The entry goes; sd-bus holds the slot until the reply's handler returns.
    std::optional<uint64_t> start_answered(sd_bus_message* reply);
    // Calls still out on a closing link get no reply.
    void link_closed(sd_bus* link);

private:
    Dispatcher dispatcher_;
    Active active_;
    std::map<uint64_t, Build> finished_cache_;
    Build unfinished_;  // the last build find() read that is another master's and not finished
    struct StartCall {
        uint64_t build = 0;
        SlotPtr slot;
    };
    std::map<std::pair<sd_bus*, uint64_t>, StartCall> start_calls_;
    unsigned running_ = 0;
    std::map<std::string, unsigned> running_by_builder_;  // running_, by builder
};

}  // namespace by::master
