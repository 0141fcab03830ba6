#include "common/reactor.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <fmt/format.h>

namespace by {

namespace {

// Ready descriptors taken per epoll_wait; more wait for the next dispatch.
constexpr int batch = 256;
// sd_bus_process calls per connection per dispatch, so that one busy
// connection cannot hold the others back.
constexpr int bus_batch = 64;

uint64_t now_usec() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1'000'000 + uint64_t(ts.tv_nsec) / 1000;
}

}  // namespace

Reactor::Watch& Reactor::Watch::operator=(Watch&& o) noexcept {
    if (this != &o) {
        reset();
        reactor_ = o.reactor_;
        id_ = o.id_;
        o.reactor_ = nullptr;
    }
    return *this;
}

void Reactor::Watch::reset() {
    if (reactor_) {
        reactor_->forget(id_);
        reactor_ = nullptr;
    }
}

void Reactor::Watch::again() const {
    if (reactor_) {
        reactor_->schedule(id_);
    }
}

std::unique_ptr<Reactor> Reactor::create(sd_event* event, uint64_t tick_usec, std::string& error) {
    std::unique_ptr<Reactor> r(new Reactor());
    r->event_ = event;
    r->tick_usec_ = tick_usec;
    r->epoll_.reset(epoll_create1(EPOLL_CLOEXEC));
    if (!r->epoll_) {
        error = fmt::format("cannot create an epoll set: {}", std::strerror(errno));
        return nullptr;
    }
    sd_event_source* s = nullptr;
    int e = sd_event_add_io(event, &s, r->epoll_.get(), EPOLLIN, on_ready, r.get());
    if (e < 0) {
        error = fmt::format("cannot watch the epoll set: {}", std::strerror(-e));
        return nullptr;
    }
    r->ready_source_.reset(s);
    e = sd_event_add_defer(event, &s, on_again, r.get());
    if (e >= 0) {
        r->again_source_.reset(s);
        e = sd_event_source_set_enabled(s, SD_EVENT_OFF);
    }
    if (e >= 0) {
        e = sd_event_add_time_relative(event, &s, CLOCK_MONOTONIC, tick_usec, tick_usec / 10, on_tick, r.get());
    }
    if (e >= 0) {
        r->tick_source_.reset(s);
        e = sd_event_source_set_enabled(s, SD_EVENT_OFF);
    }
    if (e < 0) {
        error = fmt::format("cannot add event sources: {}", std::strerror(-e));
        return nullptr;
    }
    return r;
}

Reactor::~Reactor() {
    // Watches outliving their reactor would be a bug; make it a harmless one.
    entries_.clear();
}

int Reactor::watch(int fd, uint32_t events, bool ticks, Handler handler, Watch& out) {
    out.reset();
    const uint64_t id = next_id_++;
    epoll_event ev{};
    ev.events = events | EPOLLET;
    ev.data.u64 = id;
    if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) < 0) {
        return -errno;
    }
    entries_.emplace(id, std::make_unique<Entry>(Entry{fd, ticks, std::move(handler)}));
    if (ticks && ticking_++ == 0) {
        arm_tick();
    }
    out.reactor_ = this;
    out.id_ = id;
    return 0;
}

void Reactor::forget(uint64_t id) {
    auto it = entries_.find(id);
    if (it == entries_.end()) {
        return;
    }
    // The descriptor may be closed already (its owner closes it first);
    // epoll dropped it then, and this fails harmlessly.
    epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, it->second->fd, nullptr);
    if (it->second->ticks && --ticking_ == 0) {
        sd_event_source_set_enabled(tick_source_.get(), SD_EVENT_OFF);
    }
    if (dispatching_) {
        dead_.push_back(std::move(it->second));  // its handler may be running
    }
    entries_.erase(it);
}

void Reactor::schedule(uint64_t id) {
    again_.push_back(id);
    sd_event_source_set_enabled(again_source_.get(), SD_EVENT_ONESHOT);
}

