// remote-client: a raw D-Bus peer on the master's TCP port, for tests and
// bench/remote. It speaks the Handshake1 protocol by hand so that tests can
// do what buildyard-workerd never does.
//
//   remote-client HOST:PORT call IFACE METHOD   call before authenticating; prints "ok" or the error name
//   remote-client HOST:PORT login NAME PASSWORD authenticate, then call WorkerLink1.StepStarted; prints both
//   remote-client HOST:PORT hello NAME          Hello only, then wait; prints how long until the master closed
//                                               the connection, counted from before connecting
//   remote-client HOST:PORT swarm N PREFIX PASSWORD
//                                               hold N workers PREFIX1..PREFIXN attached, answering Ping,
//                                               reconnecting when dropped; prints "attached K at T" on changes
//                                               and "StartBuild NAME ID ERROR" for each build it is given.
//                                               Members refuse builds with org.buildyard.Error.Busy; with
//                                               REMOTE_CLIENT_FIRST_START_ERROR=ERROR each member's first
//                                               StartBuild gets that error instead (a transport failure,
//                                               as the master sees it, when ERROR is not org.buildyard.*)
//
// It speaks TLS 1.3 as the worker does (accepting any certificate: it tests
// the master, not the master's identity), or plain TCP with BUILDYARD_TLS=no.
#include <chrono>
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <future>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <unistd.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "common/backoff.hpp"
#include "common/bus.hpp"
#include "common/config.hpp"
#include "common/crypto.hpp"
#include "common/raii.hpp"
#include "common/tls.hpp"

using namespace by;

