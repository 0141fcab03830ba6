#include "master/dispatch.hpp"

#include <algorithm>

namespace by::master {

void Dispatcher::enqueue(const std::string& builder, uint64_t build) {
    auto& q = queues_[builder];
    // Reruns keep their new, higher id, so appending keeps id order except
    // for requeued builds older than the tail: insert those in place.
    if (q.empty() || q.back() < build) {
        q.push_back(build);
    } else {
        q.insert(std::lower_bound(q.begin(), q.end(), build), build);
    }
    ++pending_;
}

bool Dispatcher::remove(const std::string& builder, uint64_t build) {
    auto it = queues_.find(builder);
    if (it == queues_.end()) {
        return false;
    }
    auto& q = it->second;
    auto pos = std::lower_bound(q.begin(), q.end(), build);
    if (pos == q.end() || *pos != build) {
        return false;
    }
    q.erase(pos);
    --pending_;
    if (q.empty()) {
        queues_.erase(it);
    }
    return true;
}

size_t Dispatcher::pending(const std::string& builder) const {
    auto it = queues_.find(builder);
    return it == queues_.end() ? 0 : it->second.size();
}

std::vector<Assignment> Dispatcher::plan(const std::map<std::string, std::vector<std::string>>& builder_workers,
                                         std::map<std::string, WorkerSlot>& workers, size_t limit) {
    std::vector<Assignment> out;
    // Builders that may still get something, ordered by their oldest build.
    std::vector<std::string> candidates;
    for (const auto& [builder, q] : queues_) {
        if (!q.empty() && builder_workers.count(builder)) {
            candidates.push_back(builder);
        }
    }
    while (!candidates.empty() && out.size() < limit) {
        auto oldest = std::min_element(candidates.begin(), candidates.end(), [&](const auto& a, const auto& b) {
            return queues_[a].front() < queues_[b].front();
        });
        const std::string builder = *oldest;
        WorkerSlot* best = nullptr;
        const std::string* best_name = nullptr;
        for (const auto& name : builder_workers.at(builder)) {
            auto w = workers.find(name);
            if (w == workers.end() || !w->second.has_room()) {
                continue;
            }
            WorkerSlot& s = w->second;
            if (!best || s.running < best->running ||
                (s.running == best->running && s.last_assigned < best->last_assigned) ||
                (s.running == best->running && s.last_assigned == best->last_assigned && name < *best_name)) {
                best = &s;
                best_name = &w->first;
            }
        }
        auto& q = queues_[builder];
        if (!best) {
            candidates.erase(oldest);
            continue;
        }
        out.push_back(Assignment{q.front(), builder, *best_name});
        q.pop_front();
        --pending_;
        best->running++;
        best->last_assigned = ++sequence_;
        if (q.empty()) {
            queues_.erase(builder);
            candidates.erase(oldest);
        }
    }
    return out;
}

}  // namespace by::master
