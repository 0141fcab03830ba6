// remote-client: a raw D-Bus peer on the master's TCP port, for tests and
// bench/remote. It speaks the Handshake1 protocol by hand so that tests can
// do what buildyard-workerd never does.
//
//   remote-client HOST:PORT call IFACE METHOD   call before authenticating; prints "ok" or the error name
//   remote-client HOST:PORT login NAME PASSWORD authenticate, then call WorkerLink1.StepStarted; prints both
//   remote-client HOST:PORT hello NAME          Hello only, then wait; prints how long until the master closed
//                                               the connection, counted from before connecting
//   remote-client HOST:PORT swarm N PREFIX PASSWORD
//                                               hold N workers PREFIX1..PREFIXN (REMOTE_CLIENT_FIRST=M:
//                                               PREFIXM..) attached, answering Ping,
//                                               reconnecting when dropped; prints "attached K at T" on changes
//                                               and "StartBuild NAME ID ERROR" for each build it is given.
//                                               Members refuse builds with org.buildyard.Error.Busy; with
//                                               REMOTE_CLIENT_FIRST_START_ERROR=ERROR each member's first
//                                               StartBuild gets that error instead (a transport failure,
//                                               as the master sees it, when ERROR is not org.buildyard.*).
//                                               With REMOTE_CLIENT_RUN_BUILDS=1 they run each build at
//                                               once instead: StartBuild is answered, the log gets
//                                               "STAMP <realtime usec>" and the build ends in success
//                                               (remote_swarm.cpp; bench/remote measures dispatch so)
//
// It speaks TLS 1.3 as the worker does (accepting any certificate: it tests
// the master, not the master's identity), or plain TCP with BUILDYARD_TLS=no.
#include <cstdio>
#include <cstring>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include <unistd.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "common/bus.hpp"
#include "common/crypto.hpp"
#include "common/raii.hpp"
#include "common/tls.hpp"
#include "remote_peer.hpp"
#include "remote_swarm.hpp"

using namespace by;
using namespace remote_client;

namespace {

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
