// RemoteLink's handshake: once the connection (and its TLS) is up, the
// master's certificate checked against the pins, Hello, then Authenticate
// with the password proof, each with its deadline, the periodic check
// that an attempt's connection still exists, and what a refusal means.
// The link's lifecycle (connecting, losing, retrying, detaching) is in
// remote_link.cpp.
#include "worker/remote_link.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "common/bus.hpp"
#include "common/handshake_messages.hpp"
#include "common/log.hpp"

namespace by::worker {

namespace {

constexpr const char* handshake_iface = handshake::interface;
constexpr uint64_t handshake_timeout_usec = 30'000'000;  // Authenticate may wait 10 s for a duplicate's ping
// How often an attempt checks that its connection still exists. sd-bus
// drops a TCP connection whose connect() fails (nothing listens yet: a
// guest that boots before its master) without failing the pending Hello,
// whose own timeout then never fires either.
constexpr uint64_t handshake_check_usec = 500'000;
// With several masters: how long a master may take to accept the TCP
// connection and finish TLS before the worker tries the next one.
constexpr uint64_t answer_timeout_usec = 10'000'000;
}  // namespace

void RemoteLink::established() {
    answered_ = true;
    if (!pins_.empty()) {
        const std::string presented = tls::fingerprint(tunnel_->peer_certificate());
        if (std::find(pins_.begin(), pins_.end(), presented) == pins_.end()) {
            const std::string shown = presented.empty() ? std::string("(none)") : presented;
            lost(pins_.size() == 1
                     ? fmt::format("the master at {} presented certificate {}, not the one pinned by "
                                   "master_fingerprint ({}); not talking to it",
                                   master_, shown, pins_.front())
                     : fmt::format("the master at {} presented certificate {}, none of the {} pinned by "
                                   "master_fingerprint; not talking to it",
                                   master_, shown, pins_.size()));
            return;
        }
    }
    worker_nonce_ = crypto::random_bytes(crypto::nonce_size);
    if (worker_nonce_.empty()) {
        lost(fmt::format("cannot make a handshake nonce: {}",
                         crypto::unavailable().empty() ? "libcrypto failed" : crypto::unavailable()));
        return;
    }
    binding_ = tunnel_->channel_binding();
    if (tls_ && binding_.empty()) {
        lost(fmt::format("cannot export the TLS channel binding for the master at {}", master_));
        return;
    }
    sd_bus* b = bus_.get();
    sd_bus_message* raw = nullptr;
    int r = sd_bus_message_new_method_call(b, &raw, nullptr, bus::master_path, handshake_iface, "Hello");
    MessagePtr m(raw);
    if (r >= 0) r = sd_bus_message_append(raw, "s", name_.c_str());
    if (r >= 0) r = sd_bus_message_append_array(raw, 'y', worker_nonce_.data(), worker_nonce_.size());
    if (r >= 0) r = sd_bus_message_append_array(raw, 'y', binding_.data(), binding_.size());
    sd_bus_slot* slot = nullptr;
    if (r >= 0) r = sd_bus_call_async(b, &slot, raw, on_hello_reply, this, handshake_timeout_usec);
    if (r < 0) {
        lost(fmt::format("cannot send Hello to the master at {}: {}", master_, std::strerror(-r)));
        return;
    }
    call_slot_.reset(slot);
}

void RemoteLink::arm_handshake_check() {
    sd_event_source* s = nullptr;
    if (sd_event_add_time_relative(event_, &s, CLOCK_MONOTONIC, handshake_check_usec, 50'000, on_handshake_check,
                                   this) >= 0) {
        handshake_timer_.reset(s);
    }
}

int RemoteLink::on_handshake_check(sd_event_source*, uint64_t, void* userdata) {
    auto* self = static_cast<RemoteLink*>(userdata);
    if (self->state_ != State::attaching) {
        self->handshake_timer_.reset();
        return 0;
    }
    if (!self->bus_ || sd_bus_is_open(self->bus_.get()) <= 0) {
        self->lost(fmt::format("cannot connect to the master at {}", self->master_));
    } else if (!self->answered_ && self->masters_.size() > 1 &&
               self->now() - self->connect_started_ > answer_timeout_usec) {
        // A host that is down drops the connection attempt without a word;
        // the kernel would give up only after minutes, and others are listed.
        self->lost(fmt::format("the master at {} did not answer within {} s", self->master_,
                               answer_timeout_usec / 1'000'000));
    } else if (self->now() - self->connect_started_ > 2 * handshake_timeout_usec + 1'000'000) {
        // Hello and Authenticate time out on their own; this is the backstop.
        self->lost(fmt::format("the master at {} did not finish the handshake", self->master_));
    } else {
        self->arm_handshake_check();
    }
    return 0;
}

int RemoteLink::on_hello_reply(sd_bus_message* m, void* userdata, sd_bus_error*) {
    auto* self = static_cast<RemoteLink*>(userdata);
    self->call_slot_.reset();
    if (const sd_bus_error* e = sd_bus_message_get_error(m)) {
        if (sd_bus_error_has_name(e, bus::error::AuthFailed)) {
            self->refused_login(e);  // the TLS session it sees is not the master's
            return 0;
        }
        self->lost(fmt::format("Hello to the master at {} failed: {}", self->master_, error_text(e)));
        return 0;
    }
    std::string why;
    if (handshake::read_hello_reply(m, self->master_nonce_, why) <= 0) {
        self->lost(fmt::format("the master at {} sent a malformed Hello reply", self->master_));
        return 0;
    }
    const auto proof =
        crypto::worker_proof(self->password_, self->name_, self->master_nonce_, self->worker_nonce_, self->binding_);
    sd_bus_message* raw = nullptr;
    int r = sd_bus_message_new_method_call(self->bus_.get(), &raw, nullptr, bus::master_path, handshake_iface,
                                           "Authenticate");
    MessagePtr call(raw);
    if (r >= 0) r = proof.empty() ? -EIO : 0;
    if (r >= 0) r = sd_bus_message_append_array(raw, 'y', proof.data(), proof.size());
    if (r >= 0) r = bus::append_string_map(raw, self->events_.info ? self->events_.info() : bus::StringMap{});
    sd_bus_slot* slot = nullptr;
    if (r >= 0) r = sd_bus_call_async(self->bus_.get(), &slot, raw, on_authenticate_reply, self,
                                      handshake_timeout_usec);
    if (r < 0) {
        self->lost(fmt::format("cannot send Authenticate to the master at {}: {}", self->master_, std::strerror(-r)));
        return 0;
    }
    self->call_slot_.reset(slot);
    return 0;
}

int RemoteLink::on_authenticate_reply(sd_bus_message* m, void* userdata, sd_bus_error*) {
    auto* self = static_cast<RemoteLink*>(userdata);
    self->call_slot_.reset();
    if (const sd_bus_error* e = sd_bus_message_get_error(m)) {
        if (sd_bus_error_has_name(e, bus::error::AuthFailed)) {
            self->refused_login(e);
            return 0;
        }
        self->lost(fmt::format("the master at {} did not attach worker '{}': {}", self->master_, self->name_,
                               error_text(e)));
        return 0;
    }
    handshake::Accepted accepted;
    std::string why;
    if (handshake::read_accepted(m, accepted, why) <= 0) {
        self->lost(fmt::format("the master at {} sent a malformed Authenticate reply{}", self->master_,
                               why.empty() ? "" : ": " + why));
        return 0;
    }
    if (!crypto::master_proof_valid(self->password_, self->name_, self->worker_nonce_, self->master_nonce_,
                                    self->binding_, accepted.master_proof)) {
        self->refused(fmt::format("master at {} could not prove it knows the password; refusing its builds",
                                  self->master_));
        return 0;
    }
    self->keepalive_interval_ = accepted.keepalive_interval;
    self->choice_.attached();
    self->last_heard_ = self->now();
    log::write(log::Level::notice,
               fmt::format("attached to the master at {} as worker '{}' ({}); keepalive every {}", self->master_,
                           self->name_, accepted.worker_path,
                           self->keepalive_interval_ ? std::to_string(self->keepalive_interval_) + " s" : "never"),
               {{"BUILDYARD_WORKER", self->name_}});
    self->set_state(State::attached);
    self->arm_silence_check();
    return 0;
}

void RemoteLink::refused_login(const sd_bus_error* e) {
    refused(fmt::format("the master at {} refused worker '{}': authentication failed; the password here must "
                        "match the one in the master's [worker {}] section, its client certificate (if it asks for "
                        "one) must be right, and nothing may relay the connection between them ({})",
                        master_, name_, name_, error_text(e)));
}

void RemoteLink::refused(const std::string& why) {
    silence_timer_.reset();
    bury_bus();
    if (masters_.size() > 1 && !closing_) {
        // Another master of the list may take the worker; when every one of
        // a round refused, trying again would fail the same way.
        const auto next = choice_.failed(now(), true);
        if (!next.give_up) {
            retry(why, next, true);
            return;
        }
        log::write(log::Level::err, why + "; every master in master = refused this worker",
                   {{"BUILDYARD_WORKER", name_}});
    } else {
        // Trying again would fail the same way; systemd shows why.
        log::write(log::Level::err, why, {{"BUILDYARD_WORKER", name_}});
    }
    closing_ = true;
    state_ = State::idle;
    if (events_.fatal) {
        events_.fatal(1);
    }
}

}  // namespace by::worker
