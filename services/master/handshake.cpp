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

AuthVerdict verify_latent_proof(const std::string* current, const std::vector<std::string>& earlier,
                                const std::string& name, std::span<const uint8_t> master_nonce,
                                std::span<const uint8_t> worker_nonce, std::span<const uint8_t> proof,
                                const std::string& dummy_key) {
    auto matches = [&](const std::string& key) {
        const crypto::Bytes expected = crypto::worker_proof(key, name, master_nonce, worker_nonce);
        return expected.size() == crypto::proof_size && crypto::equal(expected, proof);
    };
    const bool good = matches(current ? *current : dummy_key);
    if (current && good) {
        return AuthVerdict::ok;
    }
    for (const auto& token : earlier) {
        if (matches(token)) {
            return AuthVerdict::stale_token;
        }
    }
    return AuthVerdict::wrong_token;
}

std::string auth_failure_line(AuthVerdict verdict, const std::string& name, const std::string& peer) {
    switch (verdict) {
    case AuthVerdict::unknown_worker: return fmt::format("invalid login from unknown worker '{}' ({})", name, peer);
    case AuthVerdict::wrong_token:
        return fmt::format("invalid login from latent worker '{}': wrong token, not that of its current start ({})",
                           name, peer);
    case AuthVerdict::stale_token:
        return fmt::format("invalid login from latent worker '{}': token of an earlier start; an old or copied "
                           "machine ({})",
                           name, peer);
    case AuthVerdict::ok:
    case AuthVerdict::wrong_password: break;
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
