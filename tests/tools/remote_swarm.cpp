#include "remote_swarm.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "common/backoff.hpp"
#include "common/bus.hpp"
#include "common/crypto.hpp"
#include "common/raii.hpp"
#include "remote_peer.hpp"

using namespace by;

namespace remote_client {

namespace {

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

// With REMOTE_CLIENT_RUN_BUILDS=1, a build "runs" at once: StartBuild is
// answered, its log gets "STAMP <realtime usec>" (when StartBuild arrived,
// for bench dispatch-client's latency) and it ends in success.
bool run_builds() {
    static const bool run = [] {
        const char* v = std::getenv("REMOTE_CLIENT_RUN_BUILDS");
        return v && std::strcmp(v, "1") == 0;
    }();
    return run;
}

int run_build(sd_bus_message* m, uint64_t id) {
    const std::string stamp = "STAMP " + std::to_string(bus::now_realtime_usec()) + "\n";
    sd_bus* b = sd_bus_message_get_bus(m);
    int r = sd_bus_reply_method_return(m, nullptr);
    sd_bus_message* raw = nullptr;
    if (r >= 0) r = sd_bus_message_new_method_call(b, &raw, nullptr, bus::master_path, bus::link_iface, "Output");
    MessagePtr out(raw);
    if (r >= 0) r = sd_bus_message_append(raw, "t", id);
    if (r >= 0) r = sd_bus_message_append_array(raw, 'y', stamp.data(), stamp.size());
    if (r >= 0) r = sd_bus_message_set_expect_reply(raw, 0);
    if (r >= 0) r = sd_bus_send(b, raw, nullptr);
    // BuildDone's reply is not awaited: a lost one shows in the master.
    if (r >= 0) r = sd_bus_message_new_method_call(b, &raw, nullptr, bus::master_path, bus::link_iface, "BuildDone");
    MessagePtr done(raw);
    if (r >= 0) r = sd_bus_message_append(raw, "tsia{st}", id, "success", 0, 0);
    if (r >= 0) r = sd_bus_message_set_expect_reply(raw, 0);
    if (r >= 0) r = sd_bus_send(b, raw, nullptr);
    if (r < 0) {
        std::fprintf(stderr, "remote-client: cannot report build %llu: %s\n", static_cast<unsigned long long>(id),
                     std::strerror(-r));
    }
    return r < 0 ? r : 1;
}

int method_start_build(sd_bus_message* m, void* userdata, sd_bus_error* e) {
    auto& mb = *static_cast<Member*>(userdata);
    uint64_t id = 0;
    sd_bus_message_read(m, "t", &id);
    if (run_builds()) {
        return run_build(m, id);
    }
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

}  // namespace

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
    // REMOTE_CLIENT_FIRST=M: PREFIXM..PREFIX(M+N-1), so that several
    // processes can share one master's workers.
    const char* first_env = std::getenv("REMOTE_CLIENT_FIRST");
    const int first = first_env ? std::max(1, std::atoi(first_env)) : 1;
    for (int i = first; i < first + n; ++i) {
        auto mb = std::make_unique<Member>();
        mb->swarm = &s;
        mb->name = prefix + std::to_string(i);
        s.members.push_back(std::move(mb));
    }
    std::printf("start at %.3f\n", now_s());
    std::fflush(stdout);
    for (auto& mb : s.members) {
        connect_member(*mb);
    }
    int r = sd_event_loop(e);
    s.members.clear();
    s.dead.clear();
    return r < 0 ? 1 : 0;
}


}  // namespace remote_client
