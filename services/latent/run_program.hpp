// Runs a helper program (qemu-img) from a backend's thread, with a deadline
// and the caller's Cancelled flag: the backend call must never hang on it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "latent/backend.hpp"

namespace by::latent {

struct ProgramResult {
    int exit_status = -1;  // -1: killed or not run
    std::string output;    // stdout and stderr, at most 64 KiB (the end)
};

// Runs argv[0] (looked up in PATH) with argv, stdin from /dev/null, a clean
// signal mask, the caller's environment. Kills it (SIGKILL) when
// `timeout_usec` passes or `cancelled` is set. An error says why it did not
// run to its end; a non-zero exit status is not an error here.
Outcome<ProgramResult> run_program(const std::vector<std::string>& argv, uint64_t timeout_usec,
                                   const Cancelled& cancelled);

}  // namespace by::latent
