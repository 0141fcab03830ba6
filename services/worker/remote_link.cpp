#include "worker/remote_link.hpp"

#include <algorithm>
#include <thread>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <random>
#include <utility>

#include <fmt/format.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "common/bus.hpp"
#include "common/config.hpp"
#include "common/handshake_messages.hpp"
#include "common/log.hpp"
#include "worker/reports.hpp"

namespace by::worker {

namespace {

constexpr uint64_t detach_timeout_usec = 2'000'000;
// The tunnel's Reactor drives no bus here: its ticks are unused.
constexpr uint64_t reactor_tick_usec = 1'000'000;

}  // namespace

std::string RemoteLink::error_text(const sd_bus_error* e) {
    if (e->message && *e->message) {
        return fmt::format("{} ({})", e->message, e->name ? e->name : "?");
    }
    return e->name ? e->name : "unknown error";
}

RemoteLink::RemoteLink(sd_event* event, const config::WorkerSelf& self, Events events)
    : event_(event),
      name_(self.name),
      password_(self.password),
      pins_(self.master_fingerprints),
      events_(std::move(events)),
      choice_(self.masters.size(), self.reconnect_max, std::random_device{}()) {
    for (const auto& text : self.masters) {
        Address a{text, "", 0};
        if (auto hp = config::parse_host_port(text)) {
            a.host = hp->host;
            a.port = hp->port;
        }
        masters_.push_back(std::move(a));
    }
    if (masters_.empty()) {
        masters_.push_back({});
    }
    aim(0);
    if (self.tls) {
        tls_error_ = config::missing_trust(self);
        if (tls_error_.empty()) {
            // The pins are compared after the handshake (established()): the
            // context only needs to know that there are some.
            const tls::ClientTrust trust{pins_.empty() ? std::string() : pins_.front(), self.tls_ca_file,
                                         self.tls_certificate, self.tls_key};
            tls::make_client_context(trust, tls_, tls_error_);
        }
    }
}

RemoteLink::~RemoteLink() = default;

uint64_t RemoteLink::now() const {
    uint64_t t = 0;
    sd_event_now(event_, CLOCK_MONOTONIC, &t);
    return t;
}

void RemoteLink::aim(std::size_t i) {
    const Address& a = masters_[i];
    master_ = a.text;
    host_ = a.host;
    port_ = a.port;
}

int RemoteLink::start(const std::function<int(sd_bus*)>& export_objects) {
    for (const auto& a : masters_) {
        if (a.port == 0) {
            log::error("invalid master address '{}'", a.text);
            return -EINVAL;
        }
    }
    if (!tls_error_.empty()) {
        log::error("{}", tls_error_);
        return -EINVAL;
    }
    if (!tls_) {
        std::string list;
        for (const auto& a : masters_) {
            list += (list.empty() ? "" : ", ") + a.text;
        }
        log::warning("tls = no: talking to the master{} at {} over plain TCP, readable and changeable on the way",
                     masters_.size() > 1 ? "s" : "", list);
    }
    export_objects_ = export_objects;
    sd_event_source* s = nullptr;
    int r = sd_event_add_defer(event_, &s, on_reap, this);
    if (r < 0) {
        log::error("cannot add an event source: {}", std::strerror(-r));
        return r;
    }
    reaper_.reset(s);
    sd_event_source_set_enabled(s, SD_EVENT_OFF);
    connect();
    return 0;
}

void RemoteLink::set_state(State s) {
    state_ = s;
    if (events_.state_changed) {
        events_.state_changed();
    }
}

bool RemoteLink::open_tunnel(Fd& bus_fd, std::string& why) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* res = nullptr;
    const std::string port = std::to_string(port_);
    if (int g = getaddrinfo(host_.c_str(), port.c_str(), &hints, &res); g != 0) {
        why = fmt::format("cannot resolve the master at {}: {}", master_, gai_strerror(g));
        return false;
    }
    std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> owned(res, freeaddrinfo);
    Fd fd(socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd || (::connect(fd.get(), res->ai_addr, res->ai_addrlen) < 0 && errno != EINPROGRESS)) {
        why = fmt::format("cannot connect to the master at {}: {}", master_, std::strerror(errno));
        return false;
    }
    int one = 1;
    setsockopt(fd.get(), SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    // Whole messages per write: see the master's side (remote.cpp).
    setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    tls::Tunnel::Events events{
        .established = [this] { established(); },
        .failed =
            [this](const std::string& e) {
                constexpr std::string_view refused = "cannot connect: ";
                lost(e.starts_with(refused)
                         ? fmt::format("cannot connect to the master at {}: {}", master_, e.substr(refused.size()))
                         : fmt::format("the connection to the master at {}: {}", master_, e));
            },
    };
    if (!reactor_ && !(reactor_ = Reactor::create(event_, reactor_tick_usec, why))) {
        return false;
    }
    tunnel_ = tls::Tunnel::create(*reactor_, std::move(fd), tls_, false, host_, std::move(events), bus_fd, why);
    return tunnel_ != nullptr;
}

void RemoteLink::connect() {
    retry_timer_.reset();
    if (closing_) {
        return;
    }
    bury_bus();
    Fd bus_fd;
    std::string why;
    if (!open_tunnel(bus_fd, why)) {
        lost(why);
        return;
    }
    sd_bus* b = nullptr;
    int r = sd_bus_new(&b);
    bus_.reset(b);
    if (r >= 0) r = sd_bus_set_fd(b, bus_fd.get(), bus_fd.get());
    if (r >= 0) bus_fd.release();  // the bus closes it now
    if (r >= 0) r = sd_bus_negotiate_fds(b, 0);
    if (r >= 0) r = sd_bus_set_anonymous(b, 1);
    if (r >= 0) r = sd_bus_set_description(b, "master");
    if (r >= 0) r = sd_bus_attach_event(b, event_, SD_EVENT_PRIORITY_NORMAL);
    sd_bus_slot* slot = nullptr;
    if (r >= 0) r = sd_bus_add_filter(b, &slot, on_filter, this);
    if (r >= 0) filter_slot_.reset(slot);
    if (r >= 0 && export_objects_) r = export_objects_(b);
    if (r >= 0) r = sd_bus_start(b);
    if (r < 0) {
        lost(fmt::format("cannot connect to the master at {}: {}", master_, std::strerror(-r)));
        return;
    }
    last_heard_ = now();
    connect_started_ = now();
    answered_ = false;
    set_state(State::attaching);
    arm_handshake_check();
}

// Every message counts as word from the master; the end of the connection
// is a loss.
int RemoteLink::on_filter(sd_bus_message* m, void* userdata, sd_bus_error*) {
    auto* self = static_cast<RemoteLink*>(userdata);
    if (sd_bus_message_get_bus(m) != self->bus_.get()) {
        return 0;
    }
    if (sd_bus_message_is_signal(m, "org.freedesktop.DBus.Local", "Disconnected") > 0) {
        self->lost(fmt::format("the connection to the master at {} closed", self->master_));
        return 1;
    }
    self->last_heard_ = self->now();
    return 0;
}

int RemoteLink::set_keepalive(uint64_t interval) {
    if (state() != State::attached) {
        return -ENOTCONN;
    }
    keepalive_interval_ = interval;
    last_heard_ = now();  // the call itself is word from the master
    log::write(log::Level::info,
               fmt::format("the master at {} now sends a keepalive every {}", master_,
                           interval ? std::to_string(interval) + " s" : std::string("never")),
               {{"BUILDYARD_WORKER", name_}});
    arm_silence_check();
    return 0;
}

void RemoteLink::arm_silence_check() {
    silence_timer_.reset();
    if (keepalive_interval_ == 0) {
        return;
    }
    sd_event_source* s = nullptr;
    const uint64_t at = last_heard_ + 2 * keepalive_interval_ * 1'000'000;
    if (sd_event_add_time(event_, &s, CLOCK_MONOTONIC, at, 100'000, on_silence_check, this) >= 0) {
        silence_timer_.reset(s);
    }
}

int RemoteLink::on_silence_check(sd_event_source*, uint64_t, void* userdata) {
    auto* self = static_cast<RemoteLink*>(userdata);
    const uint64_t limit = 2 * self->keepalive_interval_ * 1'000'000;
    if (self->now() - self->last_heard_ >= limit) {
        self->lost(fmt::format("heard nothing from the master at {} for {} s", self->master_, limit / 1'000'000));
    } else {
        self->arm_silence_check();
    }
    return 0;
}

void RemoteLink::bury_bus() {
    filter_slot_.reset();
    call_slot_.reset();
    handshake_timer_.reset();
    if (bus_ || tunnel_) {
        // A bus buried earlier in this iteration goes now: it is not in a
        // callback of its own any more.
        dead_bus_ = std::move(bus_);
        dead_tunnel_ = std::move(tunnel_);
        if (reaper_) {
            sd_event_source_set_enabled(reaper_.get(), SD_EVENT_ONESHOT);
        }
    }
}

int RemoteLink::on_reap(sd_event_source*, void* userdata) {
    auto* self = static_cast<RemoteLink*>(userdata);
    self->dead_bus_.reset();
    self->dead_tunnel_.reset();
    return 0;
}

void RemoteLink::lost(const std::string& why) {
    const bool was_attached = state_ == State::attached;
    silence_timer_.reset();
    bury_bus();
    if (closing_) {
        set_state(State::idle);
        if (was_attached && events_.master_lost) {
            events_.master_lost();
        }
        return;
    }
    retry(why, choice_.failed(now(), false), false);
    if (was_attached && events_.master_lost) {
        events_.master_lost();  // our builds are the master's to rerun now
    }
}

void RemoteLink::retry(const std::string& why, const MasterChoice::Next& next, bool refused) {
    const std::string from = master_;
    aim(next.master);
    const uint64_t t = now();
    const double wait = next.at > t ? (next.at - t) / 1e6 : 0.0;
    log::write(refused ? log::Level::err : log::Level::warning,
               from == master_ ? fmt::format("{}; connecting again in {:.1f} s", why, wait)
                               : fmt::format("{}; trying the master at {} in {:.1f} s", why, master_, wait),
               {{"BUILDYARD_WORKER", name_}});
    sd_event_source* s = nullptr;
    if (sd_event_add_time(event_, &s, CLOCK_MONOTONIC, next.at, 10'000, on_retry, this) >= 0) {
        retry_timer_.reset(s);
    }
    set_state(State::waiting);
}

int RemoteLink::on_retry(sd_event_source*, uint64_t, void* userdata) {
    static_cast<RemoteLink*>(userdata)->connect();
    return 0;
}

bool RemoteLink::from_master(sd_bus_message* m) const {
    return state_ == State::attached && bus_ && sd_bus_message_get_bus(m) == bus_.get();
}

int RemoteLink::step_started(uint64_t build, unsigned step) {
    return state_ == State::attached ? reports::step_started(bus_.get(), nullptr, build, step) : -ENOTCONN;
}

int RemoteLink::output(uint64_t build, std::string_view data) {
    return state_ == State::attached ? reports::output(bus_.get(), nullptr, build, data) : -ENOTCONN;
}

int RemoteLink::build_done(uint64_t build, const std::string& result, int exit_status, const BuildUsage& usage) {
    return state_ == State::attached ? reports::build_done(bus_.get(), nullptr, build, result, exit_status, usage)
                                     : -ENOTCONN;
}

int RemoteLink::request_shutdown() {
    return state_ == State::attached ? reports::shutdown_gracefully(bus_.get(), nullptr) : -ENOTCONN;
}

int RemoteLink::detach(const std::string& reason) {
    closing_ = true;  // the worker is on its way out
    retry_timer_.reset();
    if (state_ != State::attached) {
        return 0;
    }
    sd_bus_message* raw = nullptr;
    int r = sd_bus_message_new_method_call(bus_.get(), &raw, nullptr, bus::master_path, bus::link_iface, "Detach");
    MessagePtr m(raw);
    if (r >= 0) r = sd_bus_message_append(raw, "s", reason.c_str());
    // Detach waits here, inside a handler of the loop, and sd_bus_call
    // blocks where the loop cannot move the call's bytes through the
    // tunnel: for the length of the call a thread drives the tunnel's
    // Reactor (the tunnel and its descriptors, nothing else), and a failing
    // tunnel only closes, which ends the call.
    BusError error;
    sd_bus_message* reply_raw = nullptr;
    if (r >= 0) {
        tunnel_->quiet();
        std::atomic<bool> called{false};
        std::thread pump([this, &called] {
            while (!called.load()) {
                reactor_->poll(20'000);
            }
        });
        r = sd_bus_call(bus_.get(), raw, detach_timeout_usec, error.get(), &reply_raw);
        called = true;
        pump.join();
    }
    MessagePtr reply(reply_raw);
    if (r < 0) {
        log::write(log::Level::warning,
                   fmt::format("Detach from the master at {} failed: {}", master_,
                               error.is_set() ? error_text(error.get()) : std::strerror(-r)),
                   {{"BUILDYARD_WORKER", name_}});
    }
    silence_timer_.reset();
    bury_bus();
    set_state(State::idle);
    return r;
}

void RemoteLink::close() {
    closing_ = true;
    retry_timer_.reset();
}

uint64_t RemoteLink::queued_writes() const {
    uint64_t n = 0;
    if (bus_) {
        sd_bus_get_n_queued_write(bus_.get(), &n);
    }
    return n;
}

}  // namespace by::worker
