// A build and its state machine. Plain data and pure transitions: no bus,
// loop or database, so the rules are unit-tested directly.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/build_limits.hpp"

namespace by::master {

// cleanup: its worker was lost while it ran; it waits until its processes
// are known to be gone (or lost_build_grace has passed) before it ends
// "retry" and is rerun.
enum class BuildState { pending, running, cleanup, finished };
enum class Result { none, success, failure, exception, retry, cancelled };

std::string_view to_string(BuildState s);
std::string_view to_string(Result r);
std::optional<BuildState> parse_build_state(std::string_view s);
std::optional<Result> parse_result(std::string_view s);

struct Build {
    uint64_t id = 0;
    uint64_t request_id = 0;           // id of the first build of the request
    std::string builder;
    std::string worker;                // empty until started
    BuildState state = BuildState::pending;
    Result result = Result::none;
    int exit_status = -1;
    std::map<std::string, std::string> requested;   // as submitted
    std::map<std::string, std::string> properties;  // requested, then merged at start
    uint64_t submitted_at = 0;         // usec since the epoch
    uint64_t started_at = 0;
    uint64_t finished_at = 0;
    unsigned current_step = 0;
    uint64_t retried_as = 0;
    BuildUsage usage;                  // as the worker measured it at the end
    bool cancel_requested = false;     // not persisted: a restart ends the build anyway
};

// Where a pending build waits in its builder's queue: with its request
// (the id of the request's first build), so a rerun goes first.
inline uint64_t queue_order(const Build& b) { return b.request_id ? b.request_id : b.id; }

// Why a transition was refused.
enum class TransitionError { none, not_pending, not_running, already_finished };

// pending -> running on `worker`. The worker's default properties first,
// the submitted ones over them, the worker's properties over both, and
// `workername` always set.
TransitionError start_build(Build& b, const std::string& worker,
                            const std::map<std::string, std::string>& worker_properties, uint64_t now,
                            const std::map<std::string, std::string>& worker_defaults = {});
// running (or cleanup) -> finished with the worker's result (retry is set by
// the master, never by a worker).
TransitionError finish_build(Build& b, Result result, int exit_status, uint64_t now);
// running -> cleanup.
TransitionError await_cleanup(Build& b);
// pending -> finished cancelled. A running build is cancelled through its
// worker and finishes through finish_build.
TransitionError cancel_pending(Build& b, uint64_t now);
// running or cleanup -> finished retry, and the pending build that reruns the request.
// The caller assigns the new build's id and then sets b.retried_as.
std::optional<Build> retry_build(Build& b, uint64_t now);

// The last line of the log of a build that ran and did not succeed:
// "--- failure: exit status 2, after 1.25 s\n" (no exit status when there is
// none, e.g. a cancelled build's); empty for a success or a build that
// never started.
std::string log_trailer(const Build& b);

// The environment of a build's steps (see buildyard-workerd(8)): a
// property KEY as BUILDYARD_PROP_KEY, a secret one (secret.KEY, or KEY of
// the builder's `secrets`, which win) as BUILDYARD_SECRET_KEY.
std::map<std::string, std::string> step_environment(const Build& b,
                                                    const std::map<std::string, std::string>& secrets = {});

}  // namespace by::master
