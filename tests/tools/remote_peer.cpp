#include "remote_peer.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <unistd.h>

#include <systemd/sd-bus.h>

#include "common/config.hpp"

using namespace by;

namespace remote_client {

const tls::SharedCtx& client_context() {
    static const tls::SharedCtx ctx = [] {
        tls::SharedCtx c;
        const char* mode = std::getenv("BUILDYARD_TLS");
        if (mode && std::strcmp(mode, "no") == 0) {
            return c;
        }
        std::string error;
        if (!tls::make_client_context({}, c, error)) {
            std::fprintf(stderr, "%s\n", error.c_str());
            std::exit(2);
        }
        return c;
    }();
    return ctx;
}

int tcp_connect(const std::string& hostport, Fd& out) {
    auto hp = config::parse_host_port(hostport);
    if (!hp) {
        std::fprintf(stderr, "bad address %s\n", hostport.c_str());
        std::exit(2);
    }
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    if (getaddrinfo(hp->host.c_str(), std::to_string(hp->port).c_str(), &hints, &res) != 0) {
        return -EHOSTUNREACH;
    }
    Fd fd(socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    // 127.0.0.2 and up are all loopback, as many hosts would be: a swarm
    // spread over them passes the master's limit of 256 unauthenticated
    // connections per address.
    std::string from;
    if (const char* bind_to = std::getenv("REMOTE_CLIENT_BIND")) {
        from = bind_to;
    } else if (const char* sources = std::getenv("REMOTE_CLIENT_SOURCES")) {
        static unsigned next = 0;
        from = "127.0.0." + std::to_string(1 + next++ % std::clamp(std::atoi(sources), 1, 254));
    }
    if (!from.empty() && fd && res->ai_family == AF_INET) {
        sockaddr_in local{};
        local.sin_family = AF_INET;
        if (inet_pton(AF_INET, from.c_str(), &local.sin_addr) != 1 ||
            ::bind(fd.get(), reinterpret_cast<sockaddr*>(&local), sizeof local) < 0) {
            std::fprintf(stderr, "cannot bind to %s\n", from.c_str());
            std::exit(2);
        }
    }
    int r = fd && ::connect(fd.get(), res->ai_addr, res->ai_addrlen) == 0 ? 0 : -errno;
    freeaddrinfo(res);
    if (r < 0) return r;
    int flags = fcntl(fd.get(), F_GETFL);
    fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK);
    out = std::move(fd);
    return 0;
}

int open_bus(Fd bus_fd, PeerBusPtr& out, Reactor* reactor, ReactorBus* driver, std::function<void(int)> failed) {
    sd_bus* b = nullptr;
    int r = sd_bus_new(&b);
    out.reset(b);
    if (r >= 0) r = sd_bus_set_fd(b, bus_fd.get(), bus_fd.get());
    if (r >= 0) bus_fd.release();
    if (r >= 0) r = sd_bus_negotiate_fds(b, 0);
    if (r >= 0) r = sd_bus_set_anonymous(b, 1);
    if (r >= 0) r = sd_bus_start(b);
    if (r >= 0 && reactor) r = driver->attach(*reactor, b, std::move(failed));
    return r;
}

double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace remote_client
