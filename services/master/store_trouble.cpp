#include "master/store_trouble.hpp"

#include "common/log.hpp"

namespace by::master {

namespace {
constexpr uint64_t retry_usec = 1'000'000;
}  // namespace

StoreTrouble::StoreTrouble(sd_event* event, const Store& store, std::function<void()> shown_changed,
                           std::function<void()> retry, std::function<void()> recovered)
    : event_(event),
      store_(store),
      shown_changed_(std::move(shown_changed)),
      retry_(std::move(retry)),
      recovered_(std::move(recovered)) {}

void StoreTrouble::failed(const std::string& what) {
    ++failures_;
    unanswered_ = unanswered_ || store_.unanswered();
    if (!trouble_) {
        trouble_ = store_.cause();
        log::error("{}: {}; the master keeps what it was told and retries every second until the state database "
                   "takes writes again",
                   what, store_.error());
        shown_changed_();  // STATUS=
    }
    if (retry_source_) {
        sd_event_source_set_enabled(retry_source_.get(), SD_EVENT_ONESHOT);
        return;
    }
    sd_event_source* s = nullptr;
    if (sd_event_add_time_relative(event_, &s, CLOCK_MONOTONIC, retry_usec, 0, &StoreTrouble::on_retry, this) >= 0) {
        retry_source_.reset(s);
    }
}

void StoreTrouble::ok() {
    if (trouble_) {
        trouble_.reset();
        log::notice("the state database takes writes again");
        shown_changed_();
        recovered_();
    }
}

int StoreTrouble::on_retry(sd_event_source* s, uint64_t, void* userdata) {
    auto* t = static_cast<StoreTrouble*>(userdata);
    uint64_t now = 0;
    sd_event_now(t->event_, CLOCK_MONOTONIC, &now);
    sd_event_source_set_time(s, now + retry_usec);
    sd_event_source_set_enabled(s, SD_EVENT_OFF);
    t->retry_();
    return 0;
}

}  // namespace by::master
