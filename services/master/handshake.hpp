// The decisions of the remote worker handshake, free of I/O: checking a
// worker's proof, and how long to hold back the answer to an address that
// keeps failing. remote_handshake.cpp wraps them in sd-bus and timers.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "common/config.hpp"
#include "common/crypto.hpp"

namespace by::master {

enum class AuthVerdict { ok, unknown_worker, wrong_password, wrong_token, stale_token, foreign_session };

// The handshake's nonces and the TLS session they are bound to.
struct Challenge {
    std::span<const uint8_t> master_nonce;
    std::span<const uint8_t> worker_nonce;
    std::span<const uint8_t> binding;  // tls-exporter; empty over plain TCP
};

// Checks `proof` for worker `name`. `worker` is its configuration, or
// nullptr when there is no such worker (or it is local, and so has no
// password). An unknown worker costs the same HMAC and comparison as a known
// one, keyed with `dummy_key`, so timing does not tell the two apart.
AuthVerdict verify_worker_proof(const config::Worker* worker, const std::string& name, const Challenge& challenge,
                                std::span<const uint8_t> proof, const std::string& dummy_key);

// Checks the proof of latent worker `name`, keyed on the token of its
// current start (`current`; nullptr when no start takes one now). A proof
// made with one of the `earlier` starts' tokens is a stale token: an old
// instance, or a copy of one. Anything else is a wrong token.
AuthVerdict verify_latent_proof(const std::string* current, const std::vector<std::string>& earlier,
                                const std::string& name, const Challenge& challenge,
                                std::span<const uint8_t> proof, const std::string& dummy_key);

// The log line for a failed login, exactly as admins grep for it.
std::string auth_failure_line(AuthVerdict verdict, const std::string& name, const std::string& peer);

// Slows down repeated failures, per source address and per worker name.
// Per address: the first failure is answered at once, each further one
// waits twice as long as the one before (from 0.2 s up to 10 s). Per name,
// whatever the address: after a failure the next attempt for that name is
// not even checked before the same growing delay has passed, so guesses
// from many addresses come one at a time, and a right guess waits its turn
// like a wrong one. A success clears the name; an address or a name that
// has been quiet for a minute starts again from nothing. Nothing is ever
// locked out for good. Times are microseconds of any monotonic clock.
class AuthThrottle {
public:
    static constexpr uint64_t first_delay = 200'000;
    static constexpr uint64_t max_delay = 10'000'000;
    static constexpr uint64_t quiet = 60'000'000;

    // Records a failure of `name` from `address`; returns how long to hold
    // back its answer.
    uint64_t failure(const std::string& address, const std::string& name, uint64_t now);
    // How long an attempt for `name` must wait before it is checked; 0: now.
    uint64_t wait(const std::string& name, uint64_t now);
    void success(const std::string& name) { names_.erase(name); }
    size_t tracked() const { return entries_.size(); }
    size_t tracked_names() const { return names_.size(); }

private:
    struct Entry {
        uint64_t delay = 0;  // for the next failure
        uint64_t last = 0;
        uint64_t next = 0;   // names: no attempt checked before
    };
    // Records a failure for `key`; returns the delay before it grew.
    static uint64_t grow(std::map<std::string, Entry>& map, const std::string& key, uint64_t now);
    static void prune(std::map<std::string, Entry>& map, uint64_t now);

    std::map<std::string, Entry> entries_;
    std::map<std::string, Entry> names_;
};

}  // namespace by::master
