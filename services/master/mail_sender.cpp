#include "master/mail_sender.hpp"

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

#include <sys/eventfd.h>
#include <unistd.h>

#include "common/raii.hpp"

namespace by::master {

// Shared by the loop and the thread, and owned by both: a thread left
// behind at shutdown keeps it alive until it returns.
struct MailSender::State {
    std::mutex mutex;
    std::condition_variable wake;      // jobs or stop
    std::condition_variable finished;  // the thread has returned
    std::deque<DeliveryJob> jobs;
    std::vector<DeliveryResult> results;
    bool stop = false;
    bool done = false;
    Fd event;
};

MailSender::MailSender(Send send) : send_(std::move(send)) {}

MailSender::~MailSender() {
    if (!state_) {
        return;
    }
    std::unique_lock lock(state_->mutex);
    state_->stop = true;
    state_->wake.notify_all();
    state_->finished.wait_for(lock, std::chrono::seconds(2), [&] { return state_->done; });
}

bool MailSender::start(std::string& error) {
    auto state = std::make_shared<State>();
    state->event.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!state->event) {
        error = std::string("cannot create an eventfd: ") + std::strerror(errno);
        return false;
    }
    try {
        std::thread([state, send = send_] {
            std::unique_lock lock(state->mutex);
            while (true) {
                state->wake.wait(lock, [&] { return state->stop || !state->jobs.empty(); });
                if (state->stop) {
                    break;
                }
                DeliveryJob job = std::move(state->jobs.front());
                state->jobs.pop_front();
                lock.unlock();
                DeliveryResult result{job.id, send(job.settings, job.from, job.to, job.text)};
                lock.lock();
                state->results.push_back(std::move(result));
                const uint64_t one = 1;
                // Cannot fail short of a counter overflow; the loop reads it.
                [[maybe_unused]] ssize_t n = ::write(state->event.get(), &one, sizeof one);
            }
            state->done = true;
            state->finished.notify_all();
        }).detach();
    } catch (const std::system_error& e) {
        error = std::string("cannot start the mail thread: ") + e.what();
        return false;
    }
    state_ = std::move(state);
    return true;
}

int MailSender::fd() const { return state_ ? state_->event.get() : -1; }

void MailSender::submit(DeliveryJob job) {
    std::lock_guard lock(state_->mutex);
    state_->jobs.push_back(std::move(job));
    state_->wake.notify_one();
}

std::vector<DeliveryResult> MailSender::take_results() {
    std::lock_guard lock(state_->mutex);
    uint64_t count = 0;
    [[maybe_unused]] ssize_t n = ::read(state_->event.get(), &count, sizeof count);
    return std::exchange(state_->results, {});
}

}  // namespace by::master
