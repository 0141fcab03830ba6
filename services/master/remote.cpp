// The TCP listener for remote workers and the lifetime of their connections.
#include "master/remote.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <arpa/inet.h>
#include <fcntl.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>

#include "common/log.hpp"
#include "master/remote_connection.hpp"

namespace by::master {

namespace {

constexpr uint64_t accept_pause_usec = 1'000'000;
// Heap trimming a second after a storm of handshakes ended (on_trim).
constexpr uint64_t trim_delay_usec = 1'000'000;
// How late an sd-bus call timeout on a connection may be seen.
constexpr uint64_t reactor_tick_usec = 250'000;

// Raises the soft RLIMIT_NOFILE to the hard one (sd-event uses epoll, and
// nothing here select()s) and returns it.
uint64_t raise_nofile() {
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        return 1024;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rlimit raised = rl;
        raised.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0) {
            rl = raised;
        }
    }
    return rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : static_cast<uint64_t>(rl.rlim_cur);
}

// The test suite's knobs for the handshake's timeouts.

// "ADDRESS:PORT" ("[ADDRESS]:PORT" for IPv6) and the address alone.
void describe_peer(const sockaddr_storage& sa, std::string& peer, std::string& address) {
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (sa.ss_family == AF_INET) {
        const auto& in = reinterpret_cast<const sockaddr_in&>(sa);
        inet_ntop(AF_INET, &in.sin_addr, host, sizeof host);
        port = ntohs(in.sin_port);
        address = host;
        peer = fmt::format("{}:{}", host, port);
    } else if (sa.ss_family == AF_INET6) {
        const auto& in6 = reinterpret_cast<const sockaddr_in6&>(sa);
        inet_ntop(AF_INET6, &in6.sin6_addr, host, sizeof host);
        port = ntohs(in6.sin6_port);
        address = host;
        peer = fmt::format("[{}]:{}", host, port);
    } else {
        address = "local";
        peer = "local";
    }
}

int bind_listener(const std::string& listen, Fd& out, std::string& error) {
    auto hp = config::parse_host_port(listen);
    if (!hp) {
        error = "invalid listen address '" + listen + "'";
        return -EINVAL;
    }
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* res = nullptr;
    const std::string port = std::to_string(hp->port);
    int g = getaddrinfo(hp->host.c_str(), port.c_str(), &hints, &res);
    if (g != 0) {
        error = fmt::format("cannot resolve listen address {}: {}", listen, gai_strerror(g));
        return -EINVAL;
    }
    std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> owned(res, freeaddrinfo);
    int err = 0;
    for (addrinfo* ai = res; ai; ai = ai->ai_next) {
        Fd fd(socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        if (!fd) {
            err = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd.get(), ai->ai_addr, ai->ai_addrlen) < 0 || ::listen(fd.get(), SOMAXCONN) < 0) {
            err = errno;
            continue;
        }
        out = std::move(fd);
        return 0;
    }
    error = fmt::format("cannot listen on {}: {}", listen, std::strerror(err));
    return -err;
}

}  // namespace

Remote::Remote(sd_event* event, RemoteHost& host, Metrics& metrics, std::string state_directory, Timeouts timeouts)
    : event_(event),
      host_(host),
      metrics_(metrics),
      state_directory_(std::move(state_directory)),
      timeouts_(timeouts) {}

Remote::~Remote() {
    // The master is going away too: nothing is detached, just closed.
    connections_.clear();
    graveyard_.clear();
}

