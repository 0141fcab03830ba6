#include "master/dispatch.hpp"

#include <algorithm>
#include <tuple>

namespace by::master {

void Dispatcher::enqueue(const std::string& builder, uint64_t build, uint64_t order) {
    auto& q = queues_[builder];
    const Queued e{order ? order : build, build};
    // New builds come in order, so appending is the rule; a rerun or a
    // build requeued after a failed claim is inserted in place.
    if (q.empty() || q.back() < e) {
        q.push_back(e);
    } else {
        q.insert(std::lower_bound(q.begin(), q.end(), e), e);
    }
    ++pending_;
}

bool Dispatcher::remove(const std::string& builder, uint64_t build, uint64_t order) {
    auto it = queues_.find(builder);
    if (it == queues_.end()) {
        return false;
    }
    auto& q = it->second;
    const Queued e{order ? order : build, build};
    auto pos = std::lower_bound(q.begin(), q.end(), e);
    if (pos == q.end() || pos->id != build) {
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

std::vector<uint64_t> Dispatcher::queued(const std::string& builder) const {
    auto it = queues_.find(builder);
    std::vector<uint64_t> ids;
    if (it != queues_.end()) {
        for (const Queued& e : it->second) {
            ids.push_back(e.id);
        }
    }
    return ids;
}

size_t Dispatcher::ready(const std::string& builder) const {
    auto it = pools_.find(builder);
    return it == pools_.end() ? 0 : it->second.ready.size();
}

bool Dispatcher::Rank::operator<(const Rank& o) const {
    return std::tie(running, last_assigned, name) < std::tie(o.running, o.last_assigned, o.name);
}

void Dispatcher::index(const std::string& name, const Entry& e) {
    const bool ready = e.slot.has_room();
    if (!ready && !e.slot.standby_room()) {
        return;
    }
    for (const auto& builder : e.builders) {
        Pool& p = pools_[builder];
        (ready ? p.ready : p.standby).insert(Rank{e.slot.running, e.slot.last_assigned, name});
    }
}

void Dispatcher::unindex(const std::string& name, const Entry& e) {
    const Rank rank{e.slot.running, e.slot.last_assigned, name};
    for (const auto& builder : e.builders) {
        auto p = pools_.find(builder);
        if (p != pools_.end()) {
            p->second.ready.erase(rank);
            p->second.standby.erase(rank);
        }
    }
}

void Dispatcher::set_builders(const std::map<std::string, std::vector<std::string>>& builder_workers) {
    builder_workers_ = builder_workers;
    pools_.clear();
    for (auto& [name, e] : workers_) {
        e.builders.clear();
    }
    for (const auto& [builder, names] : builder_workers_) {
        pools_[builder];
        for (const auto& name : names) {
            workers_[name].builders.push_back(builder);
        }
    }
    for (const auto& [name, e] : workers_) {
        index(name, e);
    }
}

void Dispatcher::update(const std::string& worker, const WorkerSlot& slot) {
    auto [it, added] = workers_.try_emplace(worker);
    Entry& e = it->second;
    if (!added) {
        unindex(worker, e);
    }
    e.slot = slot;
    index(worker, e);
}

void Dispatcher::forget(const std::string& worker) {
    auto it = workers_.find(worker);
    if (it == workers_.end()) {
        return;
    }
    unindex(worker, it->second);
    // Its builders still name it: a worker of that name that comes back
    // serves them again.
    it->second.slot = WorkerSlot{};
}

const WorkerSlot* Dispatcher::slot(const std::string& worker) const {
    auto it = workers_.find(worker);
    return it == workers_.end() ? nullptr : &it->second.slot;
}

std::vector<Assignment> Dispatcher::plan(size_t limit, bool standby) {
    std::vector<Assignment> out;
    // Builders that may still get something, ordered by their oldest build.
    std::vector<std::map<std::string, Pool>::iterator> candidates;
    for (const auto& [builder, q] : queues_) {
        if (auto p = pools_.find(builder); !q.empty() && p != pools_.end()) {
            candidates.push_back(p);
        }
    }
    while (!candidates.empty() && out.size() < limit) {
        auto oldest = std::min_element(candidates.begin(), candidates.end(), [&](const auto& a, const auto& b) {
            return queues_[a->first].front() < queues_[b->first].front();
        });
        const std::string builder = (*oldest)->first;
        Pool& pool = (*oldest)->second;
        const Rank* best = pool.ready.empty() ? nullptr : &*pool.ready.begin();
        if (standby && !pool.standby.empty() && (!best || *pool.standby.begin() < *best)) {
            best = &*pool.standby.begin();
        }
        if (!best) {
            candidates.erase(oldest);
            continue;
        }
        const std::string worker = best->name;
        auto& q = queues_[builder];
        out.push_back(Assignment{q.front().id, builder, worker});
        q.pop_front();
        --pending_;
        Entry& e = workers_[worker];
        unindex(worker, e);
        e.slot.running++;
        e.slot.last_assigned = ++sequence_;
        index(worker, e);
        if (q.empty()) {
            queues_.erase(builder);
            candidates.erase(oldest);
        }
    }
    return out;
}

}  // namespace by::master
