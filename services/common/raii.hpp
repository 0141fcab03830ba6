// Owners for every C handle the daemons hold. Daemon code never calls an
// *_unref or close() by hand; it holds one of these.
#pragma once

#include <memory>
#include <utility>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>
#include <unistd.h>

namespace by {

template <auto Free>
struct FreeWith {
    template <class T>
    void operator()(T* p) const noexcept { Free(p); }
};

using BusPtr = std::unique_ptr<sd_bus, FreeWith<sd_bus_flush_close_unref>>;
// A peer-to-peer connection to a remote host: closed without flushing, since
// a flush would wait for a peer that may have stopped reading.
using PeerBusPtr = std::unique_ptr<sd_bus, FreeWith<sd_bus_close_unref>>;
using EventPtr = std::unique_ptr<sd_event, FreeWith<sd_event_unref>>;
using SlotPtr = std::unique_ptr<sd_bus_slot, FreeWith<sd_bus_slot_unref>>;
using MessagePtr = std::unique_ptr<sd_bus_message, FreeWith<sd_bus_message_unref>>;
using TrackPtr = std::unique_ptr<sd_bus_track, FreeWith<sd_bus_track_unref>>;
using CredsPtr = std::unique_ptr<sd_bus_creds, FreeWith<sd_bus_creds_unref>>;
// Disabling first guarantees a callback never fires after its owner is gone,
// even if sd-event still holds a reference of its own.
using SourcePtr = std::unique_ptr<sd_event_source, FreeWith<sd_event_source_disable_unref>>;

// sd_bus_error with automatic sd_bus_error_free.
class BusError {
public:
    BusError() = default;
    BusError(const BusError&) = delete;
    BusError& operator=(const BusError&) = delete;
    ~BusError() { sd_bus_error_free(&error_); }
    sd_bus_error* get() { return &error_; }
    bool is_set() const { return sd_bus_error_is_set(&error_); }
    const char* name() const { return error_.name ? error_.name : ""; }
    const char* message() const { return error_.message ? error_.message : ""; }

private:
    sd_bus_error error_ = SD_BUS_ERROR_NULL;
};

// A file descriptor that is closed when it goes out of scope.
class Fd {
public:
    Fd() = default;
    explicit Fd(int fd) : fd_(fd) {}
    Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    Fd& operator=(Fd&& o) noexcept {
        if (this != &o) {
            reset(std::exchange(o.fd_, -1));
        }
        return *this;
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd() { reset(); }

    int get() const { return fd_; }
    explicit operator bool() const { return fd_ >= 0; }
    int release() { return std::exchange(fd_, -1); }
    void reset(int fd = -1) {
        if (fd_ >= 0) {
            ::close(fd_);
        }
        fd_ = fd;
    }

private:
    int fd_ = -1;
};

}  // namespace by
