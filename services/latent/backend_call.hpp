// Runs each blocking Backend call on a std::thread of its own and brings its
// result back to the sd-event loop through an eventfd, with a deadline. When
// the deadline passes first, the call's Cancelled flag is set and `expired`
// runs; the result that comes later goes to `late` instead of `done`. The
// loop never waits for a backend.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include <systemd/sd-event.h>

#include "common/raii.hpp"
#include "latent/backend.hpp"

namespace by::latent {

class CallRunner {
public:
    explicit CallRunner(sd_event* event) : event_(event) {}
    CallRunner(const CallRunner&) = delete;
    CallRunner& operator=(const CallRunner&) = delete;
    // Calls still running are cancelled and left to finish on their own
    // (their threads own everything they use); see detached_threads().
    ~CallRunner();

    // Starts `work` on a new thread. Exactly one of `done` (in time) or
    // `expired` then `late` (after the deadline) runs on the loop later,
    // never from inside run(). `work` must capture nothing the loop owns.
    // Returns a negative errno if the call could not be started.
    template <class T>
    int run(uint64_t deadline_usec, std::function<Outcome<T>(const Cancelled&)> work,
            std::function<void(Outcome<T>)> done, std::function<void()> expired,
            std::function<void(Outcome<T>)> late) {
        auto box = std::make_shared<Outcome<T>>();
        return start(
            deadline_usec, [box, work = std::move(work)](const Cancelled& c) { *box = work(c); },
            [box, done = std::move(done)] { done(std::move(*box)); }, std::move(expired),
            [box, late = std::move(late)] { late(std::move(*box)); });
    }

    size_t running() const { return calls_.size(); }

    // Threads left running by destroyed runners in this process. The
    // program must not run static destructors under them (main uses _exit).
    static unsigned detached_threads() { return detached_.load(); }

private:
    struct Shared {
        Cancelled cancelled{false};
        Fd eventfd;
    };
    struct Call {
        CallRunner* runner = nullptr;
        uint64_t id = 0;
        std::shared_ptr<Shared> shared;
        std::thread thread;
        SourcePtr io;
        SourcePtr timer;
        bool expired = false;
        std::function<void()> done;
        std::function<void()> on_expired;
        std::function<void()> late;
    };

    int start(uint64_t deadline_usec, std::function<void(const Cancelled&)> work, std::function<void()> done,
              std::function<void()> expired, std::function<void()> late);
    static int on_io(sd_event_source* s, int fd, uint32_t revents, void* userdata);
    static int on_deadline(sd_event_source* s, uint64_t usec, void* userdata);

    sd_event* event_;
    uint64_t next_id_ = 1;
    std::map<uint64_t, std::unique_ptr<Call>> calls_;
    static std::atomic<unsigned> detached_;
};

}  // namespace by::latent