namespace {

constexpr const char* hs = "org.buildyard.Handshake1";

// The TLS context every connection shares; null with BUILDYARD_TLS=no.
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

// A connected TCP socket to HOST:PORT, non-blocking.
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
    // Where to connect from (127.0.0.2 and up are all loopback, as many
    // hosts would be): REMOTE_CLIENT_BIND=ADDRESS, or REMOTE_CLIENT_SOURCES=N
    // for 127.0.0.1 to 127.0.0.N in turn, so that a swarm passes the
    // master's limit of 256 unauthenticated connections per address.
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

// sd-bus on the end of a tunnel, driven by `driver` from `reactor` when
// given (else by whoever calls it synchronously).
int open_bus(Fd bus_fd, PeerBusPtr& out, Reactor* reactor = nullptr, ReactorBus* driver = nullptr,
             std::function<void(int)> failed = nullptr) {
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

// For the synchronous modes: the tunnel runs in a thread of its own, so
// that sd_bus_call can block. `binding` is the TLS session's tls-exporter.
int open_peer(const std::string& hostport, PeerBusPtr& out, crypto::Bytes& binding) {
    Fd tcp;
    int r = tcp_connect(hostport, tcp);
    if (r < 0) return r;
    auto* event = new sd_event*(nullptr);
    sd_event_new(event);
    auto ready = std::make_shared<std::promise<std::pair<bool, crypto::Bytes>>>();
    auto tunnel = std::make_shared<std::unique_ptr<tls::Tunnel>>();
    Fd bus_fd;
    std::string error;
    tls::Tunnel::Events events{
        .established = [ready, tunnel] { ready->set_value({true, (*tunnel)->channel_binding()}); },
        .failed =
            [ready](const std::string& why) {
                std::fprintf(stderr, "tunnel: %s\n", why.c_str());
                try {
                    ready->set_value({false, {}});
                } catch (const std::future_error&) {
                }
            },
    };
    std::shared_ptr<Reactor> reactor = Reactor::create(*event, 1'000'000, error);
    if (reactor) {
        *tunnel = tls::Tunnel::create(*reactor, std::move(tcp), client_context(), false, "", std::move(events), bus_fd,
                                      error);
    }
    if (!*tunnel) {
        std::fprintf(stderr, "%s\n", error.c_str());
        return -EIO;
    }
    // Never joined: the process ends with _exit, the thread with it.
    std::thread([event, reactor, tunnel] { sd_event_loop(*event); }).detach();
    auto [ok, b] = ready->get_future().get();
    if (!ok) return -ECONNRESET;
    binding = std::move(b);
    return open_bus(std::move(bus_fd), out);
}

std::string result_of(int r, const BusError& e) {
    if (r >= 0) return "ok";
    return e.is_set() ? e.name() : std::string("errno:") + std::strerror(-r);
}

// Hello + Authenticate, synchronously. Returns "ok" or an error name.
std::string login(sd_bus* b, const std::string& name, const std::string& password, const crypto::Bytes& cb) {
    auto wn = crypto::random_bytes(32);
    sd_bus_message* raw = nullptr;
    sd_bus_message_new_method_call(b, &raw, nullptr, bus::master_path, hs, "Hello");
    MessagePtr m(raw);
    sd_bus_message_append(raw, "s", name.c_str());
    sd_bus_message_append_array(raw, 'y', wn.data(), wn.size());
    sd_bus_message_append_array(raw, 'y', cb.data(), cb.size());
    BusError e;
    sd_bus_message* reply = nullptr;
    int r = sd_bus_call(b, raw, 30'000'000, e.get(), &reply);
    MessagePtr rp(reply);
    if (r < 0) return result_of(r, e);
    const void* p = nullptr;
    size_t n = 0;
    sd_bus_message_read_array(reply, 'y', &p, &n);
    crypto::Bytes mn(static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n);
    auto proof = crypto::worker_proof(password, name, mn, wn, cb);
    sd_bus_message_new_method_call(b, &raw, nullptr, bus::master_path, hs, "Authenticate");
    MessagePtr a(raw);
    sd_bus_message_append_array(raw, 'y', proof.data(), proof.size());
    bus::append_string_map(raw, {{"host", "remote-client"}});
    BusError e2;
    reply = nullptr;
    r = sd_bus_call(b, raw, 30'000'000, e2.get(), &reply);
    MessagePtr rp2(reply);
    if (r < 0) return result_of(r, e2);
    sd_bus_message_read_array(reply, 'y', &p, &n);
    if (!crypto::master_proof_valid(password, name, wn, mn, cb, {static_cast<const uint8_t*>(p), n})) {
        return "bad-master-proof";
    }
    return "ok";
}

int method_ping(sd_bus_message* m, void*, sd_bus_error*) { return sd_bus_reply_method_return(m, nullptr); }
int method_refuse(sd_bus_message*, void*, sd_bus_error* e) {
    return sd_bus_error_set(e, bus::error::Busy, "remote-client runs no builds");
}
int method_start_build(sd_bus_message* m, void* userdata, sd_bus_error* e);

const sd_bus_vtable agent_vtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_METHOD("StartBuild", "tsasa{ss}a{ss}", "", method_start_build, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD("CancelBuild", "t", "", method_refuse, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD("Ping", "", "", method_ping, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD("Stop", "s", "", method_refuse, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_VTABLE_END,
};

double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// --- swarm ----------------------------------------------------------------

struct Swarm;

struct Member {
    Swarm* swarm = nullptr;
    std::string name;
    std::unique_ptr<tls::Tunnel> tunnel;
    PeerBusPtr bus;
    ReactorBus driver;  // after bus: stops driving it first
    SlotPtr filter, agent, call;
    SourcePtr retry;
    crypto::Bytes wn, mn, cb;
    bool attached = false;
    unsigned attempts = 0;
    unsigned builds_given = 0;
};

struct Swarm {
    sd_event* event = nullptr;
    std::unique_ptr<Reactor> reactor;  // first: outlives every member's tunnel and bus
    std::string hostport, password;
    std::vector<std::unique_ptr<Member>> members;
    std::vector<PeerBusPtr> dead;
    std::vector<std::unique_ptr<tls::Tunnel>> dead_tunnels;
    SourcePtr reaper;
    size_t attached = 0;
    std::mt19937_64 random{std::random_device{}()};
    void report() { std::printf("attached %zu at %.3f\n", attached, now_s()), std::fflush(stdout); }
};

void connect_member(Member& mb);

int method_start_build(sd_bus_message* m, void* userdata, sd_bus_error* e) {
    auto& mb = *static_cast<Member*>(userdata);
    uint64_t id = 0;
    sd_bus_message_read(m, "t", &id);
    const char* first = std::getenv("REMOTE_CLIENT_FIRST_START_ERROR");
    const bool transport = first && *first && mb.builds_given++ == 0;
    const char* error = transport ? first : bus::error::Busy;
    std::printf("StartBuild %s %llu %s\n", mb.name.c_str(), static_cast<unsigned long long>(id), error);
    std::fflush(stdout);
    return sd_bus_error_set(e, error, transport ? "remote-client: a failure on the way" : "remote-client runs no builds");
}

int on_reap(sd_event_source*, void* u) {
    static_cast<Swarm*>(u)->dead.clear();
    static_cast<Swarm*>(u)->dead_tunnels.clear();
    return 0;
}

void lose(Member& mb) {
    Swarm& s = *mb.swarm;
    if (mb.attached) {
        mb.attached = false;
        --s.attached;
        s.report();
    }
    mb.call.reset();
    mb.filter.reset();
    mb.agent.reset();
    mb.driver.detach();
    if (mb.bus || mb.tunnel) {
        s.dead.push_back(std::move(mb.bus));
        s.dead_tunnels.push_back(std::move(mb.tunnel));
        sd_event_source_set_enabled(s.reaper.get(), SD_EVENT_ONESHOT);
    }
    // buildyard-workerd's policy, with its default reconnect_max.
    const uint64_t delay = reconnect_delay_usec(mb.attempts, 60, s.random);
    mb.attempts = std::min(mb.attempts + 1, 40u);
    sd_event_source* t = nullptr;
    sd_event_add_time_relative(s.event, &t, CLOCK_MONOTONIC, delay, 1000,
                               [](sd_event_source*, uint64_t, void* u) {
                                   connect_member(*static_cast<Member*>(u));
                                   return 0;
                               },
                               &mb);
    mb.retry.reset(t);
}

int on_auth(sd_bus_message* m, void* u, sd_bus_error*) {
    auto& mb = *static_cast<Member*>(u);
    mb.call.reset();
    if (sd_bus_message_is_method_error(m, nullptr)) {
        lose(mb);
        return 0;
    }
    mb.attached = true;
    mb.attempts = 0;
    ++mb.swarm->attached;
    mb.swarm->report();
    return 0;
}

int on_hello(sd_bus_message* m, void* u, sd_bus_error*) {
    auto& mb = *static_cast<Member*>(u);
    mb.call.reset();
    const void* p = nullptr;
    size_t n = 0;
    if (sd_bus_message_is_method_error(m, nullptr) || sd_bus_message_read_array(m, 'y', &p, &n) < 0) {
        lose(mb);
        return 0;
    }
    mb.mn.assign(static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n);
    auto proof = crypto::worker_proof(mb.swarm->password, mb.name, mb.mn, mb.wn, mb.cb);
    sd_bus_message* raw = nullptr;
    sd_bus_message_new_method_call(mb.bus.get(), &raw, nullptr, bus::master_path, hs, "Authenticate");
    MessagePtr a(raw);
    sd_bus_message_append_array(raw, 'y', proof.data(), proof.size());
    bus::append_string_map(raw, {{"host", "swarm"}});
    sd_bus_slot* slot = nullptr;
    if (sd_bus_call_async(mb.bus.get(), &slot, raw, on_auth, &mb, 30'000'000) < 0) {
        lose(mb);
        return 0;
    }
    mb.call.reset(slot);
    return 0;
}

int on_member_message(sd_bus_message* m, void* u, sd_bus_error*) {
    auto& mb = *static_cast<Member*>(u);
    if (sd_bus_message_get_bus(m) == mb.bus.get() &&
        sd_bus_message_is_signal(m, "org.freedesktop.DBus.Local", "Disconnected") > 0) {
        lose(mb);
        return 1;
    }
    return 0;
}

void say_hello(Member& mb) {
    mb.cb = mb.tunnel->channel_binding();
    mb.wn = crypto::random_bytes(32);
    sd_bus_message* raw = nullptr;
    sd_bus_message_new_method_call(mb.bus.get(), &raw, nullptr, bus::master_path, hs, "Hello");
    MessagePtr h(raw);
    sd_bus_message_append(raw, "s", mb.name.c_str());
    sd_bus_message_append_array(raw, 'y', mb.wn.data(), mb.wn.size());
    sd_bus_message_append_array(raw, 'y', mb.cb.data(), mb.cb.size());
    sd_bus_slot* slot = nullptr;
    if (sd_bus_call_async(mb.bus.get(), &slot, raw, on_hello, &mb, 30'000'000) < 0) {
        lose(mb);
        return;
    }
    mb.call.reset(slot);
}

void connect_member(Member& mb) {
    mb.retry.reset();
    Swarm& s = *mb.swarm;
    Fd tcp, bus_fd;
    std::string error;
    if (tcp_connect(s.hostport, tcp) < 0) {
        lose(mb);
        return;
    }
    mb.tunnel = tls::Tunnel::create(*s.reactor, std::move(tcp), client_context(), false, "",
                                    {.established = [&mb] { say_hello(mb); }, .failed = [&mb](const std::string&) {
                                         lose(mb);
                                     }},
                                    bus_fd, error);
    if (!mb.tunnel || open_bus(std::move(bus_fd), mb.bus, s.reactor.get(), &mb.driver, [&mb](int) { lose(mb); }) < 0) {
        lose(mb);
        return;
    }
    sd_bus_slot* slot = nullptr;
    sd_bus_add_filter(mb.bus.get(), &slot, on_member_message, &mb);
    mb.filter.reset(slot);
    sd_bus_add_object_vtable(mb.bus.get(), &slot, bus::agent_path, bus::agent_iface, agent_vtable, &mb);
    mb.agent.reset(slot);
}

int swarm(const std::string& hostport, int n, const std::string& prefix, const std::string& password) {
    sd_event* e = nullptr;
    sd_event_default(&e);
    EventPtr event(e);
    Swarm s;
    s.event = e;
    std::string error;
    s.reactor = Reactor::create(e, 250'000, error);
    if (!s.reactor) {
        std::fprintf(stderr, "remote-client: %s\n", error.c_str());
        return 1;
    }
    s.hostport = hostport;
    s.password = password;
    sd_event_source* src = nullptr;
    sd_event_add_defer(e, &src, on_reap, &s);
    s.reaper.reset(src);
    sd_event_source_set_enabled(src, SD_EVENT_OFF);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, nullptr);
    sd_event_add_signal(e, nullptr, SIGTERM, nullptr, nullptr);
    sd_event_add_signal(e, nullptr, SIGINT, nullptr, nullptr);
    for (int i = 1; i <= n; ++i) {
        auto mb = std::make_unique<Member>();
        mb->swarm = &s;
        mb->name = prefix + std::to_string(i);
        s.members.push_back(std::move(mb));
    }
    std::printf("start at %.3f\n", now_s());
    for (auto& mb : s.members) {
        connect_member(*mb);
    }
    int r = sd_event_loop(e);
    s.members.clear();
    s.dead.clear();
    return r < 0 ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: see the comment at the top of remote_client.cpp\n");
        return 2;
    }
    const std::string hostport = argv[1];
    const std::string mode = argv[2];
    if (mode == "swarm" && argc == 6) {
        return swarm(hostport, std::atoi(argv[3]), argv[4], argv[5]);
    }
    PeerBusPtr b;
    crypto::Bytes cb;
    const double connecting = now_s();  // the master's deadlines count from its accept
    int r = open_peer(hostport, b, cb);
    if (r < 0) {
        std::printf("connect-failed %s\n", std::strerror(-r));
        std::fflush(stdout);
        _exit(1);
    }
    if (mode == "call" && argc == 5) {
        BusError e;
        sd_bus_message* reply = nullptr;
        r = sd_bus_call_method(b.get(), nullptr, bus::master_path, argv[3], argv[4], e.get(), &reply, "");
        MessagePtr rp(reply);
        std::printf("%s\n", result_of(r, e).c_str());
        std::fflush(stdout);
        _exit(0);
    }
    if (mode == "login" && argc == 5) {
        std::string res = login(b.get(), argv[3], argv[4], cb);
        std::printf("%s\n", res.c_str());
        if (res == "ok") {
            BusError e;
            r = sd_bus_call_method(b.get(), nullptr, bus::master_path, bus::link_iface, "StepStarted", e.get(),
                                   nullptr, "tu", uint64_t{999999}, uint32_t{1});
            std::printf("StepStarted %s\n", result_of(r, e).c_str());
            BusError e2;
            r = sd_bus_call_method(b.get(), nullptr, bus::master_path, bus::link_iface, "Attach", e2.get(), nullptr,
                                   "sa{ss}", argv[3], 0);
            std::printf("Attach %s\n", result_of(r, e2).c_str());
        }
        std::fflush(stdout);
        _exit(0);
    }
    if (mode == "hello" && argc == 4) {
        auto wn = crypto::random_bytes(32);
        sd_bus_message* raw = nullptr;
        sd_bus_message_new_method_call(b.get(), &raw, nullptr, bus::master_path, hs, "Hello");
        MessagePtr m(raw);
        sd_bus_message_append(raw, "s", argv[3]);
        sd_bus_message_append_array(raw, 'y', wn.data(), wn.size());
        sd_bus_message_append_array(raw, 'y', cb.data(), cb.size());
        BusError e;
        sd_bus_message* reply = nullptr;
        r = sd_bus_call(b.get(), raw, 30'000'000, e.get(), &reply);
        MessagePtr rp(reply);
        std::printf("hello %s\n", result_of(r, e).c_str());
        std::fflush(stdout);
        for (;;) {
            r = sd_bus_process(b.get(), nullptr);
            if (r < 0) break;
            if (r > 0) continue;
            if (sd_bus_wait(b.get(), UINT64_MAX) < 0) break;
        }
        std::printf("closed after %.1f s\n", now_s() - connecting);
        std::fflush(stdout);
        _exit(0);
    }
    std::fprintf(stderr, "usage: see the comment at the top of remote_client.cpp\n");
    return 2;
}
