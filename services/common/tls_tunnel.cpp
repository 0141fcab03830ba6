// The pump between a TCP socket and sd-bus (tls.hpp): each direction moves
// at most what the receiving socket takes, so a slow reader holds the
// writer back instead of making us buffer.
#include <arpa/inet.h>
#include <cerrno>
#include <cstring>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <fmt/format.h>

#include "common/tls.hpp"
#include "common/tls_api.hpp"

namespace by::tls {

namespace {

constexpr size_t chunk = 16 * 1024;  // one TLS record

bool is_ip_literal(const std::string& host) {
    unsigned char buf[sizeof(in6_addr)];
    return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

}  // namespace

std::unique_ptr<Tunnel> Tunnel::create(Reactor& reactor, Fd tcp, const SharedCtx& ctx, bool server,
                                       const std::string& host, Events events, Fd& bus_fd, std::string& error) {
    std::unique_ptr<Tunnel> t(new Tunnel());
    t->events_ = std::move(events);
    t->server_ = server;
    t->net_ = std::move(tcp);
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair) < 0) {
        error = fmt::format("cannot create a socket pair: {}", std::strerror(errno));
        return nullptr;
    }
    t->bus_.reset(pair[0]);
    Fd theirs(pair[1]);
    if (ctx) {
        if (!tls_loaded(error)) {
            return nullptr;
        }
        t->ctx_ = ctx;
        t->ssl_ = SSL_new(ctx.get());
        if (!t->ssl_ || SSL_set_fd(t->ssl_, t->net_.get()) != 1) {
            error = "cannot create a TLS session";
            ERR_clear_error();
            return nullptr;
        }
        if (server) {
            SSL_set_accept_state(t->ssl_);
        } else {
            SSL_set_connect_state(t->ssl_);
            if (is_ip_literal(host)) {
                X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl_), host.c_str());
            } else if (!host.empty()) {
                SSL_set_tlsext_host_name(t->ssl_, host.c_str());
                SSL_set1_host(t->ssl_, host.c_str());
            }
        }
    }
    // Both ends edge-triggered: each event moves all it can, so the next
    // edge is the one that brings more.
    int r = reactor.watch(t->net_.get(), EPOLLIN | EPOLLOUT, false,
                          [p = t.get()](uint32_t events) { p->pump(Side::net, events); }, t->net_watch_);
    if (r < 0) {
        error = fmt::format("cannot watch the socket: {}", std::strerror(-r));
        return nullptr;
    }
    r = reactor.watch(t->bus_.get(), EPOLLIN | EPOLLOUT, false,
                      [p = t.get()](uint32_t events) { p->pump(Side::bus, events); }, t->bus_watch_);
    if (r < 0) {
        error = fmt::format("cannot watch the socket pair: {}", std::strerror(-r));
        return nullptr;
    }
    bus_fd = std::move(theirs);
    return t;
}

Tunnel::~Tunnel() {
    net_watch_.reset();
    bus_watch_.reset();
    if (ssl_) {
        SSL_free(ssl_);
    }
}

std::vector<uint8_t> Tunnel::channel_binding() const {
    std::vector<uint8_t> out;
    if (!ssl_ || !established_) {
        return out;
    }
    static constexpr char label[] = "EXPORTER-Channel-Binding";
    out.resize(32);
    if (SSL_export_keying_material(ssl_, out.data(), out.size(), label, sizeof label - 1, nullptr, 0, 0) != 1) {
        ERR_clear_error();
        out.clear();
    }
    return out;
}

X509* Tunnel::peer_certificate() const {
    if (!ssl_) {
        return nullptr;
    }
    if (X509* c = SSL_get0_peer_certificate(ssl_)) {
        return c;
    }
    // A client whose verification failed has the chain, not the certificate.
    STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl_);
    return chain && sk_X509_num(chain) > 0 ? sk_X509_value(chain, 0) : nullptr;
}

