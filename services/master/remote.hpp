// Remote workers: the TCP listener and one D-Bus peer-to-peer connection
// (sd-bus in server mode) per worker. Until a connection has authenticated
// through org.buildyard.Handshake1 it may call nothing else; afterwards it
// carries WorkerLink1 and Agent1 as the system bus does for local workers.
// The exchange is documented in buildyard-protocol(7).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <systemd/sd-event.h>
#include <systemd/sd-id128.h>

#include "common/config.hpp"
#include "common/raii.hpp"
#include "common/reactor.hpp"
#include "common/tls.hpp"
#include "master/connection_census.hpp"
#include "master/connection_limits.hpp"
#include "master/deadline_queue.hpp"
#include "master/handshake.hpp"
#include "master/metrics.hpp"
#include "master/remote_host.hpp"

namespace by::master {

class Remote {
public:
    // [master] auth_timeout and duplicate_ping_timeout.
    struct Timeouts {
        uint64_t auth_usec = 10'000'000;            // to authenticate after connecting
        uint64_t duplicate_ping_usec = 10'000'000;  // for the old link to answer
    };
    // A reload's: for the logins that begin after it.
    void set_timeouts(Timeouts timeouts) { timeouts_ = timeouts; }

    // `host` is the master; `state_directory` holds the generated TLS
    // certificate.
    Remote(sd_event* event, RemoteHost& host, Metrics& metrics, std::string state_directory, Timeouts timeouts);
    Remote(const Remote&) = delete;
    Remote& operator=(const Remote&) = delete;
    ~Remote();

    // Listens on the socket systemd passed (socket activation) or else on
    // `listen` (HOST:PORT; empty: no listener). False with `error` set.
    bool start(const std::string& listen, std::string& error);
    // A reload's `listen`: moves the listener there (empty: closes it) and
    // logs what it did. Connections already open stay. If the new address
    // cannot be bound, the old listener stays and the error is logged. With
    // socket activation the socket unit decides, and this does nothing.
    void relisten(const std::string& listen);
    // The TLS identity for new connections ([master] tls, tls_certificate,
    // tls_key; else a generated certificate in the state directory). At
    // start a failure is fatal; on reload it is logged and the old identity
    // stays. Connections already open keep the one they started with.
    bool load_identity(const config::Master& cfg, std::string& error);
    void reload_identity(const config::Master& cfg);
    // A reload's keepalive_interval values: each attached worker whose value
    // changed is told the new one, and its timer is re-armed.
    void keepalives_changed();

    size_t connections() const { return connections_.size(); }

    class Connection;

private:
    static int on_accept(sd_event_source* s, int fd, uint32_t revents, void* userdata);
    static int on_accept_resume(sd_event_source* s, uint64_t usec, void* userdata);
    static int on_reap(sd_event_source* s, void* userdata);
    static int on_trim(sd_event_source* s, uint64_t usec, void* userdata);

    void accept_one(int fd);
    // Logs a refused connection, at most one line per 10 s.
    void refused(const std::string& line);
    // Watches listen_fd_ for connections. Negative errno.
    int watch_listener();
    // Moves a connection out of the live set; it is freed later in this
    // loop iteration, never inside one of its own callbacks.
    void bury(uint64_t id);
    // A connection authenticated for `name` is gone: wake whoever waits on it.
    void link_gone(const std::string& name);
    // A connection went from phase `from` to `to` (closed also stands for
    // not yet made and destroyed): tells census_, and trims the heap after
    // a storm of handshakes (on_trim).
    void phase_changed(const Connection& c, ConnectionPhase from, ConnectionPhase to);
    // The attached connections' keepalives, all on one timer
    // (remote_keepalive.cpp): connection `id` pings its worker in `usec`,
    // or not at all.
    void keepalive_in(uint64_t id, uint64_t usec);
    void keepalive_off(uint64_t id) { keepalives_.cancel(id); }
    void arm_keepalives();
    static int on_keepalives(sd_event_source* s, uint64_t usec, void* userdata);
    // Keeps tls_fingerprint_ and tells the master (Master1.TlsFingerprint).
    void set_fingerprint(const std::string& fingerprint);

    sd_event* event_;
    RemoteHost& host_;
    Metrics& metrics_;
    std::string state_directory_;
    Timeouts timeouts_;
    sd_id128_t server_id_{};
    tls::SharedCtx tls_;          // null: plain TCP (tls = no)
    std::string tls_source_;      // where the identity came from, for the log
    std::string tls_fingerprint_; // its certificate's, as the master was told; empty: none
    std::string dummy_key_;
    AuthThrottle throttle_;
    Fd listen_fd_;
    std::string listen_;          // what listen_fd_ is bound to, as configured
    bool activated_ = false;      // listen_fd_ came from systemd
    SourcePtr listen_source_;
    SourcePtr accept_resume_;
    SourcePtr reaper_;
    // The connections' tunnels and buses (declared before them: outlives them).
    std::unique_ptr<Reactor> reactor_;
    uint64_t next_id_ = 1;
    size_t connection_limit_ = 0;   // ConnectionLimits::for_descriptors(RLIMIT_NOFILE)
    uint64_t refused_logged_at_ = 0;
    uint64_t refused_since_log_ = 0;
    std::map<uint64_t, std::unique_ptr<Connection>> connections_;
    ConnectionCensus census_;       // who is in which phase (the per-address cap, link_gone)
    SourcePtr trim_timer_;
    std::vector<std::unique_ptr<Connection>> graveyard_;
    DeadlineQueue keepalives_;      // by connection id
    SourcePtr keepalive_timer_;     // at keepalive_armed_, the earliest of keepalives_
    std::optional<uint64_t> keepalive_armed_;
};

}  // namespace by::master
