// The worker's link to a remote master over TCP: TLS 1.3 (or plain TCP with
// tls = no) carrying D-Bus peer to peer, the master's certificate checked
// against master_fingerprint or tls_ca_file, the Handshake1 challenge and
// response in both directions bound to the TLS session, and reconnecting
// with exponential backoff and jitter after any loss but a refused
// password. With several masters (master = A, B, ...) it attaches to the
// first that answers and moves round the list when it loses one; which
// one and when is MasterChoice's decision (master_choice.hpp). See
// buildyard-protocol(7).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "common/crypto.hpp"
#include "common/raii.hpp"
#include "common/tls.hpp"
#include "common/worker_config.hpp"
#include "worker/link.hpp"
#include "worker/master_choice.hpp"

namespace by::worker {

class RemoteLink : public Link {
public:
    // `self.masters` are HOST:PORT.
    RemoteLink(sd_event* event, const config::WorkerSelf& self, Events events);
    RemoteLink(const RemoteLink&) = delete;
    RemoteLink& operator=(const RemoteLink&) = delete;
    ~RemoteLink() override;

    int start(const std::function<int(sd_bus*)>& export_objects) override;
    State state() const override { return state_; }
    bool from_master(sd_bus_message* m) const override;
    std::string master_label() const override { return "master at " + master_; }

    int step_started(uint64_t build, unsigned step) override;
    int output(uint64_t build, std::string_view data) override;
    int build_done(uint64_t build, const std::string& result, int exit_status, const BuildUsage& usage) override;
    int detach(const std::string& reason) override;
    void close() override;
    uint64_t queued_writes() const override;
    int set_keepalive(uint64_t interval) override;
    int request_shutdown() override;

private:
    // "MESSAGE (NAME)" of a bus error, for the log.
    static std::string error_text(const sd_bus_error* e);
    static int on_filter(sd_bus_message* m, void* userdata, sd_bus_error* ret_error);
    static int on_hello_reply(sd_bus_message* m, void* userdata, sd_bus_error* ret_error);
    static int on_authenticate_reply(sd_bus_message* m, void* userdata, sd_bus_error* ret_error);
    static int on_retry(sd_event_source* s, uint64_t usec, void* userdata);
    static int on_silence_check(sd_event_source* s, uint64_t usec, void* userdata);
    static int on_handshake_check(sd_event_source* s, uint64_t usec, void* userdata);
    static int on_reap(sd_event_source* s, void* userdata);

    void connect();
    // Opens the TCP connection and the tunnel; sd-bus gets `bus_fd`. False
    // with `why` set on failure.
    bool open_tunnel(Fd& bus_fd, std::string& why);
    // TLS is up: check the master's certificate, then say Hello.
    void established();
    // The connection is gone or useless: drop it and try again later.
    void lost(const std::string& why);
    // The master refused this worker: the next master, or exit when all did.
    void refused(const std::string& why);
    // Waits for the attempt at the master MasterChoice named, logging `why`
    // (`refused`: as an error).
    void retry(const std::string& why, const MasterChoice::Next& next, bool refused);
    // The master at index `i` becomes the one tried next.
    void aim(std::size_t i);
    void refused_login(const sd_bus_error* e);
    void set_state(State s);
    void arm_silence_check();
    void arm_handshake_check();
    void bury_bus();
    uint64_t now() const;

    sd_event* event_;
    struct Address {
        std::string text;  // HOST:PORT as configured
        std::string host;
        uint16_t port = 0;
    };

    std::string name_;
    std::vector<Address> masters_;
    std::string master_;        // the current master's HOST:PORT (masters_[choice_.current()])
    std::string host_;
    uint16_t port_ = 0;
    std::string password_;
    std::vector<std::string> pins_;  // master_fingerprint: any of them, if pinned
    tls::SharedCtx tls_;        // null: plain TCP
    std::string tls_error_;     // why tls_ could not be made
    Events events_;
    std::function<int(sd_bus*)> export_objects_;
    MasterChoice choice_;
    State state_ = State::idle;
    bool closing_ = false;
    bool answered_ = false;            // the current attempt's TCP (and TLS) is up
    crypto::Bytes worker_nonce_;
    crypto::Bytes master_nonce_;
    crypto::Bytes binding_;            // tls-exporter of the current connection
    uint64_t keepalive_interval_ = 0;  // seconds, from the master; 0: none
    uint64_t last_heard_ = 0;          // CLOCK_MONOTONIC usec
    uint64_t connect_started_ = 0;     // CLOCK_MONOTONIC usec of the current attempt
    std::unique_ptr<Reactor> reactor_;  // the tunnel's (declared first: outlives it)
    std::unique_ptr<tls::Tunnel> tunnel_;
    std::unique_ptr<tls::Tunnel> dead_tunnel_;
    PeerBusPtr bus_;
    PeerBusPtr dead_bus_;              // closed outside its own callbacks
    SlotPtr filter_slot_;
    SlotPtr call_slot_;
    SourcePtr retry_timer_;
    SourcePtr silence_timer_;
    SourcePtr handshake_timer_;        // while attaching: is the connection still there?
    SourcePtr reaper_;
};

}  // namespace by::worker
