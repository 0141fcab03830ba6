#include "master/build_queue.hpp"

#include "common/bus.hpp"

namespace by::master {

ActiveBuild::ActiveBuild(Build b) : build(std::move(b)), shown(build) {}

ActiveBuild* BuildQueue::active(uint64_t id) {
    auto it = active_.find(id);
    return it == active_.end() ? nullptr : it->second.get();
}

const Build* BuildQueue::find(uint64_t id, Store& store) {
    if (ActiveBuild* ab = active(id)) {
        return &ab->build;
    }
    if (auto it = finished_cache_.find(id); it != finished_cache_.end()) {
        return &it->second;
    }
    auto b = store.load_build(id);
    if (!b) {
        return nullptr;
    }
    if (b->state != BuildState::finished) {
        // Another master's (the store is shared): it changes, so it is
        // read each time.
        unfinished_ = std::move(*b);
        return &unfinished_;
    }
    // A small cache of finished builds, so that a client reading all the
    // properties of one build does not query the database each time.
    constexpr size_t cache_size = 256;
    if (finished_cache_.size() >= cache_size) {
        finished_cache_.erase(finished_cache_.begin());
    }
    return &(finished_cache_[id] = std::move(*b));
}

std::vector<Build> BuildQueue::list(Store& store, uint64_t before, uint64_t limit) {
    auto builds = store.list_builds(before, limit);
    // The database is written through, but the log position of a running
    // build is only in memory.
    // A build queued here that the store no longer holds as pending was
    // taken by another master sharing the store: the store knows better.
    for (auto& b : builds) {
        if (ActiveBuild* ab = active(b.id); ab && (ab->build.state != BuildState::pending || b.state == BuildState::pending)) {
            b = ab->build;
        }
    }
    return builds;
}

std::vector<uint64_t> BuildQueue::recent_ids(size_t n) const {
    std::vector<uint64_t> ids;
    for (const auto& [id, ab] : active_) {
        ids.push_back(id);
    }
    for (auto it = finished_cache_.rbegin(); it != finished_cache_.rend() && ids.size() < n + active_.size(); ++it) {
        ids.push_back(it->first);
    }
    return ids;
}

ActiveBuild& BuildQueue::add_pending(Build b) {
    auto ab = std::make_unique<ActiveBuild>(std::move(b));
    ab->path = bus::path_encode(bus::build_prefix, std::to_string(ab->build.id));
    dispatcher_.enqueue(ab->build.builder, ab->build.id, queue_order(ab->build));
    auto& ref = *ab;
    active_[ref.build.id] = std::move(ab);
    return ref;
}

ActiveBuild& BuildQueue::add_starting(Build b) {
    auto ab = std::make_unique<ActiveBuild>(std::move(b));
    ab->path = bus::path_encode(bus::build_prefix, std::to_string(ab->build.id));
    auto& ref = *ab;
    active_[ref.build.id] = std::move(ab);
    return ref;
}

ActiveBuild& BuildQueue::add_unstored_end(Build b, Ending e) {
    auto ab = std::make_unique<ActiveBuild>(std::move(b));
    ab->path = bus::path_encode(bus::build_prefix, std::to_string(ab->build.id));
    ab->ending = std::move(e);
    count_running(ab->build.builder, +1);
    auto& ref = *ab;
    active_[ref.build.id] = std::move(ab);
    return ref;
}

void BuildQueue::drop_pending(uint64_t id) {
    if (ActiveBuild* ab = active(id); ab && ab->build.state == BuildState::pending) {
        dispatcher_.remove(ab->build.builder, id, queue_order(ab->build));
        active_.erase(id);
    }
}

void BuildQueue::retire(uint64_t id, const Build& ended) {
    finished_cache_[id] = ended;
    active_.erase(id);
}

unsigned BuildQueue::running(const std::string& builder) const {
    auto it = running_by_builder_.find(builder);
    return it == running_by_builder_.end() ? 0 : it->second;
}

void BuildQueue::count_running(const std::string& builder, int delta) {
    running_ += delta;
    auto& n = running_by_builder_[builder];
    n += delta;
    if (n == 0) {
        running_by_builder_.erase(builder);
    }
}

void BuildQueue::start_sent(sd_bus* link, uint64_t cookie, uint64_t build, SlotPtr slot) {
    start_calls_[{link, cookie}] = StartCall{build, std::move(slot)};
}

std::optional<uint64_t> BuildQueue::start_answered(sd_bus_message* reply) {
    uint64_t cookie = 0;
    sd_bus_message_get_reply_cookie(reply, &cookie);
    auto it = start_calls_.find({sd_bus_message_get_bus(reply), cookie});
    if (it == start_calls_.end()) {
        return std::nullopt;
    }
    const uint64_t id = it->second.build;
    start_calls_.erase(it);
    return id;
}

void BuildQueue::link_closed(sd_bus* link) {
    std::erase_if(start_calls_, [&](const auto& kv) { return kv.first.first == link; });
}

}  // namespace by::master
