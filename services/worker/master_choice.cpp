#include "worker/master_choice.hpp"

#include <algorithm>

#include "common/backoff.hpp"

namespace by::worker {

MasterChoice::MasterChoice(std::size_t count, unsigned reconnect_max, uint64_t seed)
    : count_(std::max<std::size_t>(count, 1)), reconnect_max_(reconnect_max), random_(seed) {}

void MasterChoice::attached() {
    failures_ = 0;
    refusals_ = 0;
    rounds_ = 0;
}

MasterChoice::Next MasterChoice::failed(uint64_t now, bool refused) {
    Next next;
    ++failures_;
    refusals_ += refused ? 1 : 0;
    current_ = (current_ + 1) % count_;
    next.master = current_;
    if (failures_ < count_) {
        // On to the next master of this round after a short jittered wait.
        next.at = now + reconnect_delay_usec(0, reconnect_max_, random_);
        return next;
    }
    next.give_up = refusals_ == count_;
    next.at = now + reconnect_delay_usec(rounds_, reconnect_max_, random_);
    rounds_ = std::min(rounds_ + 1, 40u);
    failures_ = 0;
    refusals_ = 0;
    return next;
}

}  // namespace by::worker