void Reactor::call(uint64_t id, uint32_t events) {
    auto it = entries_.find(id);
    if (it == entries_.end()) {
        return;  // forgotten by an earlier handler of this dispatch
    }
    it->second->handler(events);
}

void Reactor::dispatch(const ::epoll_event* events, int n) {
    ++dispatching_;
    for (int i = 0; i < n; ++i) {
        call(events[i].data.u64, events[i].events);
    }
    if (--dispatching_ == 0) {
        dead_.clear();
    }
}

int Reactor::on_ready(sd_event_source*, int, uint32_t, void* userdata) {
    auto* self = static_cast<Reactor*>(userdata);
    epoll_event events[batch];
    self->dispatch(events, epoll_wait(self->epoll_.get(), events, batch, 0));
    return 0;
}

void Reactor::poll(uint64_t timeout_usec) {
    epoll_event events[batch];
    const int ms = static_cast<int>(std::min<uint64_t>((timeout_usec + 999) / 1000, 60'000));
    dispatch(events, epoll_wait(epoll_.get(), events, batch, ms));
    if (!again_.empty()) {
        on_again(nullptr, this);
    }
}

int Reactor::on_again(sd_event_source*, void* userdata) {
    auto* self = static_cast<Reactor*>(userdata);
    std::vector<uint64_t> ids;
    ids.swap(self->again_);  // handlers may ask again: the next dispatch
    ++self->dispatching_;
    for (uint64_t id : ids) {
        self->call(id, 0);
    }
    if (--self->dispatching_ == 0) {
        self->dead_.clear();
    }
    return 0;
}

int Reactor::on_tick(sd_event_source*, uint64_t, void* userdata) {
    auto* self = static_cast<Reactor*>(userdata);
    std::vector<uint64_t> ids;
    ids.reserve(self->ticking_);
    for (const auto& [id, entry] : self->entries_) {
        if (entry->ticks) ids.push_back(id);
    }
    ++self->dispatching_;
    for (uint64_t id : ids) {
        self->call(id, 0);
    }
    if (--self->dispatching_ == 0) {
        self->dead_.clear();
    }
    if (self->ticking_ > 0) {
        self->arm_tick();
    }
    return 0;
}

void Reactor::arm_tick() {
    sd_event_source_set_time_relative(tick_source_.get(), tick_usec_);
    sd_event_source_set_enabled(tick_source_.get(), SD_EVENT_ONESHOT);
}

int ReactorBus::attach(Reactor& reactor, sd_bus* bus, std::function<void(int)> failed) {
    bus_ = bus;
    failed_ = std::move(failed);
    const int fd = sd_bus_get_fd(bus);
    if (fd < 0) {
        return fd;
    }
    int r = reactor.watch(fd, EPOLLIN | EPOLLOUT, true, [this](uint32_t events) { process(events); }, watch_);
    if (r >= 0) {
        watch_.again();  // whatever sd-bus has to say or send already
    }
    return r;
}

void ReactorBus::process(uint32_t events) {
    if (events == 0) {
        // A tick, or work left from the last batch: only if sd-bus has
        // some due (queued messages make its timeout 0).
        uint64_t until = 0;
        if (sd_bus_get_timeout(bus_, &until) <= 0 || until > now_usec()) {
            return;
        }
    }
    for (int i = 0; i < bus_batch; ++i) {
        const int r = sd_bus_process(bus_, nullptr);
        if (r == 0) {
            return;
        }
        if (r < 0) {
            // Closed: sd-bus delivered Disconnected before saying so.
            const bool open = sd_bus_is_open(bus_) > 0;
            auto failed = failed_;
            watch_.reset();  // may free this object's handler: touch nothing after
            if (open && failed) {
                failed(r);
            }
            return;
        }
    }
    watch_.again();
}

}  // namespace by
