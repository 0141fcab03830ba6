// When the store does not take a write (a full disk, most often): nothing
// changes in memory, the caller or worker is told, the condition is logged
// once and shown in STATUS=, and what waits is retried every second.
#include "common/log.hpp"
#include "master/master.hpp"

namespace by::master {

namespace {
constexpr uint64_t store_retry_usec = 1'000'000;
}  // namespace

void Master::store_failed(const std::string& what) {
    if (!store_trouble_) {
        store_trouble_ = store_->cause();
        log::error("{}: {}; the master keeps what it was told and retries every second until the state directory "
                   "takes writes again",
                   what, store_->error());
        counters_changed();  // STATUS=
    }
    if (store_retry_) {
        sd_event_source_set_enabled(store_retry_.get(), SD_EVENT_ONESHOT);
        return;
    }
    sd_event_source* s = nullptr;
    if (sd_event_add_time_relative(event_, &s, CLOCK_MONOTONIC, store_retry_usec, 0, &Master::on_store_retry,
                                   this) >= 0) {
        store_retry_.reset(s);
    }
}

void Master::store_ok() {
    if (store_trouble_) {
        store_trouble_.reset();
        log::notice("the state database takes writes again");
        counters_changed();
    }
}

int Master::on_store_retry(sd_event_source* s, uint64_t, void* userdata) {
    auto* m = static_cast<Master*>(userdata);
    uint64_t now = 0;
    sd_event_now(m->event_, CLOCK_MONOTONIC, &now);
    sd_event_source_set_time(s, now + store_retry_usec);
    sd_event_source_set_enabled(s, SD_EVENT_OFF);
    m->retry_store();
    return 0;
}

void Master::retry_store() {
    // Builds whose end waits, oldest first, in one commit.
    std::vector<std::pair<uint64_t, Ending>> waiting;
    for (const auto& [id, ab] : builds_.all_active()) {
        if (ab->ending) {
            waiting.emplace_back(id, *ab->ending);
        }
    }
    if (!end_builds(waiting)) {
        return;  // still failing; store_failed() armed the next try
    }
    for (auto& [name, w] : workers_.all()) {
        if (w->unsaved && !save_worker(*w)) {
            return;
        }
    }
    dispatch();  // pending builds whose start could not be recorded
}

bool Master::save_worker(Worker& w) {
    WorkerRecord rec{w.cfg.name, w.paused, w.pause_reason, w.last_connected, w.last_disconnected, w.info};
    if (!store_->save_worker(rec)) {
        w.unsaved = true;
        store_failed("cannot save the state of worker " + w.cfg.name);
        return false;
    }
    w.unsaved = false;
    store_ok();
    return true;
}

}  // namespace by::master
