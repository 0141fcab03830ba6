// When the sweep of a build's processes (isolation_reaper.cpp) may end:
// what one round of it found, and whether to look again. Pure, for tests.
#pragma once

namespace by::worker {

// What one round found among the worker's descendants.
struct SweepRound {
    unsigned alive = 0;    // processes of the build found alive, and sent SIGKILL
    unsigned exiting = 0;  // processes whose environment read empty as they exit
    unsigned unsure = 0;   // processes whose environment read empty, not exiting
};

// What the rounds so far found.
struct SweepProgress {
    unsigned unsure_rounds = 0;
    unsigned exiting_rounds = 0;
    bool killed = false;        // a round found some alive
    unsigned quiet_rounds = 0;  // in a row, since
};

// Rounds to wait for an environment that read empty, of a process not
// exiting, to show: a process in the middle of execve() shows none for a
// moment. A process that cleared its own environment costs only these
// rounds.
inline constexpr unsigned max_unsure_rounds = 5;
// Rounds to wait while processes are exiting with their environment gone
// (a killed one of the build may be among them). Exiting takes
// milliseconds; one stuck in the kernel holds the build's end up to these.
inline constexpr unsigned max_exiting_rounds = 100;

// Whether the sweep looks again after `round` (the caller bounds the
// rounds in all):
// - while it finds processes of the build alive, or processes exiting;
// - a few rounds while an environment reads empty (it may be ours);
// - after a kill, until two rounds in a row are quiet: a daemon whose parent
//   was just killed shows in no /proc/PID/task/*/children list while the
//   kernel moves it to us.
// (A round reads the children lists again until they hold nothing new, so
// that a process whose parent exited during the round is seen in it.)
inline bool sweep_again(SweepProgress& p, const SweepRound& round) {
    const bool unsure = round.unsure > 0 && p.unsure_rounds++ < max_unsure_rounds;
    const bool exiting = round.exiting > 0 && p.exiting_rounds++ < max_exiting_rounds;
    p.killed = p.killed || round.alive > 0;
    const bool busy = round.alive > 0 || exiting;
    p.quiet_rounds = busy || unsure ? 0 : p.quiet_rounds + 1;
    const bool confirm = p.killed && p.quiet_rounds < 2;
    return busy || unsure || confirm;
}

}  // namespace by::worker
