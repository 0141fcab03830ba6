#include "master/deadline_queue.hpp"

namespace by::master {

void DeadlineQueue::set(uint64_t key, uint64_t at) {
    auto [it, added] = at_.try_emplace(key, at);
    if (!added) {
        order_.erase({it->second, key});
        it->second = at;
    }
    order_.emplace(at, key);
}

void DeadlineQueue::cancel(uint64_t key) {
    auto it = at_.find(key);
    if (it == at_.end()) {
        return;
    }
    order_.erase({it->second, key});
    at_.erase(it);
}

std::optional<uint64_t> DeadlineQueue::next() const {
    if (order_.empty()) {
        return std::nullopt;
    }
    return order_.begin()->first;
}

std::vector<uint64_t> DeadlineQueue::take_due(uint64_t now) {
    std::vector<uint64_t> due;
    auto it = order_.begin();
    for (; it != order_.end() && it->first <= now; ++it) {
        due.push_back(it->second);
        at_.erase(it->second);
    }
    order_.erase(order_.begin(), it);
    return due;
}

}  // namespace by::master
