// When the sweep of a build's processes (isolation_reaper.cpp) may end:
// what one round of it found, and whether to look again. Pure, for tests.
#pragma once

namespace by::worker {

// What one round found among the worker's descendants.
struct SweepRound {
    unsigned alive = 0;   // processes of the build found alive, and sent SIGKILL
    unsigned exiting = 0;  // processes whose environment read empty as they exit
    unsigned unsure = 0;   // processes whose environment read empty, not exiting
    unsigned reaped = 0;   // orphans of ours that had exited, reaped now
};

// What the rounds so far found.
struct SweepProgress {
    unsigned unsure_rounds = 0;
    unsigned reaped_rounds = 0;
    bool killed = false;        // a round found some alive
    unsigned quiet_rounds = 0;  // in a row, since
};

// Rounds to wait for an environment that read empty, of a process not
// exiting, to show: a process in the middle of execve() shows none for a
// moment. A process that cleared its own environment costs only these
// rounds.
inline constexpr unsigned max_unsure_rounds = 5;
// Rounds that may each reap an orphan before the sweep stops waiting for
// a round that reaps none (a build whose daemons keep forking and exiting
// costs only these).
inline constexpr unsigned max_reaped_rounds = 20;

// Whether the sweep looks again after `round` (the caller bounds the
// rounds in all):
// - while it finds processes of the build alive, or processes exiting
//   whose environment is gone (ours, killed, may be among them);
// - a few rounds while an environment reads empty (it may be ours);
// - after a round that reaped an orphan: when an orphan exits, the kernel
//   moves its children to us, the subreaper, and a round that read our
//   children before that and the orphan's after it saw none of them;
// - after a kill, until two rounds in a row are quiet: a daemon whose parent
//   was just killed shows in no /proc/PID/task/*/children list while the
//   kernel moves it to us.
inline bool sweep_again(SweepProgress& p, const SweepRound& round) {
    const bool unsure = round.unsure > 0 && p.unsure_rounds++ < max_unsure_rounds;
    const bool moved = round.reaped > 0 && p.reaped_rounds++ < max_reaped_rounds;
    p.killed = p.killed || round.alive > 0;
    const bool busy = round.alive > 0 || round.exiting > 0;
    p.quiet_rounds = busy || unsure || moved ? 0 : p.quiet_rounds + 1;
    const bool confirm = p.killed && p.quiet_rounds < 2;
    return busy || unsure || moved || confirm;
}

}  // namespace by::worker