bool Remote::start(const std::string& listen, std::string& error) {
    sd_id128_randomize(&server_id_);
    // The HMAC key for unknown workers: random, so it matches nothing.
    auto key = crypto::random_bytes(crypto::nonce_size);
    if (key.empty()) {
        error = "cannot get random bytes for the handshake";
        return false;
    }
    dummy_key_.assign(key.begin(), key.end());

    sd_event_source* s = nullptr;
    int r = sd_event_add_defer(event_, &s, on_reap, this);
    if (r < 0) {
        error = std::string("cannot add an event source: ") + std::strerror(-r);
        return false;
    }
    reaper_.reset(s);
    sd_event_source_set_enabled(s, SD_EVENT_OFF);
    // sd-bus call timeouts on the connections are seen within a tick.
    reactor_ = Reactor::create(event_, reactor_tick_usec, error);
    if (!reactor_) {
        return false;
    }

    // Past the limit new connections are closed at once: a flood must not
    // take the descriptors of the store, the build logs and local workers.
    const uint64_t nofile = raise_nofile();
    connection_limit_ = ConnectionLimits::for_descriptors(nofile);
    log::info("at most {} remote connections (LimitNOFILE {}, {} kept for the rest)", connection_limit_, nofile,
              nofile - std::min<uint64_t>(nofile, ConnectionLimits::descriptors_per_connection * connection_limit_));

    int n = sd_listen_fds(1);
    if (n > 0) {
        if (n > 1) {
            log::warning("systemd passed {} sockets; listening on the first only", n);
        }
        listen_fd_.reset(SD_LISTEN_FDS_START);
        int flags = fcntl(listen_fd_.get(), F_GETFL);
        fcntl(listen_fd_.get(), F_SETFL, flags | O_NONBLOCK);
        activated_ = true;
        log::info("listening for remote workers on the socket systemd passed");
    } else if (listen.empty()) {
        log::info("not listening for remote workers (listen is empty)");
        return true;
    } else {
        if (bind_listener(listen, listen_fd_, error) < 0) {
            return false;
        }
        listen_ = listen;
        log::info("listening for remote workers on {}", listen);
    }
    if (r = watch_listener(); r < 0) {
        error = std::string("cannot watch the listening socket: ") + std::strerror(-r);
        return false;
    }
    return true;
}

int Remote::watch_listener() {
    sd_event_source* s = nullptr;
    int r = sd_event_add_io(event_, &s, listen_fd_.get(), EPOLLIN, on_accept, this);
    if (r >= 0) {
        listen_source_.reset(s);
    }
    return r;
}

void Remote::keepalives_changed() {
    for (auto& [id, c] : connections_) {
        c->keepalive_changed();
    }
}

void Remote::relisten(const std::string& listen) {
    if (activated_) {
        if (!listen.empty()) {
            log::info("listen = {} is not used: the socket unit passed the listening socket", listen);
        }
        return;
    }
    if (listen == listen_) {
        return;
    }
    if (listen.empty()) {
        accept_resume_.reset();
        listen_source_.reset();
        listen_fd_.reset();
        log::notice("no longer listening for remote workers on {} (listen is empty); open connections stay",
                    listen_);
        listen_.clear();
        return;
    }
    Fd fd;
    std::string error;
    if (bind_listener(listen, fd, error) < 0) {
        log::error("{}; {}", error,
                   listen_.empty() ? std::string("still not listening for remote workers")
                                   : "still listening on " + listen_);
        return;
    }
    // Bound before the old one closes: a worker reconnecting meanwhile finds one of them.
    Fd old_fd = std::move(listen_fd_);
    SourcePtr old_source = std::move(listen_source_);
    listen_fd_ = std::move(fd);
    if (int r = watch_listener(); r < 0) {
        log::error("cannot watch the listening socket on {}: {}; {}", listen, std::strerror(-r),
                   listen_.empty() ? std::string("still not listening") : "still listening on " + listen_);
        listen_fd_ = std::move(old_fd);
        listen_source_ = std::move(old_source);
        return;
    }
    accept_resume_.reset();
    log::notice("listening for remote workers on {}{}; open connections stay", listen,
                listen_.empty() ? std::string() : " instead of " + listen_);
    listen_ = listen;
}

