// One remote worker's TCP connection: the handshake, the attachment, the
// keepalive and the arbitration between two connections for one worker.
// Internal to remote*.cpp: its lifetime and the gate before authentication
// (remote_connection.cpp), Handshake1 (remote_handshake.cpp), attaching and
// arbitrating (remote_attach.cpp), keepalives (remote_keepalive.cpp).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "common/config.hpp"
#include "common/crypto.hpp"
#include "common/raii.hpp"
#include "common/reactor.hpp"
#include "common/tls.hpp"
#include "master/connection_census.hpp"
#include "master/handshake.hpp"
#include "master/remote.hpp"

namespace by::master {

class Remote::Connection {
public:
    using Phase = ConnectionPhase;

    Connection(Remote& remote, uint64_t id, Fd fd, std::string peer, std::string address);
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;
    ~Connection();

    // Sets up the tunnel (TLS or plain, as `tls` says) and the server-side
    // bus behind it. Negative errno.
    int start(const tls::SharedCtx& tls);

    uint64_t id() const { return id_; }
    const std::string& sender() const { return sender_; }
    const std::string& worker() const { return name_; }
    const std::string& address() const { return address_; }
    Phase phase() const { return phase_; }

    // The master detached our worker: close without telling it again.
    void dropped();
    // After a reload: if our worker's keepalive_interval changed, tell the
    // worker (Agent1.SetKeepalive) and re-arm our keepalive timer with it.
    void keepalive_changed();
    // Our keepalive is due (Remote::on_keepalives): ping the worker.
    void keepalive_due();
    // The old link of the worker we wait for has gone.
    void old_link_gone();

private:
    // The connection whose handlers get `userdata`.
    static Connection& of(void* userdata) { return *static_cast<Connection*>(userdata); }
    // A name from the wire, safe to log.
    static std::string printable(const std::string& s);
    // "10" or "0.5": seconds, for a log line.
    static std::string seconds(uint64_t usec);

    // The gate and the end (remote_connection.cpp).
    static int on_message(sd_bus_message* m, void* userdata, sd_bus_error* error);
    static int on_auth_timeout(sd_event_source* s, uint64_t usec, void* userdata);

    // Handshake1 (remote_handshake.cpp).
    int serve_handshake();
    // Hello and Authenticate come one at a time, in this order: the error
    // for a call that expects the connection in `expected` and finds it
    // elsewhere (a negative errno), or 0.
    int out_of_turn(Phase expected, sd_bus_error* error) const;
    static int method_hello(sd_bus_message* m, void* userdata, sd_bus_error* error);
    static int method_authenticate(sd_bus_message* m, void* userdata, sd_bus_error* error);
    static int on_admitted(sd_event_source* s, uint64_t usec, void* userdata);
    static int on_delayed_reply(sd_event_source* s, uint64_t usec, void* userdata);
    // Checks the proof of the held Authenticate `m` and answers it.
    void check_proof(sd_bus_message* m);
    void auth_failed(sd_bus_message* call, AuthVerdict verdict, const std::string& line = {});
    // The client certificate that worker `cfg` requires, if any, is there.
    bool client_certificate_ok(const config::Worker& cfg, std::string& why) const;

    // After a good proof (remote_attach.cpp): attach, or first ask the
    // worker's attached `link` whether it still lives.
    void arbitrate(sd_bus_message* call, std::string_view link);
    static int on_old_ping(sd_bus_message* m, void* userdata, sd_bus_error* error);
    void resolve_duplicate(bool old_answered);
    void attach(sd_bus_message* call);

    // Keepalives (remote_keepalive.cpp).
    static int on_keepalive_reply(sd_bus_message* m, void* userdata, sd_bus_error* error);
    static int on_set_keepalive_reply(sd_bus_message* m, void* userdata, sd_bus_error* error);
    void arm_keepalive();

    int arm_timer(SourcePtr& timer, uint64_t usec, sd_event_time_handler_t handler);
    // Every change of phase_ goes through here: Remote counts connections
    // per phase and address (Remote::phase_changed).
    void set_phase(Phase phase);
    // Closes the connection. `why` is logged unless empty; an attached
    // worker is detached by the master with `why` as the reason.
    void close(const std::string& why);
    // Closed from here on: its timers and held call go, and the listener
    // buries it; true if it was attached.
    bool shut();

    Remote& remote_;
    uint64_t id_;
    std::string sender_;   // "tcp#N": what the master knows the connection by
    std::string peer_;     // ADDRESS:PORT
    std::string address_;  // ADDRESS alone, for the failure throttle
    Fd fd_;                // until the bus owns it
    Phase phase_ = Phase::fresh;
    bool logged_ = false;  // a line about this connection was logged already
    std::string name_;
    crypto::Bytes worker_nonce_;
    crypto::Bytes master_nonce_;
    crypto::Bytes proof_;
    std::map<std::string, std::string> info_;
    MessagePtr held_call_;  // Authenticate, answered later
    std::unique_ptr<tls::Tunnel> tunnel_;  // outlives bus_ (declared first, freed last)
    PeerBusPtr bus_;
    ReactorBus driver_;  // after bus_: stops driving it before it is freed
    std::vector<SlotPtr> slots_;
    SourcePtr auth_timer_;
    SourcePtr reply_timer_;
    SlotPtr old_ping_;
    SlotPtr keepalive_ping_;
    SlotPtr set_keepalive_call_;
    uint64_t told_interval_ = 0;  // the keepalive_interval the worker was last told
};


}  // namespace by::master
