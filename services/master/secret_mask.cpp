#include "master/secret_mask.hpp"

#include <algorithm>

namespace by::master {

bool is_secret_property(std::string_view key) { return key.starts_with(secret_prefix); }

std::map<std::string, std::string> public_properties(const std::map<std::string, std::string>& all) {
    std::map<std::string, std::string> out;
    for (const auto& [k, v] : all) {
        if (!is_secret_property(k)) {
            out.emplace(k, v);
        }
    }
    return out;
}

SecretMask::SecretMask(const std::vector<std::string>& secrets) {
    for (const auto& s : secrets) {
        if (!s.empty() && std::find(secrets_.begin(), secrets_.end(), s) == secrets_.end()) {
            secrets_.push_back(s);
        }
    }
    // Longest first: where one secret contains another, all of it is masked.
    std::sort(secrets_.begin(), secrets_.end(), [](const auto& a, const auto& b) { return a.size() > b.size(); });
}

std::string SecretMask::feed(std::string_view chunk) { return scan(chunk, false); }

std::string SecretMask::finish() {
    // Nothing more comes: no held-back prefix can complete its secret, but
    // a shorter secret may still sit inside it.
    return scan({}, true);
}

std::string SecretMask::scan(std::string_view chunk, bool last) {
    if (secrets_.empty()) {
        return std::string(chunk);
    }
    std::string buffer = std::move(pending_);
    buffer.append(chunk);
    pending_.clear();
    std::string out;
    out.reserve(buffer.size());
    const std::string_view text = buffer;
    std::size_t i = 0;
    while (i < text.size()) {
        const std::string_view rest = text.substr(i);
        bool masked = false;
        bool partial = false;
        for (const auto& s : secrets_) {
            if (rest.starts_with(s)) {
                out += "***";
                i += s.size();
                masked = true;
                break;
            }
            partial = partial || (!last && rest.size() < s.size() && std::string_view(s).starts_with(rest));
        }
        if (masked) {
            continue;
        }
        if (partial) {
            // The chunk ends inside what may be a secret: wait for more.
            pending_ = std::string(rest);
            break;
        }
        out += text[i];
        ++i;
    }
    return out;
}

}  // namespace by::master
