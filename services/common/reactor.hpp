// Many connections on one sd-event source. sd-event dispatches one source
// per loop iteration and, before each, runs the prepare callback of every
// sd-bus connection attached to it, and epoll hands back every
// level-triggered descriptor still ready: with N remote workers each event
// cost O(N), and an attach storm or a keepalive round O(N^2) (bench/remote
// measured it). A Reactor keeps the connections' descriptors in an epoll
// set of its own, edge-triggered, and handles every ready one in a single
// dispatch of the one source it adds to sd-event; ReactorBus drives an
// sd-bus connection from it instead of sd_bus_attach_event.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "common/raii.hpp"

struct epoll_event;

namespace by {

class Reactor {
public:
    // Called with the epoll events of the descriptor (EPOLLIN, EPOLLOUT,
    // EPOLLERR, EPOLLHUP), or with 0 when called for again() or a tick.
    // Edge-triggered: a handler reads and writes until EAGAIN, or calls
    // again() for the work it left.
    using Handler = std::function<void(uint32_t events)>;

    // One watched descriptor. Destroying it (or reset()) stops the watch,
    // also from inside any handler; the Reactor must outlive it.
    class Watch {
    public:
        Watch() = default;
        ~Watch() { reset(); }
        Watch(Watch&& o) noexcept : reactor_(o.reactor_), id_(o.id_) { o.reactor_ = nullptr; }
        Watch& operator=(Watch&& o) noexcept;
        Watch(const Watch&) = delete;
        Watch& operator=(const Watch&) = delete;
        void reset();
        // The handler runs once more in the next dispatch, with events 0.
        void again() const;
        explicit operator bool() const { return reactor_ != nullptr; }

    private:
        friend class Reactor;
        Reactor* reactor_ = nullptr;
        uint64_t id_ = 0;
    };

    // `tick_usec`: how often handlers that asked for ticks run with
    // events 0 (ReactorBus: sd-bus's call timeouts).
    static std::unique_ptr<Reactor> create(sd_event* event, uint64_t tick_usec, std::string& error);
    ~Reactor();
    Reactor(const Reactor&) = delete;
    Reactor& operator=(const Reactor&) = delete;

    // Watches `fd` (not owned) for `events` (EPOLLIN and/or EPOLLOUT),
    // edge-triggered; `ticks`: also call the handler every tick. Returns a
    // negative errno on failure.
    int watch(int fd, uint32_t events, bool ticks, Handler handler, Watch& out);

    // Waits up to `timeout_usec` for a watched descriptor and handles what
    // is ready, outside sd-event: for code that must wait inside a handler
    // of the loop (the worker's Detach on its way out).
    void poll(uint64_t timeout_usec);

    size_t watched() const { return entries_.size(); }
    sd_event* event() const { return event_; }

private:
    struct Entry {
        int fd;
        bool ticks;
        Handler handler;
    };
    Reactor() = default;
    static int on_ready(sd_event_source* s, int fd, uint32_t revents, void* userdata);
    static int on_again(sd_event_source* s, void* userdata);
    static int on_tick(sd_event_source* s, uint64_t usec, void* userdata);
    void forget(uint64_t id);
    void schedule(uint64_t id);
    void call(uint64_t id, uint32_t events);
    void dispatch(const ::epoll_event* events, int n);
    void arm_tick();

    sd_event* event_ = nullptr;
    Fd epoll_;
    SourcePtr ready_source_;
    SourcePtr again_source_;
    SourcePtr tick_source_;
    uint64_t tick_usec_ = 0;
    uint64_t next_id_ = 1;
    size_t ticking_ = 0;
    std::unordered_map<uint64_t, std::unique_ptr<Entry>> entries_;
    std::vector<uint64_t> again_;
    // Entries forgotten while handlers run, freed after the dispatch.
    std::vector<std::unique_ptr<Entry>> dead_;
    unsigned dispatching_ = 0;
};

// Drives one sd-bus connection from a Reactor: on readiness, sd_bus_process
// until it has nothing left (at most a batch at a time, then again()), and
// on each tick when one of its calls may have timed out. Writes that other
// code starts (sd_bus_send) either finish at once or leave the socket full,
// and the edge when it drains brings the rest. sd-bus reports a lost peer
// as its usual org.freedesktop.DBus.Local.Disconnected signal; `failed`
// hears any other error of sd_bus_process, after which the connection is
// no longer driven.
class ReactorBus {
public:
    ReactorBus() = default;
    ReactorBus(const ReactorBus&) = delete;
    ReactorBus& operator=(const ReactorBus&) = delete;
    ~ReactorBus() = default;

    int attach(Reactor& reactor, sd_bus* bus, std::function<void(int error)> failed);
    void detach() { watch_.reset(); }

private:
    void process(uint32_t events);

    sd_bus* bus_ = nullptr;
    Reactor::Watch watch_;
    std::function<void(int)> failed_;
};

}  // namespace by
