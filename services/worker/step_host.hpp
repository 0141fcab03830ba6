// The step host. With `sandbox = standard` or `strict`, a build's unit is a
// transient service rather than a scope: systemd starts its main process,
// `buildyard-workerd --step-host`, with the sandbox's settings (PrivateTmp=,
// ProtectSystem=, DynamicUser=, ...), and the host runs the build's steps as
// its own children, so that every step and everything it forks is inside
// the sandbox. The worker and the host talk over a socket pair, the host's
// standard input:
//   host -> worker: hello (the host's uid and gid) once, then per step
//                   exited (its status) or failed (an errno: it never ran);
//   worker -> host: run (directory, command, environment; the step's output
//                   pipe rides along), signal (for the step's process group).
// Each message is a Header, then `length` bytes of payload (run only).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace by::worker::step_host {

enum class Kind : uint32_t { hello = 1, run = 2, signal = 3, exited = 4, failed = 5 };

struct Header {
    uint32_t kind = 0;
    uint32_t length = 0;  // payload bytes that follow
    int32_t a = 0;        // hello: uid; signal: the signal; exited: status; failed: errno
    int32_t b = 0;        // hello: gid
};

// A run's payload is bounded so that a broken peer cannot make either side
// allocate without limit (a step's environment holds the build's properties).
constexpr uint32_t max_payload = 64u << 20;

struct Run {
    std::string cwd;
    std::string command;  // for /bin/sh -c
    std::vector<std::string> environment;  // KEY=VALUE, the whole of it
};

std::string encode_run(const Run& run);
// nullopt if the payload is not a run's.
std::optional<Run> decode_run(std::string_view payload);

// Sends one message, blocking (the caller bounds it with SO_SNDTIMEO), with
// `pass_fd` attached if not -1. 0 or a negative errno.
int send_message(int fd, Kind kind, int32_t a, int32_t b, std::string_view payload = {}, int pass_fd = -1);

// The host itself: serves the worker on `fd` until it closes the socket.
// Returns the process's exit status.
int run_host(int fd);

}  // namespace by::worker::step_host
