#include "latent/backend_call.hpp"

#include <cerrno>
#include <cstdint>
#include <system_error>

#include <sys/eventfd.h>
#include <unistd.h>

namespace by::latent {

std::atomic<unsigned> CallRunner::detached_{0};

CallRunner::~CallRunner() {
    for (auto& [id, call] : calls_) {
        call->shared->cancelled = true;
        if (call->thread.joinable()) {
            call->thread.detach();
            ++detached_;
        }
    }
}

int CallRunner::start(uint64_t deadline_usec, std::function<void(const Cancelled&)> work,
                      std::function<void()> done, std::function<void()> expired, std::function<void()> late) {
    auto call = std::make_unique<Call>();
    call->runner = this;
    call->id = next_id_++;
    call->shared = std::make_shared<Shared>();
    call->shared->eventfd.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!call->shared->eventfd) {
        return -errno;
    }
    call->done = std::move(done);
    call->on_expired = std::move(expired);
    call->late = std::move(late);

    sd_event_source* s = nullptr;
    int r = sd_event_add_io(event_, &s, call->shared->eventfd.get(), EPOLLIN, &CallRunner::on_io, call.get());
    if (r < 0) return r;
    call->io.reset(s);
    r = sd_event_add_time_relative(event_, &s, CLOCK_MONOTONIC, deadline_usec, 0, &CallRunner::on_deadline,
                                   call.get());
    if (r < 0) return r;
    call->timer.reset(s);

    try {
        // The thread holds the shared state, not the Call: it may outlive both.
        call->thread = std::thread([shared = call->shared, work = std::move(work)] {
            work(shared->cancelled);
            const uint64_t one = 1;
            // Nothing to do if this fails: the deadline still fires.
            (void)!::write(shared->eventfd.get(), &one, sizeof one);
        });
    } catch (const std::system_error& e) {
        return -e.code().value();
    }
    calls_[call->id] = std::move(call);
    return 0;
}

int CallRunner::on_io(sd_event_source*, int fd, uint32_t, void* userdata) {
    auto* call = static_cast<Call*>(userdata);
    CallRunner* self = call->runner;
    uint64_t value = 0;
    (void)!::read(fd, &value, sizeof value);
    // The thread has written its result and is returning; joining also makes
    // everything it wrote visible here.
    call->thread.join();
    auto deliver = call->expired ? std::move(call->late) : std::move(call->done);
    // Erasing frees the source being dispatched; sd-event allows that.
    self->calls_.erase(call->id);
    deliver();
    return 0;
}

int CallRunner::on_deadline(sd_event_source*, uint64_t, void* userdata) {
    auto* call = static_cast<Call*>(userdata);
    call->expired = true;
    call->shared->cancelled = true;
    call->timer.reset();
    auto expired = std::move(call->on_expired);
    expired();
    return 0;
}

}  // namespace by::latent
