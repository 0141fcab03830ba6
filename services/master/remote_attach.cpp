// A remote worker's connection after a good proof: the worker attaches,
// or, when it is attached already on another link, that link is pinged
// first and the connection that should win does (never both at once).
#include "master/remote_connection.hpp"

#include <cstring>

#include "common/bus.hpp"
#include "common/log.hpp"
#include "common/text.hpp"

namespace by::master {

void Remote::Connection::arbitrate(sd_bus_message* call, std::string_view link) {
    // A second connection for an attached worker: the old one may be a
    // ghost (a machine that rebooted, a NAT that forgot us). Ask it.
    log::write(log::Level::notice,
               fmt::format("worker {} authenticated on a new connection {} from {} while attached as {}; "
                           "pinging the attached one",
                           name_, sender_, peer_, link),
               {{"BUILDYARD_WORKER", name_}});
    set_phase(Phase::arbitrating);
    held_call_.reset(sd_bus_message_ref(call));
    if (remote_.host_.ping_worker(name_, remote_.timeouts_.duplicate_ping_usec, on_old_ping, this, old_ping_) < 0) {
        resolve_duplicate(false);
    }
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
    const std::optional<RemoteWorker> w = remote_.host_.remote_worker(name_);
    if (w && w->attached && old_answered) {
        log::write(log::Level::warning,
                   fmt::format("refused a second connection for worker '{}' from {}: its attached link {} answers",
                               name_, peer_, w->link),
                   {{"BUILDYARD_WORKER", name_}});
        logged_ = true;
        set_phase(Phase::fresh);
        remote_.metrics_.remote_refused(RemoteRefusal::already_attached);
        sd_bus_reply_method_errorf(call.get(), bus::error::AlreadyAttached, "Worker '%s' is already attached.",
                                   name_.c_str());
        arm_timer(auth_timer_, remote_.timeouts_.auth_usec, on_auth_timeout);
        return;
    }
    if (w && w->attached) {
        // Fully detached (its builds end retry, its connection closes)
        // before the new one attaches: never both at once.
        remote_.host_.drop_worker(name_, DetachCause::replaced,
                                  fmt::format("it did not answer a ping within {} s after a new connection from {} "
                                              "authenticated",
                                              seconds(remote_.timeouts_.duplicate_ping_usec), peer_));
    }
    attach(call.get());
}

void Remote::Connection::attach(sd_bus_message* call) {
    std::string path;
    Remote* remote = &remote_;
    const uint64_t id = id_;
    Status s = remote_.host_.attach_remote(name_, sender_, peer_, bus_.get(),
                                           [remote, id](const std::string&) {
                                               if (auto it = remote->connections_.find(id);
                                                   it != remote->connections_.end()) {
                                                   it->second->dropped();
                                               }
                                           },
                                           info_, path);
    if (!s) {
        remote_.metrics_.remote_refused(RemoteRefusal::attach_refused);
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
    const std::optional<RemoteWorker> w = remote_.host_.remote_worker(name_);
    const std::string* key = w->key;
    const auto proof = crypto::master_proof(key ? *key : std::string(), name_, worker_nonce_, master_nonce_,
                                            tunnel_->channel_binding());
    const bus::StringMap settings{{"keepalive_interval", std::to_string(w->cfg->keepalive_interval)},
                                  {"keepalive_timeout", std::to_string(w->cfg->keepalive_timeout)}};
    sd_bus_message* raw = nullptr;
    int r = sd_bus_message_new_method_return(call, &raw);
    MessagePtr reply(raw);
    if (r >= 0) r = sd_bus_message_append_array(raw, 'y', proof.data(), proof.size());
    if (r >= 0) r = sd_bus_message_append(raw, "o", path.c_str());
    if (r >= 0) r = bus::append_string_map(raw, settings);
    if (r >= 0) r = sd_bus_send(nullptr, raw, nullptr);
    if (r < 0) {
        remote_.host_.drop_worker(name_, DetachCause::error,
                                  std::string("cannot answer its Authenticate: ") + std::strerror(-r));
        return;
    }
    told_interval_ = w->cfg->keepalive_interval;
    arm_keepalive();
}

}  // namespace by::master
