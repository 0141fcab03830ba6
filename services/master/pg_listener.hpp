// A master's ear on the shared database: a connection of its own that
// LISTENs on a few channels, driven by the master's sd-event loop without
// ever blocking it (the connection is made with PQconnectPoll, the
// notifications read when the socket is readable). When the connection
// fails it is made again every second; each time it is (again) listening,
// `resync` is called, since what was announced meanwhile was not heard.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <libpq-fe.h>
#include <systemd/sd-event.h>

#include "common/raii.hpp"

namespace by::master {

class PgListener {
public:
    struct Events {
        std::function<void(const std::string& channel, const std::string& payload)> heard;
        std::function<void()> resync;
    };
    PgListener(sd_event* event, std::string uri, std::string password, std::vector<std::string> channels,
               Events events);
    ~PgListener();
    PgListener(const PgListener&) = delete;
    PgListener& operator=(const PgListener&) = delete;

    // Starts connecting; it listens once the server answers.
    void start() { connect(); }
    bool listening() const { return state_ == State::listening; }

private:
    enum class State { idle, connecting, asking, listening };
    void connect();
    void poll_connect();
    void read();
    // Drops the connection, says why once, and tries again in a second.
    void fail(const std::string& why);
    bool watch(uint32_t events);
    static int on_io(sd_event_source* s, int fd, uint32_t revents, void* userdata);
    static int on_retry(sd_event_source* s, uint64_t usec, void* userdata);

    sd_event* event_;
    std::string uri_;
    std::string password_;
    std::vector<std::string> channels_;
    size_t answers_ = 0;  // LISTEN commands answered since connecting
    Events events_;
    PGconn* conn_ = nullptr;
    State state_ = State::idle;
    int fd_ = -1;
    SourcePtr io_;
    SourcePtr retry_;
    bool failing_ = false;  // said why already
};

}  // namespace by::master
