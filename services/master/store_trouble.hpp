// When the store does not take a write (a full disk, most often): nothing
// changes in memory, the caller or worker is told, the condition is logged
// once per episode and shown in STATUS= (bus_changes.hpp), and what waits is
// retried every second until a write works again.
#pragma once

#include <functional>
#include <utility>
#include <optional>
#include <string>

#include <systemd/sd-event.h>

#include "common/raii.hpp"
#include "master/store.hpp"

namespace by::master {

class StoreTrouble {
public:
    // `shown_changed`: the trouble began or ended (STATUS= says so);
    // `retry`: every second while it lasts, what waits tries again;
    // `recovered`: it ended.
    StoreTrouble(sd_event* event, const Store& store, std::function<void()> shown_changed,
                 std::function<void()> retry, std::function<void()> recovered);
    StoreTrouble(const StoreTrouble&) = delete;
    StoreTrouble& operator=(const StoreTrouble&) = delete;

    // A write failed: `what` the master was doing.
    void failed(const std::string& what);
    // A write worked: the episode, if any, ends.
    void ok();
    // Whether a write failed since the last call with its answer lost
    // (Store::unanswered): it may have been committed all the same.
    bool take_unanswered() { return std::exchange(unanswered_, false); }
    // How many writes failed so far: whether one failed since.
    uint64_t failures() const { return failures_; }
    // The failing write's cause while the trouble lasts.
    const std::optional<std::string>& trouble() const { return trouble_; }

private:
    static int on_retry(sd_event_source* s, uint64_t usec, void* userdata);

    sd_event* event_;
    const Store& store_;
    std::function<void()> shown_changed_;
    std::function<void()> retry_;
    std::function<void()> recovered_;
    std::optional<std::string> trouble_;
    bool unanswered_ = false;
    uint64_t failures_ = 0;
    SourcePtr retry_source_;
};

}  // namespace by::master
