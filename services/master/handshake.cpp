#include "master/handshake.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace by::master {

AuthVerdict verify_worker_proof(const config::Worker* worker, const std::string& name, const Challenge& challenge,
                                std::span<const uint8_t> proof, const std::string& dummy_key) {
    const bool known = worker && worker->type != config::WorkerType::local && !worker->password.empty();
    const crypto::Bytes expected =
        crypto::worker_proof(known ? worker->password : dummy_key, name, challenge.master_nonce,
                             challenge.worker_nonce, challenge.binding);
    // Compare whatever the outcome, so both paths do the same work.
    const bool match = expected.size() == crypto::proof_size && crypto::equal(expected, proof);
    if (!known) {
        return AuthVerdict::unknown_worker;
    }
    return match ? AuthVerdict::ok : AuthVerdict::wrong_password;
}

AuthVerdict verify_latent_proof(const std::string* current, const std::vector<std::string>& earlier,
                                const std::string& name, const Challenge& challenge,
                                std::span<const uint8_t> proof, const std::string& dummy_key) {
    auto matches = [&](const std::string& key) {
        const crypto::Bytes expected = crypto::worker_proof(key, name, challenge.master_nonce,
                                                            challenge.worker_nonce, challenge.binding);
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
    case AuthVerdict::foreign_session:
        return fmt::format("invalid login from worker '{}': its TLS session is not the one with this master "
                           "(channel binding differs), so something between them relays the connection ({})",
                           name, peer);
    case AuthVerdict::ok:
    case AuthVerdict::wrong_password: break;
    }
    return fmt::format("invalid login from worker '{}': wrong password ({})", name, peer);
}

uint64_t AuthThrottle::grow(std::map<std::string, Entry>& map, const std::string& key, uint64_t now) {
    prune(map, now);
    Entry& e = map[key];
    if (e.last != 0 && now - e.last >= quiet) {
        e = Entry{};
    }
    const uint64_t delay = e.delay;
    e.delay = delay == 0 ? first_delay : std::min(delay * 2, max_delay);
    e.last = now;
    e.next = now + e.delay;
    return delay;
}

uint64_t AuthThrottle::failure(const std::string& address, const std::string& name, uint64_t now) {
    grow(names_, name, now);
    return grow(entries_, address, now);
}

uint64_t AuthThrottle::wait(const std::string& name, uint64_t now) {
    auto it = names_.find(name);
    if (it == names_.end() || now >= it->second.next || now - it->second.last >= quiet) {
        return 0;
    }
    return it->second.next - now;
}

void AuthThrottle::prune(std::map<std::string, Entry>& map, uint64_t now) {
    // Bounded memory under a flood of addresses or names: forget the quiet ones.
    if (map.size() < 1024) {
        return;
    }
    std::erase_if(map, [&](const auto& kv) { return now - kv.second.last >= quiet; });
}

}  // namespace by::master
