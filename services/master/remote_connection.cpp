// One remote worker's connection: its TLS (or plain) tunnel and the
// server-side bus behind it, the gate in front of everything but
// org.buildyard.Handshake1, its timers and its end.
#include "master/remote_connection.hpp"

#include <cerrno>
#include <cstring>

#include "common/bus.hpp"
#include "common/handshake_messages.hpp"
#include "common/log.hpp"

namespace by::master {

namespace {

constexpr const char* peer_iface = "org.freedesktop.DBus.Peer";
// Accuracy of the connection's timers (keepalives have one of their own).
constexpr uint64_t timer_accuracy = 10'000;

}  // namespace

std::string Remote::Connection::printable(const std::string& s) {
    std::string out;
    for (char c : s.substr(0, 64)) {
        out += (c >= 0x20 && c < 0x7f) ? c : '?';
    }
    return out;
}

std::string Remote::Connection::seconds(uint64_t usec) {
    return usec % 1'000'000 == 0 ? std::to_string(usec / 1'000'000) : fmt::format("{:.1f}", usec / 1e6);
}

Remote::Connection::Connection(Remote& remote, uint64_t id, Fd fd, std::string peer, std::string address)
    : remote_(remote),
      id_(id),
      sender_("tcp#" + std::to_string(id)),
      peer_(std::move(peer)),
      address_(std::move(address)),
      fd_(std::move(fd)) {
    remote_.phase_changed(*this, Phase::closed, phase_);
}

Remote::Connection::~Connection() {
    // The reply to the worker's Detach was written just before the master
    // let the connection go; it must still reach the worker.
    if (tunnel_) {
        tunnel_->flush();
    }
    remote_.phase_changed(*this, phase_, Phase::closed);
}

void Remote::Connection::set_phase(Phase phase) {
    if (phase != phase_) {
        remote_.phase_changed(*this, phase_, phase);
        phase_ = phase;
    }
}

int Remote::Connection::start(const tls::SharedCtx& tls) {
    Fd bus_fd;
    std::string error;
    tunnel_ = tls::Tunnel::create(*remote_.reactor_, std::move(fd_), tls, true, {},
                                  {.established = nullptr, .failed = [this](const std::string& why) { close(why); }},
                                  bus_fd, error);
    if (!tunnel_) {
        log::warning("connection {} from {}: {}", sender_, peer_, error);
        return -EIO;
    }
    // Before authentication the peer gets this much room and no more,
    // whatever the D-Bus messages it sends claim to be.
    tunnel_->limit_inbound(tls::Tunnel::default_preauth_limit);
    sd_bus* b = nullptr;
    int r = sd_bus_new(&b);
    if (r < 0) return r;
    bus_.reset(b);
    if ((r = sd_bus_set_fd(b, bus_fd.get(), bus_fd.get())) < 0) return r;
    bus_fd.release();  // the bus closes it now
    if ((r = sd_bus_negotiate_fds(b, 0)) < 0) return r;
    if ((r = sd_bus_set_server(b, 1, remote_.server_id_)) < 0) return r;
    // TCP carries no credentials: ANONYMOUS, and Handshake1 does the rest.
    if ((r = sd_bus_set_anonymous(b, 1)) < 0) return r;
    if ((r = sd_bus_set_description(b, sender_.c_str())) < 0) return r;
    if ((r = driver_.attach(*remote_.reactor_, b, [this](int error) {
             // Garbage or an oversized message: sd-bus gives up on it.
             close(fmt::format("the peer broke the D-Bus protocol ({})", std::strerror(-error)));
         })) < 0)
        return r;
    sd_bus_slot* s = nullptr;
    if ((r = sd_bus_add_filter(b, &s, on_message, this)) < 0) return r;
    slots_.emplace_back(s);
    if ((r = serve_handshake()) < 0) return r;
    if ((r = remote_.host_.serve_link_object(b, slots_)) < 0) return r;
    if ((r = sd_bus_start(b)) < 0) return r;
    return arm_timer(auth_timer_, remote_.timeouts_.auth_usec, on_auth_timeout);
}

int Remote::Connection::arm_timer(SourcePtr& timer, uint64_t usec, sd_event_time_handler_t handler) {
    sd_event_source* s = nullptr;
    int r = sd_event_add_time_relative(remote_.event_, &s, CLOCK_MONOTONIC, usec, timer_accuracy, handler, this);
    if (r >= 0) timer.reset(s);
    return r;
}

// Sees every message first: the gate before authentication, and the end
// of the connection.
int Remote::Connection::on_message(sd_bus_message* m, void* userdata, sd_bus_error*) {
    Connection& c = of(userdata);
    if (sd_bus_message_is_signal(m, "org.freedesktop.DBus.Local", "Disconnected") > 0) {
        if (c.phase_ == Phase::attached) {
            c.close("its TCP connection closed");
        } else if (c.name_.empty()) {
            c.close("the peer closed it before authenticating");
        } else {
            c.close("the peer closed it during the handshake, as worker '" + printable(c.name_) + "'");
        }
        return 1;
    }
    uint8_t type = 0;
    if (sd_bus_message_get_type(m, &type) < 0 || type != SD_BUS_MESSAGE_METHOD_CALL) {
        return 0;
    }
    const char* iface = sd_bus_message_get_interface(m);
    const char* member = sd_bus_message_get_member(m);
    const bool handshake = iface && (std::strcmp(iface, handshake::interface) == 0 || std::strcmp(iface, peer_iface) == 0);
    const char* refusal = nullptr;
    if (c.phase_ == Phase::attached) {
        if (iface && member && std::strcmp(iface, bus::link_iface) == 0 && std::strcmp(member, "Attach") == 0) {
            refusal = "This connection is attached already; remote workers attach through org.buildyard.Handshake1.";
        }
    } else if (!handshake) {
        refusal = "Authenticate first (org.buildyard.Handshake1).";
    }
    if (!refusal) {
        return 0;
    }
    c.remote_.metrics_.remote_refused(RemoteRefusal::not_authenticated);
    BusError e;
    sd_bus_error_set(e.get(), bus::error::AccessDenied, refusal);
    sd_bus_reply_method_error(m, e.get());
    return 1;
}

int Remote::Connection::on_auth_timeout(sd_event_source*, uint64_t, void* userdata) {
    Connection& c = of(userdata);
    c.remote_.metrics_.remote_refused(RemoteRefusal::auth_timeout);
    c.close(fmt::format("not authenticated within {} s", seconds(c.remote_.timeouts_.auth_usec)));
    return 0;
}

bool Remote::Connection::shut() {
    const bool was_attached = phase_ == Phase::attached;
    set_phase(Phase::closed);
    auth_timer_.reset();
    reply_timer_.reset();
    remote_.keepalive_off(id_);
    held_call_.reset();
    remote_.bury(id_);
    return was_attached;
}

void Remote::Connection::close(const std::string& why) {
    if (phase_ == Phase::closed) {
        return;
    }
    if (shut()) {
        remote_.host_.link_lost(sender_, why);  // logs the detach
        remote_.link_gone(name_);
    } else if (!logged_) {
        logged_ = true;
        log::write(log::Level::notice, fmt::format("connection {} from {} closed: {}", sender_, peer_, why));
    }
}

void Remote::Connection::dropped() {
    if (phase_ != Phase::closed && shut()) {
        remote_.link_gone(name_);
    }
}

}  // namespace by::master
