// One remote worker's connection: org.buildyard.Handshake1, the gate in
// front of everything else, the attachment, keepalives and duplicates.
#include "master/remote_connection.hpp"

#include <cerrno>
#include <cstring>

#include "common/bus.hpp"
#include "common/handshake_messages.hpp"
#include "common/log.hpp"
#include "common/text.hpp"

namespace by::master {

namespace {

constexpr const char* handshake_iface = handshake::interface;
constexpr const char* peer_iface = "org.freedesktop.DBus.Peer";
// Accuracy of the connection's timers; keepalives may coalesce more.
constexpr uint64_t timer_accuracy = 10'000;
constexpr uint64_t keepalive_accuracy = 100'000;
// With keepalives off, look at the configuration again this often (a reload
// may turn them on).
constexpr uint64_t keepalive_recheck_usec = 60'000'000;

using Connection = Remote::Connection;

Connection& of(void* userdata) { return *static_cast<Connection*>(userdata); }

// A name from the wire, safe to log.
std::string printable(const std::string& s) {
    std::string out;
    for (char c : s.substr(0, 64)) {
        out += (c >= 0x20 && c < 0x7f) ? c : '?';
    }
    return out;
}

std::string seconds(uint64_t usec) {
    return usec % 1'000'000 == 0 ? std::to_string(usec / 1'000'000) : fmt::format("{:.1f}", usec / 1e6);
}

const sd_bus_vtable handshake_vtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_METHOD_WITH_ARGS("Hello", SD_BUS_ARGS("s", name, "ay", worker_nonce, "ay", channel_binding),
                            SD_BUS_RESULT("ay", master_nonce),
                            Connection::method_hello, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_ARGS("Authenticate", SD_BUS_ARGS("ay", worker_proof, "a{ss}", info),
                            SD_BUS_RESULT("ay", master_proof, "o", worker, "a{ss}", settings),
                            Connection::method_authenticate, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_VTABLE_END,
};

}  // namespace

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
    if ((r = sd_bus_add_object_vtable(b, &s, bus::master_path, handshake_iface, handshake_vtable, this)) < 0) return r;
    slots_.emplace_back(s);
    if ((r = register_link_object(remote_.master_, b, slots_)) < 0) return r;
    if ((r = sd_bus_start(b)) < 0) return r;
    return arm_timer(auth_timer_, remote_.timeouts_.auth_usec, on_auth_timeout);
}

int Remote::Connection::arm_timer(SourcePtr& timer, uint64_t usec, sd_event_time_handler_t handler) {
    sd_event_source* s = nullptr;
    int r = sd_event_add_time_relative(remote_.event_, &s, CLOCK_MONOTONIC, usec,
                                       &timer == &keepalive_timer_ ? keepalive_accuracy : timer_accuracy, handler,
                                       this);
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
    const bool handshake = iface && (std::strcmp(iface, handshake_iface) == 0 || std::strcmp(iface, peer_iface) == 0);
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
    c.remote_.master_.metrics().remote_refused(RemoteRefusal::not_authenticated);
    BusError e;
    sd_bus_error_set(e.get(), bus::error::AccessDenied, refusal);
    sd_bus_reply_method_error(m, e.get());
    return 1;
}

int Remote::Connection::method_hello(sd_bus_message* m, void* userdata, sd_bus_error* error) {
    Connection& c = of(userdata);
    if (c.held_call_) {
        return sd_bus_error_set(error, bus::error::Busy, "Wait for the answer to Authenticate.");
    }
    if (c.phase_ != Phase::fresh) {
        return sd_bus_error_set(error, bus::error::InvalidArgument, "Hello was answered already; call Authenticate.");
    }
    handshake::Hello hello;
    std::string why;
    int r = handshake::read_hello(m, hello, why);
    if (r < 0) return r;
    if (r == 0) {
        return sd_bus_error_set(error, bus::error::InvalidArgument, why.c_str());
    }
    const auto ours = c.tunnel_->channel_binding();
    if (ours.size() != hello.channel_binding.size() ||
        (!ours.empty() && !crypto::equal(ours, hello.channel_binding))) {
        // The worker's TLS session ends elsewhere: a relay it trusts by
        // mistake forwards its words. Its proof would not pass either.
        c.name_ = hello.name;
        c.auth_failed(m, AuthVerdict::foreign_session);
        return 1;
    }
    auto master_nonce = crypto::random_bytes(crypto::nonce_size);
    if (master_nonce.empty()) {
        return sd_bus_error_set(error, bus::error::Internal, "Cannot make a nonce.");
    }
    c.name_ = std::move(hello.name);
    c.worker_nonce_ = std::move(hello.worker_nonce);
    c.master_nonce_ = std::move(master_nonce);
    c.set_phase(Phase::challenged);
    sd_bus_message* raw = nullptr;
    r = sd_bus_message_new_method_return(m, &raw);
    MessagePtr reply(raw);
    if (r >= 0) r = sd_bus_message_append_array(raw, 'y', c.master_nonce_.data(), c.master_nonce_.size());
    if (r >= 0) r = sd_bus_send(nullptr, raw, nullptr);
    return r;
}

int Remote::Connection::method_authenticate(sd_bus_message* m, void* userdata, sd_bus_error* error) {
    Connection& c = of(userdata);
    if (c.held_call_) {
        return sd_bus_error_set(error, bus::error::Busy, "Wait for the answer to Authenticate.");
    }
    if (c.phase_ != Phase::challenged) {
        return sd_bus_error_set(error, bus::error::InvalidArgument,
                                c.phase_ == Phase::fresh ? "Call Hello first." : "Authenticated already.");
    }
    handshake::Authenticate auth;
    std::string why;
    int r = handshake::read_authenticate(m, auth, why);
    if (r < 0) return r;
    if (r == 0) {
        return sd_bus_error_set(error, bus::error::InvalidArgument, why.c_str());
    }
    c.proof_ = std::move(auth.proof);
    c.info_ = std::move(auth.info);
    // Attempts for one name are checked one at a time, the next only after
    // the delay the name's failures earned, whatever address they come from.
    uint64_t now = 0;
    sd_event_now(c.remote_.event_, CLOCK_MONOTONIC, &now);
    if (const uint64_t wait = c.remote_.throttle_.wait(c.name_, now); wait > 0) {
        c.held_call_.reset(sd_bus_message_ref(m));
        if (c.arm_timer(c.reply_timer_, wait, on_admitted) >= 0) {
            return 1;
        }
        c.held_call_.reset();
    }
    c.check_proof(m);
    return 1;
}

int Remote::Connection::on_admitted(sd_event_source*, uint64_t, void* userdata) {
    Connection& c = of(userdata);
    c.reply_timer_.reset();
    MessagePtr call = std::move(c.held_call_);
    if (!call || c.phase_ != Phase::challenged) {
        return 0;
    }
    uint64_t now = 0;
    sd_event_now(c.remote_.event_, CLOCK_MONOTONIC, &now);
    if (const uint64_t wait = c.remote_.throttle_.wait(c.name_, now); wait > 0) {
        // Another attempt for the name failed meanwhile: wait again.
        c.held_call_ = std::move(call);
        c.arm_timer(c.reply_timer_, wait, on_admitted);
        return 0;
    }
    c.check_proof(call.get());
    return 0;
}

void Remote::Connection::check_proof(sd_bus_message* m) {
    Connection& c = *this;
    Master& master = c.remote_.master_;
    Worker* w = master.find_worker(c.name_);
    const config::Worker* cfg = w && w->configured ? &w->cfg : nullptr;
    const std::span<const uint8_t> proof_bytes{c.proof_};
    const auto binding = c.tunnel_->channel_binding();
    const Challenge challenge{c.master_nonce_, c.worker_nonce_, binding};
    const AuthVerdict verdict =
        cfg && cfg->type == config::WorkerType::latent
            ? verify_latent_proof(master.worker_key(*w), master.earlier_tokens(*w), c.name_, challenge, proof_bytes,
                                  c.remote_.dummy_key_)
            : verify_worker_proof(cfg, c.name_, challenge, proof_bytes, c.remote_.dummy_key_);
    if (verdict != AuthVerdict::ok) {
        c.auth_failed(m, verdict);
        return;
    }
    if (std::string why; !c.client_certificate_ok(*cfg, why)) {
        c.auth_failed(m, AuthVerdict::wrong_password,
                      fmt::format("refused worker '{}' from {}: {}", c.name_, c.peer_, why));
        return;
    }
    c.remote_.throttle_.success(c.name_);
    c.auth_timer_.reset();
    if (!w->attached) {
        c.attach(m);
        return;
    }
    // A second connection for an attached worker: the old one may be a
    // ghost (a machine that rebooted, a NAT that forgot us). Ask it.
    log::write(log::Level::notice,
               fmt::format("worker {} authenticated on a new connection {} from {} while attached as {}; "
                           "pinging the attached one",
                           c.name_, c.sender_, c.peer_, w->bus_name),
               {{"BUILDYARD_WORKER", c.name_}});
    c.set_phase(Phase::arbitrating);
    c.held_call_.reset(sd_bus_message_ref(m));
    if (master.ping_worker(*w, c.remote_.timeouts_.duplicate_ping_usec, on_old_ping, &c, c.old_ping_) < 0) {
        c.resolve_duplicate(false);
    }
}

bool Remote::Connection::client_certificate_ok(const config::Worker& cfg, std::string& why) const {
    if (cfg.tls_client_ca.empty() && cfg.tls_client_fingerprint.empty()) {
        return true;
    }
    if (!tunnel_->encrypted()) {
        why = "its section asks for a client certificate, which plain TCP (tls = no) cannot carry";
        return false;
    }
    return tls::client_certificate_ok(tunnel_->ssl(), cfg.tls_client_fingerprint, cfg.tls_client_ca, why);
}

void Remote::Connection::auth_failed(sd_bus_message* call, AuthVerdict verdict, const std::string& line) {
    remote_.master_.metrics().remote_refused(verdict == AuthVerdict::unknown_worker  ? RemoteRefusal::unknown_worker
                                             : verdict == AuthVerdict::wrong_token   ? RemoteRefusal::wrong_token
                                             : verdict == AuthVerdict::stale_token   ? RemoteRefusal::stale_token
                                                                                     : RemoteRefusal::wrong_password);
    log::write(log::Level::warning, line.empty() ? auth_failure_line(verdict, printable(name_), peer_) : line,
               {{"BUILDYARD_WORKER", printable(name_)}, {"MESSAGE_ID", std::string(log::id::auth_failed)}});
    logged_ = true;
    set_phase(Phase::fresh);  // a new attempt needs a new Hello, and new nonces
    master_nonce_.clear();
    uint64_t now = 0;
    sd_event_now(remote_.event_, CLOCK_MONOTONIC, &now);
    const uint64_t delay = remote_.throttle_.failure(address_, name_, now);
    held_call_.reset(sd_bus_message_ref(call));
    if (delay == 0 || arm_timer(reply_timer_, delay, on_delayed_reply) < 0) {
        on_delayed_reply(nullptr, 0, this);
    }
}

int Remote::Connection::on_delayed_reply(sd_event_source*, uint64_t, void* userdata) {
    Connection& c = of(userdata);
    MessagePtr call = std::move(c.held_call_);
    c.reply_timer_.reset();
    if (call) {
        BusError e;
        sd_bus_error_set(e.get(), bus::error::AuthFailed, "Authentication failed.");
        sd_bus_reply_method_error(call.get(), e.get());
    }
    return 0;
}

int Remote::Connection::on_old_ping(sd_bus_message* m, void* userdata, sd_bus_error*) {
    of(userdata).resolve_duplicate(!sd_bus_message_is_method_error(m, nullptr));
    return 0;
}

void Remote::Connection::old_link_gone() {
    // Later, not inside the detach that got us here.
    if (phase_ == Phase::arbitrating) {
        old_ping_.reset();
        arm_timer(reply_timer_, 0, [](sd_event_source*, uint64_t, void* userdata) {
            of(userdata).resolve_duplicate(false);
            return 0;
        });
    }
}

void Remote::Connection::resolve_duplicate(bool old_answered) {
    if (phase_ != Phase::arbitrating) {
        return;
    }
    set_phase(Phase::challenged);  // no longer found by Remote::link_gone
    old_ping_.reset();
    reply_timer_.reset();
    MessagePtr call = std::move(held_call_);
    Master& master = remote_.master_;
    Worker* w = master.find_worker(name_);
    if (w && w->attached && old_answered) {
        log::write(log::Level::warning,
                   fmt::format("refused a second connection for worker '{}' from {}: its attached link {} answers",
                               name_, peer_, w->bus_name),
                   {{"BUILDYARD_WORKER", name_}});
        logged_ = true;
        set_phase(Phase::fresh);
        master.metrics().remote_refused(RemoteRefusal::already_attached);
        sd_bus_reply_method_errorf(call.get(), bus::error::AlreadyAttached, "Worker '%s' is already attached.",
                                   name_.c_str());
        arm_timer(auth_timer_, remote_.timeouts_.auth_usec, on_auth_timeout);
        return;
    }
    if (w && w->attached) {
        // Fully detached (its builds end retry, its connection closes)
        // before the new one attaches: never both at once.
        master.drop_worker(name_, DetachCause::replaced, fmt::format("it did not answer a ping within {} s after a new connection from {} "
                                              "authenticated",
                                              seconds(remote_.timeouts_.duplicate_ping_usec), peer_));
    }
    attach(call.get());
}

void Remote::Connection::attach(sd_bus_message* call) {
    Master& master = remote_.master_;
    std::string path;
    Remote* remote = &remote_;
    const uint64_t id = id_;
    Status s = master.attach_remote(name_, sender_, peer_, bus_.get(),
                                    [remote, id](const std::string&) {
                                        if (auto it = remote->connections_.find(id);
                                            it != remote->connections_.end()) {
                                            it->second->dropped();
                                        }
                                    },
                                    info_, path);
    if (!s) {
        master.metrics().remote_refused(RemoteRefusal::attach_refused);
        sd_bus_reply_method_errorf(call, s.error, "%s", text::to_utf8(s.message).c_str());
        set_phase(Phase::fresh);
        logged_ = true;
        arm_timer(auth_timer_, remote_.timeouts_.auth_usec, on_auth_timeout);
        return;
    }
    set_phase(Phase::attached);
    tunnel_->limit_inbound(0);
    if (!tunnel_->encrypted()) {
        log::write(log::Level::warning,
                   fmt::format("worker {} attached over plain TCP (tls = no) from {}: its traffic can be read and "
                               "changed on the way",
                               name_, peer_),
                   {{"BUILDYARD_WORKER", name_}});
    }
    const Worker* w = master.find_worker(name_);
    const std::string* key = master.worker_key(*w);
    const auto proof = crypto::master_proof(key ? *key : std::string(), name_, worker_nonce_, master_nonce_,
                                            tunnel_->channel_binding());
    const bus::StringMap settings{{"keepalive_interval", std::to_string(w->cfg.keepalive_interval)},
                                  {"keepalive_timeout", std::to_string(w->cfg.keepalive_timeout)}};
    sd_bus_message* raw = nullptr;
    int r = sd_bus_message_new_method_return(call, &raw);
    MessagePtr reply(raw);
    if (r >= 0) r = sd_bus_message_append_array(raw, 'y', proof.data(), proof.size());
    if (r >= 0) r = sd_bus_message_append(raw, "o", path.c_str());
    if (r >= 0) r = bus::append_string_map(raw, settings);
    if (r >= 0) r = sd_bus_send(nullptr, raw, nullptr);
    if (r < 0) {
        master.drop_worker(name_, DetachCause::error, std::string("cannot answer its Authenticate: ") + std::strerror(-r));
        return;
    }
    told_interval_ = w->cfg.keepalive_interval;
    arm_keepalive();
}

void Remote::Connection::keepalive_changed() {
    Master& master = remote_.master_;
    const Worker* w = master.find_worker(name_);
    if (phase_ != Phase::attached || !w || !w->attached || w->bus_name != sender_ ||
        w->cfg.keepalive_interval == told_interval_) {
        return;
    }
    const uint64_t interval = w->cfg.keepalive_interval;
    // The worker first: its silence check must stop counting on the old
    // interval before our pings follow the new one.
    int r = master.tell_worker_keepalive(*w, interval, on_set_keepalive_reply, this, set_keepalive_call_);
    if (r < 0) {
        master.drop_worker(name_, DetachCause::error, std::string("cannot send it its new keepalive_interval: ") + std::strerror(-r));
        return;
    }
    log::write(log::Level::info,
               fmt::format("worker {}: keepalive_interval is now {}", name_,
                           interval ? std::to_string(interval) + " s" : std::string("none")),
               {{"BUILDYARD_WORKER", name_}});
    told_interval_ = interval;
    keepalive_ping_.reset();  // a ping in flight belongs to the old rhythm
    arm_keepalive();
}

int Remote::Connection::on_set_keepalive_reply(sd_bus_message* m, void* userdata, sd_bus_error*) {
    Connection& c = of(userdata);
    if (c.phase_ != Phase::attached || !sd_bus_message_is_method_error(m, nullptr)) {
        return 0;
    }
    // A worker that cannot take the new value would drop the link on its own
    // old schedule: better to say why now, and let it attach afresh.
    const sd_bus_error* e = sd_bus_message_get_error(m);
    c.remote_.master_.drop_worker(c.name_, DetachCause::error, fmt::format("it did not take its new keepalive_interval ({}: {}); it "
                                                      "gets the new value when it attaches again",
                                                      e && e->name ? e->name : "?",
                                                      e && e->message ? e->message : ""));
    return 0;
}

void Remote::Connection::arm_keepalive() {
    const Worker* w = remote_.master_.find_worker(name_);
    if (!w) {
        return;
    }
    const uint64_t interval = w->cfg.keepalive_interval;
    arm_timer(keepalive_timer_, interval ? interval * 1'000'000 : keepalive_recheck_usec, on_keepalive);
}

int Remote::Connection::on_keepalive(sd_event_source*, uint64_t, void* userdata) {
    Connection& c = of(userdata);
    Master& master = c.remote_.master_;
    Worker* w = master.find_worker(c.name_);
    if (!w || !w->attached || w->bus_name != c.sender_) {
        return 0;
    }
    if (w->cfg.keepalive_interval == 0) {
        c.arm_keepalive();
        return 0;
    }
    int r = master.ping_worker(*w, w->cfg.keepalive_timeout * 1'000'000, on_keepalive_reply, &c, c.keepalive_ping_);
    if (r < 0) {
        master.drop_worker(c.name_, DetachCause::error, std::string("cannot send it a keepalive: ") + std::strerror(-r));
    }
    return 0;
}

int Remote::Connection::on_keepalive_reply(sd_bus_message* m, void* userdata, sd_bus_error*) {
    Connection& c = of(userdata);
    if (c.phase_ != Phase::attached || sd_bus_is_open(c.bus_.get()) <= 0) {
        return 0;  // closing: the Disconnected signal follows
    }
    if (sd_bus_message_is_method_error(m, nullptr)) {
        const Worker* w = c.remote_.master_.find_worker(c.name_);
        const sd_bus_error* e = sd_bus_message_get_error(m);
        c.remote_.master_.drop_worker(
            c.name_, DetachCause::keepalive, fmt::format("no answer to a keepalive within {} s ({})", w ? w->cfg.keepalive_timeout : 0,
                                 e && e->message ? e->message : "no reply"));
        return 0;
    }
    c.arm_keepalive();
    return 0;
}

int Remote::Connection::on_auth_timeout(sd_event_source*, uint64_t, void* userdata) {
    Connection& c = of(userdata);
    c.remote_.master_.metrics().remote_refused(RemoteRefusal::auth_timeout);
    c.close(fmt::format("not authenticated within {} s", seconds(c.remote_.timeouts_.auth_usec)));
    return 0;
}

void Remote::Connection::close(const std::string& why) {
    if (phase_ == Phase::closed) {
        return;
    }
    const bool was_attached = phase_ == Phase::attached;
    set_phase(Phase::closed);
    auth_timer_.reset();
    reply_timer_.reset();
    keepalive_timer_.reset();
    held_call_.reset();
    remote_.bury(id_);
    if (was_attached) {
        remote_.master_.link_lost(sender_, why);  // logs the detach
        remote_.link_gone(name_);
    } else if (!logged_) {
        logged_ = true;
        log::write(log::Level::notice, fmt::format("connection {} from {} closed: {}", sender_, peer_, why));
    }
}

void Remote::Connection::dropped() {
    if (phase_ == Phase::closed) {
        return;
    }
    const bool was_attached = phase_ == Phase::attached;
    set_phase(Phase::closed);
    auth_timer_.reset();
    reply_timer_.reset();
    keepalive_timer_.reset();
    held_call_.reset();
    remote_.bury(id_);
    if (was_attached) {
        remote_.link_gone(name_);
    }
}

}  // namespace by::master
