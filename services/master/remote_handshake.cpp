// org.buildyard.Handshake1 on a remote worker's connection: Hello, then
// Authenticate, whose proof is checked once the failure throttle admits it
// (the decisions themselves are in handshake.cpp).
#include "master/remote_connection.hpp"

#include <cstring>

#include "common/bus.hpp"
#include "common/handshake_messages.hpp"
#include "common/log.hpp"

namespace by::master {

namespace {

// Reads a Handshake1 call with `read` (handshake_messages.hpp): positive
// when it is read, else what its handler returns (InvalidArgument for a
// malformed call).
template <typename Call>
int read_call(sd_bus_message* m, int (*read)(sd_bus_message*, Call&, std::string&), Call& call,
              sd_bus_error* error) {
    std::string why;
    const int r = read(m, call, why);
    return r == 0 ? sd_bus_error_set(error, bus::error::InvalidArgument, why.c_str()) : r;
}

}  // namespace

int Remote::Connection::serve_handshake() {
    static const sd_bus_vtable vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("Hello", SD_BUS_ARGS("s", name, "ay", worker_nonce, "ay", channel_binding),
                                SD_BUS_RESULT("ay", master_nonce), method_hello, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Authenticate", SD_BUS_ARGS("ay", worker_proof, "a{ss}", info),
                                SD_BUS_RESULT("ay", master_proof, "o", worker, "a{ss}", settings),
                                method_authenticate, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
    };
    sd_bus_slot* s = nullptr;
    int r = sd_bus_add_object_vtable(bus_.get(), &s, bus::master_path, handshake::interface, vtable, this);
    if (r >= 0) slots_.emplace_back(s);
    return r;
}

int Remote::Connection::out_of_turn(Phase expected, sd_bus_error* error) const {
    if (held_call_) {
        return sd_bus_error_set(error, bus::error::Busy, "Wait for the answer to Authenticate.");
    }
    if (phase_ == expected) {
        return 0;
    }
    return sd_bus_error_set(error, bus::error::InvalidArgument,
                            expected == Phase::fresh ? "Hello was answered already; call Authenticate."
                            : phase_ == Phase::fresh ? "Call Hello first."
                                                     : "Authenticated already.");
}

int Remote::Connection::method_hello(sd_bus_message* m, void* userdata, sd_bus_error* error) {
    Connection& c = of(userdata);
    handshake::Hello hello;
    int r = c.out_of_turn(Phase::fresh, error);
    if (r == 0) r = read_call(m, handshake::read_hello, hello, error);
    if (r < 0) return r;
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
    handshake::Authenticate auth;
    int r = c.out_of_turn(Phase::challenged, error);
    if (r == 0) r = read_call(m, handshake::read_authenticate, auth, error);
    if (r < 0) return r;
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
    const std::optional<RemoteWorker> w = remote_.host_.remote_worker(name_);
    const config::Worker* cfg = w && w->configured ? w->cfg : nullptr;
    const std::span<const uint8_t> proof_bytes{proof_};
    const auto binding = tunnel_->channel_binding();
    const Challenge challenge{master_nonce_, worker_nonce_, binding};
    const AuthVerdict verdict =
        cfg && cfg->type == config::WorkerType::latent
            ? verify_latent_proof(w->key, remote_.host_.earlier_tokens(name_), name_, challenge, proof_bytes,
                                  remote_.dummy_key_)
            : verify_worker_proof(cfg, name_, challenge, proof_bytes, remote_.dummy_key_);
    if (verdict != AuthVerdict::ok) {
        auth_failed(m, verdict);
        return;
    }
    if (std::string why; !client_certificate_ok(*cfg, why)) {
        auth_failed(m, AuthVerdict::wrong_password, fmt::format("refused worker '{}' from {}: {}", name_, peer_, why));
        return;
    }
    remote_.throttle_.success(name_);
    auth_timer_.reset();
    if (!w->attached) {
        attach(m);
    } else {
        arbitrate(m, w->link);
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
    remote_.metrics_.remote_refused(verdict == AuthVerdict::unknown_worker  ? RemoteRefusal::unknown_worker
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

}  // namespace by::master