std::string Tunnel::ssl_error(int ret) {
    const int e = SSL_get_error(ssl_, ret);
    if (e == SSL_ERROR_SYSCALL) {
        ERR_clear_error();
        return errno ? std::strerror(errno) : "the peer closed the connection";
    }
    std::string out;
    while (unsigned long code = ERR_get_error()) {
        const char* reason = ERR_reason_error_string(code);
        if (!out.empty()) out += "; ";
        out += reason ? reason : fmt::format("error {:#x}", code);
    }
    if (ssl_ && !server_ && SSL_get_verify_result(ssl_) != X509_V_OK) {
        out += fmt::format(" ({})", X509_verify_cert_error_string(SSL_get_verify_result(ssl_)));
    }
    return out.empty() ? "TLS error " + std::to_string(e) : out;
}

bool Tunnel::handshake() {
    if (!server_) {
        // A refused or failed connect() shows here, before TLS tries to write.
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(net_.get(), SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err != 0) {
            fail(std::string("cannot connect: ") + std::strerror(err));
            return false;
        }
    }
    if (!ssl_) {
        established_ = true;
        return true;
    }
    ERR_clear_error();
    errno = 0;
    const int r = SSL_do_handshake(ssl_);
    if (r == 1) {
        established_ = true;
        return true;
    }
    const int e = SSL_get_error(ssl_, r);
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
        std::string why = "TLS handshake failed: " + ssl_error(r);
        if (!server_) {
            if (const std::string fp = fingerprint(peer_certificate()); !fp.empty()) {
                why += "; it presented certificate " + fp;
            }
        }
        fail(why);
    }
    return false;
}

long Tunnel::net_read(char* buf, size_t n) {
    if (!ssl_) {
        const ssize_t got = ::recv(net_.get(), buf, n, 0);
        if (got > 0) return got;
        if (got < 0 && (errno == EAGAIN || errno == EINTR)) {
            return 0;
        }
        if (got < 0 && errno != ECONNRESET) {
            last_error_ = std::strerror(errno);
            return -2;
        }
        return -1;
    }
    ERR_clear_error();
    errno = 0;
    read_wants_write_ = false;
    const int got = SSL_read(ssl_, buf, static_cast<int>(n));
    if (got > 0) return got;
    switch (SSL_get_error(ssl_, got)) {
    case SSL_ERROR_WANT_READ: return 0;
    case SSL_ERROR_WANT_WRITE: read_wants_write_ = true; return 0;
    case SSL_ERROR_ZERO_RETURN: return -1;
    case SSL_ERROR_SYSCALL:
        ERR_clear_error();
        return -1;  // EOF or reset without close_notify: the peer is gone
    default: last_error_ = ssl_error(got); return -2;
    }
}

long Tunnel::net_write(const char* buf, size_t n) {
    if (!ssl_) {
        const ssize_t put = ::send(net_.get(), buf, n, MSG_NOSIGNAL);
        if (put >= 0) return put;
        if (errno == EAGAIN || errno == EINTR) {
            return 0;
        }
        last_error_ = std::strerror(errno);
        return -2;
    }
    ERR_clear_error();
    errno = 0;
    const int put = SSL_write(ssl_, buf, static_cast<int>(n));
    if (put > 0) return put;
    switch (SSL_get_error(ssl_, put)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE: return 0;
    default: last_error_ = ssl_error(put); return -2;
    }
}

