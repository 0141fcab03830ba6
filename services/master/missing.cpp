#include "master/missing.hpp"

#include <algorithm>

namespace by::master {

void MissingTracker::configure(const std::string& name, uint64_t timeout_usec, bool notify) {
    Entry& e = workers_[name];
    e.timeout = timeout_usec;
    e.notify = notify;
}

void MissingTracker::forget(const std::string& name) { workers_.erase(name); }

void MissingTracker::attached(const std::string& name) {
    if (auto it = workers_.find(name); it != workers_.end()) {
        it->second.since = 0;
        it->second.not_before = 0;
        it->second.at_once = false;
    }
}

void MissingTracker::absent(const std::string& name, uint64_t since, bool at_once) {
    auto it = workers_.find(name);
    if (it == workers_.end() || since == 0) {
        return;
    }
    if (it->second.since == since) {
        it->second.at_once = it->second.at_once || at_once;
        return;
    }
    it->second.since = since;
    it->second.not_before = 0;
    it->second.at_once = at_once;
}

void MissingTracker::set_notified_loss(const std::string& name, uint64_t loss) {
    if (auto it = workers_.find(name); it != workers_.end()) {
        it->second.notified_loss = loss;
    }
}

void MissingTracker::mark_notified(const std::string& name) {
    if (auto it = workers_.find(name); it != workers_.end() && it->second.since != 0) {
        it->second.notified_loss = it->second.since;
    }
}

void MissingTracker::postpone(const std::string& name, uint64_t until) {
    if (auto it = workers_.find(name); it != workers_.end()) {
        it->second.not_before = until;
    }
}

std::optional<uint64_t> MissingTracker::deadline(const Entry& e) {
    if (e.since == 0 || e.timeout == 0 || !e.notify || e.notified_loss == e.since) {
        return std::nullopt;
    }
    return std::max(e.at_once ? e.since : e.since + e.timeout, e.not_before);
}

std::vector<std::string> MissingTracker::due() const {
    const uint64_t now = clock_();
    std::vector<std::string> out;
    for (const auto& [name, e] : workers_) {
        if (auto d = deadline(e); d && *d <= now) {
            out.push_back(name);
        }
    }
    return out;
}

std::optional<uint64_t> MissingTracker::next_deadline() const {
    std::optional<uint64_t> next;
    for (const auto& [name, e] : workers_) {
        if (auto d = deadline(e); d && (!next || *d < *next)) {
            next = d;
        }
    }
    return next;
}

uint64_t MissingTracker::missing_since(const std::string& name) const {
    auto it = workers_.find(name);
    return it == workers_.end() ? 0 : it->second.since;
}

bool MissingTracker::notified(const std::string& name) const {
    auto it = workers_.find(name);
    return it != workers_.end() && it->second.since != 0 && it->second.notified_loss == it->second.since;
}

}  // namespace by::master
