#include "master/handshake.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace by::master {

AuthVerdict verify_worker_proof(const config::Worker* worker, const std::string& name,
                                std::span<const uint8_t> master_nonce, std::span<const uint8_t> worker_nonce,
                                std::span<const uint8_t> proof, const std::string& dummy_key) {
    const bool known = worker && worker->type != config::WorkerType::local && !worker->password.empty();
    const crypto::Bytes expected =
        crypto::worker_proof(known ? worker->password : dummy_key, name, master_nonce, worker_nonce);
    // Compare whatever the outcome, so both paths do the same work.
    const bool match = expected.size() == crypto::proof_size && crypto::equal(expected, proof);
    if (!known) {
        return AuthVerdict::unknown_worker;
    }
    return match ? AuthVerdict::ok : AuthVerdict::wrong_password;
}

std::string auth_failure_line(AuthVerdict verdict, const std::string& name, const std::string& peer) {
    if (verdict == AuthVerdict::unknown_worker) {
        return fmt::format("invalid login from unknown worker '{}' ({})", name, peer);
    }
    return fmt::format("invalid login from worker '{}': wrong password ({})", name, peer);
}

uint64_t AuthThrottle::failure(const std::string& address, uint64_t now) {
    prune(now);
    Entry& e = entries_[address];
    if (e.last != 0 && now - e.last >= quiet) {
        e.delay = 0;
    }
    const uint64_t delay = e.delay;
    e.delay = delay == 0 ? first_delay : std::min(delay * 2, max_delay);
    e.last = now;
    return delay;
}

void AuthThrottle::prune(uint64_t now) {
    // Bounded memory under a flood from many addresses: forget the quiet ones.
    if (entries_.size() < 1024) {
        return;
    }
    std::erase_if(entries_, [&](const auto& kv) { return now - kv.second.last >= quiet; });
}

}  // namespace by::master