int Remote::on_accept(sd_event_source*, int fd, uint32_t, void* userdata) {
    auto* self = static_cast<Remote*>(userdata);
    // A bounded batch per wakeup, so a flood of connects cannot starve the rest.
    for (int i = 0; i < 64; ++i) {
        sockaddr_storage sa{};
        socklen_t len = sizeof sa;
        Fd conn(accept4(fd, reinterpret_cast<sockaddr*>(&sa), &len, SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (!conn) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                log::warning("cannot accept remote connections: {}; pausing for a second", std::strerror(errno));
                sd_event_source_set_enabled(self->listen_source_.get(), SD_EVENT_OFF);
                sd_event_source* t = nullptr;
                if (sd_event_add_time_relative(self->event_, &t, CLOCK_MONOTONIC, accept_pause_usec, 0,
                                               on_accept_resume, self) >= 0) {
                    self->accept_resume_.reset(t);
                }
            }
            return 0;  // EAGAIN, or a connection that died before we took it
        }
        std::string peer, address;
        describe_peer(sa, peer, address);
        switch (ConnectionLimits::admit(self->connections_.size(), self->connection_limit_,
                                        self->census_.unauthenticated_from(address))) {
        case ConnectionLimits::Verdict::accept:
            break;
        case ConnectionLimits::Verdict::full:
            self->refused(fmt::format("refused a connection from {}: {} connections are open already", peer,
                                      self->connection_limit_));
            self->metrics_.remote_refused(RemoteRefusal::too_many_connections);
            continue;
        case ConnectionLimits::Verdict::address_full:
            self->refused(fmt::format("refused a connection from {}: {} connections from {} have not authenticated "
                                      "yet",
                                      peer, ConnectionLimits::max_unauthenticated_per_address, address));
            self->metrics_.remote_refused(RemoteRefusal::too_many_unauthenticated);
            continue;
        }
        int one = 1;
        setsockopt(conn.get(), SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
        // sd-bus writes whole messages; Nagle would hold a small reply back
        // until the peer's delayed ACK (~40 ms), capping remote throughput.
        setsockopt(conn.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        const uint64_t id = self->next_id_++;
        auto c = std::make_unique<Connection>(*self, id, std::move(conn), peer, address);
        int r = c->start(self->tls_);
        if (r < 0) {
            // Garbage already waiting can fail sd_bus_start itself.
            log::notice("connection tcp#{} from {} closed: {}", id, peer, std::strerror(-r));
            continue;
        }
        self->connections_.emplace(id, std::move(c));
    }
    return 0;
}

int Remote::on_accept_resume(sd_event_source*, uint64_t, void* userdata) {
    auto* self = static_cast<Remote*>(userdata);
    sd_event_source_set_enabled(self->listen_source_.get(), SD_EVENT_ON);
    return 0;
}

void Remote::phase_changed(const Connection& c, ConnectionPhase from, ConnectionPhase to) {
    if (census_.changed(c.address(), from, to) && !trim_timer_ && event_) {
        sd_event_source* s = nullptr;
        if (sd_event_add_time_relative(event_, &s, CLOCK_MONOTONIC, trim_delay_usec, 100'000, on_trim, this) >= 0) {
            trim_timer_.reset(s);
        }
    }
}

void Remote::refused(const std::string& line) {
    // One line per burst, not one per connection of a flood.
    uint64_t now = 0;
    sd_event_now(event_, CLOCK_MONOTONIC, &now);
    if (now >= refused_logged_at_ + 10'000'000 || refused_logged_at_ == 0) {
        log::warning("{}{}", line,
                     refused_since_log_ ? fmt::format(" ({} more refused since the last such line)", refused_since_log_)
                                        : std::string());
        refused_logged_at_ = now;
        refused_since_log_ = 0;
    } else {
        ++refused_since_log_;
    }
}

void Remote::bury(uint64_t id) {
    auto it = connections_.find(id);
    if (it == connections_.end()) {
        return;
    }
    graveyard_.push_back(std::move(it->second));
    connections_.erase(it);
    sd_event_source_set_enabled(reaper_.get(), SD_EVENT_ONESHOT);
}

int Remote::on_reap(sd_event_source*, void* userdata) {
    auto* self = static_cast<Remote*>(userdata);
    auto dead = std::move(self->graveyard_);
    self->graveyard_.clear();
    dead.clear();
    return 0;
}

// A storm of TLS handshakes leaves the heap full of holes where their
// buffers were (about 20 KiB a connection); glibc keeps them. Once a storm
// is over (no connection mid-handshake a second after the last one ended),
// hand them back. 2,000 TLS workers: 112 MiB of RSS before, 71 after.
int Remote::on_trim(sd_event_source*, uint64_t, void* userdata) {
    auto* self = static_cast<Remote*>(userdata);
    self->trim_timer_.reset();
    if (!self->census_.any_unauthenticated()) {
        self->census_.storm_handled();
        malloc_trim(0);
    }
    return 0;
}

void Remote::link_gone(const std::string& name) {
    if (census_.arbitrating() == 0) {
        return;  // nobody waits (the usual case: no walk over every connection)
    }
    // Collect first: waking one may bury others.
    std::vector<uint64_t> waiting;
    for (const auto& [id, c] : connections_) {
        if (c->phase() == Connection::Phase::arbitrating && c->worker() == name) {
            waiting.push_back(id);
        }
    }
    for (uint64_t id : waiting) {
        if (auto it = connections_.find(id); it != connections_.end()) {
            it->second->old_link_gone();
        }
    }
}

}  // namespace by::master