// Peer -> sd-bus. False when the tunnel ended.
bool Tunnel::net_to_bus() {
    char buf[chunk];
    // A plain read that got less than it asked for emptied the socket, and
    // the next byte to arrive brings a new edge: no read just to hear EAGAIN.
    // (TLS hands over a record at a time, so there it says nothing.)
    bool drained = false;
    while (true) {
        while (to_bus_off_ < to_bus_.size()) {
            const ssize_t put = ::send(bus_.get(), to_bus_.data() + to_bus_off_, to_bus_.size() - to_bus_off_,
                                       MSG_NOSIGNAL);
            if (put < 0) {
                if (errno == EAGAIN || errno == EINTR) return true;  // sd-bus reads first
                close_quietly();  // sd-bus closed its end
                return false;
            }
            to_bus_off_ += static_cast<size_t>(put);
        }
        to_bus_.clear();
        to_bus_off_ = 0;
        if (drained && !net_eof_) return true;
        if (net_eof_) {
            close_quietly();  // everything the peer sent is with sd-bus now
            return false;
        }
        const long got = net_read(buf, sizeof buf);
        if (got == 0) return true;
        if (got == -2) {
            fail("connection error: " + last_error_);
            return false;
        }
        if (got < 0) {
            net_eof_ = true;
            continue;
        }
        inbound_total_ += static_cast<uint64_t>(got);
        if (inbound_limit_) {
            // Past the cap, or a message whose header declares more than the
            // cap leaves: refused before sd-bus sizes a buffer for its body.
            preauth_.feed(buf, static_cast<size_t>(got));
            if (preauth_.committed() > inbound_limit_) {
                fail(fmt::format("it sent more than {} KiB before authenticating{}", inbound_limit_ / 1024,
                                 preauth_.committed() > preauth_.fed()
                                     ? fmt::format(" (a D-Bus message of {} bytes at byte {})",
                                                   preauth_.message_length(), preauth_.message_start())
                                     : std::string()));
                return false;
            }
        }
        to_bus_.assign(buf, static_cast<size_t>(got));
        drained = !ssl_ && static_cast<size_t>(got) < sizeof buf;
    }
}

// sd-bus -> peer. False when the tunnel ended.
bool Tunnel::bus_to_net() {
    char buf[4 * chunk];
    bool drained = false;  // as in net_to_bus: the socket pair is plain
    while (true) {
        while (to_net_off_ < to_net_.size()) {
            const long put = net_write(to_net_.data() + to_net_off_, to_net_.size() - to_net_off_);
            if (put == 0) return true;
            if (put < 0) {
                fail("connection error: " + last_error_);
                return false;
            }
            to_net_off_ += static_cast<size_t>(put);
        }
        to_net_.clear();
        to_net_off_ = 0;
        if (drained) return true;
        const ssize_t got = ::recv(bus_.get(), buf, sizeof buf, 0);
        if (got > 0) {
            to_net_.assign(buf, static_cast<size_t>(got));
            drained = static_cast<size_t>(got) < sizeof buf;
            continue;
        }
        if (got < 0 && (errno == EAGAIN || errno == EINTR)) return true;
        // sd-bus closed its end: say goodbye to the peer and close.
        if (ssl_) {
            ERR_clear_error();
            SSL_shutdown(ssl_);
            ERR_clear_error();
        }
        close_quietly();
        return false;
    }
}

void Tunnel::flush() {
    if (!done_ && established_) {
        bus_to_net();
    }
}

void Tunnel::pump(Side side, uint32_t events) {
    if (done_) {
        return;
    }
    if (!established_) {
        if (!handshake()) {
            return;
        }
        if (events_.established) {
            events_.established();
            if (done_) return;
        }
        events = 0;  // then both ways, for whatever came with the handshake
    }
    // Only the way that the event concerns: epoll reports a writable socket
    // with every event, so EPOLLOUT alone says nothing, but bytes held for
    // a full socket (or a TLS read that must write first) do.
    constexpr uint32_t readable = EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP;
    const bool from_net = events == 0 || !to_bus_.empty() || read_wants_write_ ||
                          (side == Side::net && (events & readable));
    const bool to_net = events == 0 || !to_net_.empty() || (side == Side::bus && (events & readable));
    if (from_net && !net_to_bus()) {
        return;
    }
    if (to_net) {
        bus_to_net();
    }
}

void Tunnel::close_quietly() {
    done_ = true;
    net_watch_.reset();
    bus_watch_.reset();
    bus_.reset();
    net_.reset();
}

void Tunnel::fail(const std::string& why) {
    if (done_) {
        return;
    }
    close_quietly();
    if (events_.failed) {
        events_.failed(why);
    }
}

}  // namespace by::tls
