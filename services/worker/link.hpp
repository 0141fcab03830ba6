// The worker's side of the link to the master. Link is what the agent needs
// of either transport; MasterLink is the system bus (local workers):
// attaching (again, whenever org.buildyard.Master1 gets a new owner) and the
// WorkerLink1 calls that report builds. The Agent1 object the master calls
// is exported on this connection by agent_bus.cpp. RemoteLink
// (remote_link.hpp) is TCP.
#pragma once

#include <cerrno>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "common/build_limits.hpp"
#include "common/bus.hpp"
#include "common/raii.hpp"

namespace by::worker {

class Link {
public:
    enum class State {
        idle,       // start() not called yet
        attaching,  // an Attach call is on its way
        attached,
        waiting,    // the master is not on the bus (or Attach failed); waiting to try again
    };

    struct Events {
        std::function<bus::StringMap()> info;  // fresh info for each Attach
        // state() changed (attaching, attached, waiting).
        std::function<void()> state_changed;
        // The master we were attached to left the bus or was replaced. Its
        // successor does not know our builds.
        std::function<void()> master_lost;
        // The master refused us, or the bus failed us: exit with this status.
        std::function<void(int status)> fatal;
    };

    virtual ~Link() = default;

    // Connects and starts attaching. `export_objects` puts the objects the
    // master calls on each new connection, before anything is sent on it.
    // Negative errno, logged.
    virtual int start(const std::function<int(sd_bus*)>& export_objects) = 0;
    virtual State state() const = 0;
    bool attached() const { return state() == State::attached; }
    // Whether m comes from the master we are attached to.
    virtual bool from_master(sd_bus_message* m) const = 0;
    // The master as STATUS= names it.
    virtual std::string master_label() const = 0;

    virtual int step_started(uint64_t build, unsigned step) = 0;
    virtual int output(uint64_t build, std::string_view data) = 0;
    virtual int build_done(uint64_t build, const std::string& result, int exit_status, const BuildUsage& usage) = 0;
    virtual int detach(const std::string& reason) = 0;
    virtual void close() = 0;
    virtual uint64_t queued_writes() const = 0;
    // Agent1.SetKeepalive: the master pings every `interval` seconds from
    // now on (0: never). Only a remote link watches for silence; over the
    // system bus there are no keepalives. Negative errno when not supported.
    virtual int set_keepalive(uint64_t /*interval*/) { return -EOPNOTSUPP; }
    // Asks the master for a graceful shutdown (WorkerLink1.ShutdownGracefully).
    // Negative errno; -ENOTCONN when not attached.
    virtual int request_shutdown() = 0;
};

class MasterLink : public Link {
public:
    MasterLink(sd_event* event, std::string name, Events events);
    MasterLink(const MasterLink&) = delete;
    MasterLink& operator=(const MasterLink&) = delete;

    // open(), export_objects, watch().
    int start(const std::function<int(sd_bus*)>& export_objects) override;
    // Opens the system bus and attaches it to the loop. Negative errno.
    int open();
    // Watches the master's name, then sends the first Attach. Call after
    // exporting the objects the master may call.
    int watch();

    sd_bus* bus() const { return bus_.get(); }
    State state() const override { return state_; }
    bool from_master(sd_bus_message* m) const override;
    std::string master_label() const override { return bus::master_name; }

    // WorkerLink1. StepStarted and Output expect no reply; BuildDone logs a
    // failed reply. All go to the master's unique name, so nothing meant for
    // a master that has gone reaches its successor. -ENOTCONN if not attached.
    int step_started(uint64_t build, unsigned step) override;
    int output(uint64_t build, std::string_view data) override;
    int build_done(uint64_t build, const std::string& result, int exit_status, const BuildUsage& usage) override;
    // Synchronous, waits at most two seconds. No-op unless attached.
    int detach(const std::string& reason) override;
    int request_shutdown() override;
    // The worker is on its way out: never attach again (an attachment that
    // exists stays until detach() or the end of the connection).
    void close() override { closing_ = true; retry_timer_.reset(); }

    // Messages waiting to be written; callers throttle output on it.
    uint64_t queued_writes() const override;

private:
    static int on_match_installed(sd_bus_message* m, void* userdata, sd_bus_error* ret_error);
    static int on_name_owner_changed(sd_bus_message* m, void* userdata, sd_bus_error* ret_error);
    static int on_attach_reply(sd_bus_message* m, void* userdata, sd_bus_error* ret_error);
    static int on_retry(sd_event_source* s, uint64_t usec, void* userdata);
    static int on_filter(sd_bus_message* m, void* userdata, sd_bus_error* ret_error);

    void attach();
    void wait_for_master(bool retry_later);
    void set_state(State s);

    sd_event* event_;
    std::string name_;
    Events events_;
    State state_ = State::idle;
    std::string master_;  // the master's unique name while attached
    // The master's name changed hands while an Attach was on its way.
    bool owner_changed_while_attaching_ = false;
    bool closing_ = false;
    BusPtr bus_;
    SlotPtr filter_slot_;
    SlotPtr match_slot_;
    SlotPtr attach_slot_;
    SourcePtr retry_timer_;
};

}  // namespace by::worker
