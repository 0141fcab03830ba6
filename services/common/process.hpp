// Child processes for build steps.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <sys/types.h>

#include "common/raii.hpp"

namespace by::process {

struct Spawned {
    pid_t pid = -1;       // also the process group id
    Fd output;            // read end: the child's stdout and stderr, non-blocking
    Fd gate;              // gated: write a newline (or close) to let the command run
};

// How spawn() starts a program.
struct SpawnOptions {
    std::string cwd;            // empty: the caller's
    bool new_group = false;     // lead a new process group
    bool search_path = false;   // look argv[0] up in PATH
    char* const* envp = nullptr;  // nullptr: the caller's environment
};

// Starts argv (NULL-terminated) with stdin from /dev/null, stdout and stderr
// both into `output_fd`, and a clean signal mask and dispositions: sd-event
// and its threads block the signals they handle, and a child must not
// inherit that. Sets `pid`; returns 0 or a negative errno.
int spawn(char* const argv[], int output_fd, const SpawnOptions& options, pid_t& pid);

// The caller's environment as KEY=VALUE, with `extra_env` replacing
// same-named entries: what a step gets.
std::vector<std::string> environment_with(const std::map<std::string, std::string>& extra_env);

// Runs `/bin/sh -c command` in `cwd` as the leader of a new process group,
// with stdin from /dev/null, stdout and stderr into one pipe, the caller's
// environment plus `extra_env`, and a clean signal mask and dispositions
// (sd-event blocks the signals it handles; children must not inherit that).
// Returns a negative errno on failure.
// With `gated`, the shell first waits for a line on `out.gate` (it exits
// 125 if that is closed without one): the caller can move it into a cgroup
// before it runs anything that could fork.
int spawn_shell(const std::string& command, const std::string& cwd,
                const std::map<std::string, std::string>& extra_env, Spawned& out, bool gated = false);

// What spawn_shell hands to `sh -c`. Debian's sh (dash) forks even for the
// last command of `-c`, where bash would exec it; so a step that is one
// plain command running a program (only literal words, no expansion,
// redirection, operator or quoting, and a first word that is neither a
// builtin, a reserved word nor an assignment) gets `exec ` in front. The
// shell then becomes the program: one process less per step, and the same
// PATH lookup, exit status and process group. Anything else is unchanged.
std::string shell_command(const std::string& command);

}  // namespace by::process
