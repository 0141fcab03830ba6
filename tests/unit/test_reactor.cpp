// The Reactor and ReactorBus (common/reactor.hpp) on real sockets and a real
// sd-event loop: edge-triggered dispatch, watches dropped while a batch
// runs, again(), and sd-bus connections driven without sd_bus_attach_event.
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/raii.hpp"
#include "common/reactor.hpp"

using namespace by;

namespace {

struct Pair {
    Fd a, b;
    Pair() {
        int fds[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0) {
            a.reset(fds[0]);
            b.reset(fds[1]);
        }
    }
};

EventPtr new_event() {
    sd_event* e = nullptr;
    EXPECT_GE(sd_event_new(&e), 0);
    return EventPtr(e);
}

std::unique_ptr<Reactor> new_reactor(sd_event* e, uint64_t tick_usec = 50'000) {
    std::string error;
    auto r = Reactor::create(e, tick_usec, error);
    EXPECT_TRUE(r) << error;
    return r;
}

// Runs `e` until `done` or `seconds` pass; false on timeout.
template <typename F>
bool run_until(sd_event* e, F done, double seconds = 5) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        if (sd_event_run(e, 50'000) < 0) return false;
    }
    return true;
}

std::string drain(int fd) {
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) out.append(buf, size_t(n));
    return out;
}

TEST(Reactor, CallsTheHandlerOncePerEdge) {
    auto e = new_event();
    auto reactor = new_reactor(e.get());
    Pair p;
    std::string got;
    int calls = 0;
    Reactor::Watch w;
    ASSERT_GE(reactor->watch(p.b.get(), EPOLLIN, false, [&](uint32_t ev) {
        ++calls;
        EXPECT_TRUE(ev & EPOLLIN);
        got += drain(p.b.get());
    }, w), 0);
    ASSERT_EQ(write(p.a.get(), "hello", 5), 5);
    ASSERT_TRUE(run_until(e.get(), [&] { return got == "hello"; }));
    // Nothing new: edge-triggered, so no more calls however long we wait.
    for (int i = 0; i < 5; ++i) sd_event_run(e.get(), 10'000);
    EXPECT_EQ(calls, 1);
    ASSERT_EQ(write(p.a.get(), " again", 6), 6);
    ASSERT_TRUE(run_until(e.get(), [&] { return got == "hello again"; }));
    EXPECT_EQ(calls, 2);
    w.reset();
    ASSERT_EQ(write(p.a.get(), "!", 1), 1);
    for (int i = 0; i < 5; ++i) sd_event_run(e.get(), 10'000);
    EXPECT_EQ(calls, 2);
    EXPECT_EQ(reactor->watched(), 0u);
}

TEST(Reactor, HandlesEveryReadyDescriptorInOneDispatch) {
    auto e = new_event();
    auto reactor = new_reactor(e.get());
    constexpr int n = 300;  // more than one epoll_wait batch
    std::vector<Pair> pairs(n);
    std::vector<Reactor::Watch> watches(n);
    int handled = 0;
    for (int i = 0; i < n; ++i) {
        ASSERT_GE(reactor->watch(pairs[i].b.get(), EPOLLIN, false, [&, i](uint32_t) {
            if (!drain(pairs[i].b.get()).empty()) ++handled;
        }, watches[i]), 0);
    }
    for (auto& p : pairs) ASSERT_EQ(write(p.a.get(), "x", 1), 1);
    // One dispatch takes a batch of 256; the next the rest.
    ASSERT_GT(sd_event_run(e.get(), 1'000'000), 0);
    EXPECT_EQ(handled, 256);
    ASSERT_TRUE(run_until(e.get(), [&] { return handled == n; }));
}

TEST(Reactor, AWatchDroppedByAnEarlierHandlerIsNotCalled) {
    auto e = new_event();
    auto reactor = new_reactor(e.get());
    Pair p1, p2;
    Reactor::Watch w1, w2;
    int calls1 = 0, calls2 = 0;
    // Whichever runs first drops the other, and itself: neither may run
    // after its watch is gone, and a handler may free its own watch.
    ASSERT_GE(reactor->watch(p1.b.get(), EPOLLIN, false, [&](uint32_t) {
        ++calls1;
        w2.reset();
        w1.reset();
    }, w1), 0);
    ASSERT_GE(reactor->watch(p2.b.get(), EPOLLIN, false, [&](uint32_t) {
        ++calls2;
        w1.reset();
        w2.reset();
    }, w2), 0);
    ASSERT_EQ(write(p1.a.get(), "x", 1), 1);
    ASSERT_EQ(write(p2.a.get(), "x", 1), 1);
    ASSERT_TRUE(run_until(e.get(), [&] { return calls1 + calls2 > 0; }));
    for (int i = 0; i < 5; ++i) sd_event_run(e.get(), 10'000);
    EXPECT_EQ(calls1 + calls2, 1);
    EXPECT_EQ(reactor->watched(), 0u);
}

TEST(Reactor, AgainCallsTheHandlerWithNoEvents) {
    auto e = new_event();
    auto reactor = new_reactor(e.get());
    Pair p;
    Reactor::Watch w;
    std::vector<uint32_t> seen;
    ASSERT_GE(reactor->watch(p.b.get(), EPOLLIN, false, [&](uint32_t ev) {
        seen.push_back(ev);
        if (seen.size() < 3) w.again();  // work left over, twice
    }, w), 0);
    ASSERT_EQ(write(p.a.get(), "x", 1), 1);
    ASSERT_TRUE(run_until(e.get(), [&] { return seen.size() == 3; }));
    for (int i = 0; i < 5; ++i) sd_event_run(e.get(), 10'000);
    ASSERT_EQ(seen.size(), 3u);
    EXPECT_TRUE(seen[0] & EPOLLIN);
    EXPECT_EQ(seen[1], 0u);
    EXPECT_EQ(seen[2], 0u);
}

TEST(Reactor, PollHandlesReadyDescriptorsWithoutTheLoop) {
    auto e = new_event();
    auto reactor = new_reactor(e.get());
    Pair p;
    Reactor::Watch w;
    std::string got;
    ASSERT_GE(reactor->watch(p.b.get(), EPOLLIN, false, [&](uint32_t) { got += drain(p.b.get()); }, w), 0);
    // Nothing ready: poll waits about its timeout and calls nothing.
    const auto start = std::chrono::steady_clock::now();
    reactor->poll(30'000);
    EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(25));
    EXPECT_EQ(got, "");
    ASSERT_EQ(write(p.a.get(), "ping", 4), 4);
    reactor->poll(1'000'000);  // sd-event never runs in this test
    EXPECT_EQ(got, "ping");
}

TEST(Reactor, TicksOnlyWhileSomeWatchAsksForThem) {
    auto e = new_event();
    auto reactor = new_reactor(e.get(), 20'000);
    Pair p;
    Reactor::Watch w;
    int ticks = 0;
    ASSERT_GE(reactor->watch(p.b.get(), EPOLLIN, true, [&](uint32_t ev) {
        if (ev == 0) ++ticks;
    }, w), 0);
    ASSERT_TRUE(run_until(e.get(), [&] { return ticks >= 3; }, 2));
    w.reset();
    const int before = ticks;
    // No source left that could fire: the loop has nothing to do.
    EXPECT_EQ(sd_event_run(e.get(), 100'000), 0);
    EXPECT_EQ(ticks, before);
}

// --- ReactorBus -----------------------------------------------------------

int method_echo(sd_bus_message* m, void*, sd_bus_error*) {
    const char* s = nullptr;
    int r = sd_bus_message_read(m, "s", &s);
    return r < 0 ? r : sd_bus_reply_method_return(m, "s", s);
}

int method_never(sd_bus_message* m, void* userdata, sd_bus_error*) {
    // Keeps the call unanswered: the caller's timeout must fire.
    static_cast<std::vector<MessagePtr>*>(userdata)->emplace_back(sd_bus_message_ref(m));
    return 1;
}

const sd_bus_vtable test_vtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_METHOD("Echo", "s", "s", method_echo, 0),
    SD_BUS_METHOD("Never", "", "", method_never, 0),
    SD_BUS_VTABLE_END,
};

struct BusPair {
    PeerBusPtr server, client;
    ReactorBus server_driver, client_driver;
    SlotPtr vtable;
    std::vector<MessagePtr> held;
    int server_failed = 0;

    bool start(Reactor& reactor) {
        Pair p;
        sd_bus* s = nullptr;
        sd_bus* c = nullptr;
        sd_id128_t id;
        sd_id128_randomize(&id);
        if (sd_bus_new(&s) < 0 || sd_bus_new(&c) < 0) return false;
        server.reset(s);
        client.reset(c);
        if (sd_bus_set_fd(s, p.a.get(), p.a.get()) < 0 || sd_bus_set_fd(c, p.b.get(), p.b.get()) < 0) return false;
        p.a.release();
        p.b.release();
        sd_bus_slot* slot = nullptr;
        if (sd_bus_set_server(s, 1, id) < 0 || sd_bus_set_anonymous(s, 1) < 0 || sd_bus_set_anonymous(c, 1) < 0 ||
            sd_bus_add_object_vtable(s, &slot, "/t", "org.buildyard.Test", test_vtable, &held) < 0)
            return false;
        vtable.reset(slot);
        if (sd_bus_start(s) < 0 || sd_bus_start(c) < 0) return false;
        return server_driver.attach(reactor, s, [this](int) { ++server_failed; }) >= 0 &&
               client_driver.attach(reactor, c, nullptr) >= 0;
    }
};

struct Replies {
    int ok = 0;
    std::vector<std::string> errors;
    std::vector<std::string> texts;
};

int on_reply(sd_bus_message* m, void* userdata, sd_bus_error*) {
    auto* r = static_cast<Replies*>(userdata);
    if (const sd_bus_error* e = sd_bus_message_get_error(m)) {
        r->errors.push_back(e->name ? e->name : "?");
        return 0;
    }
    const char* s = nullptr;
    if (sd_bus_message_read(m, "s", &s) >= 0) r->texts.emplace_back(s);
    ++r->ok;
    return 0;
}

// A server and a client bus on a socket pair, both driven by one Reactor
// (ticking every 50 ms) on a fresh loop `e`.
class ReactorBusTest : public ::testing::Test {
protected:
    void SetUp() override { ASSERT_TRUE(b.start(*reactor)); }
    EventPtr e = new_event();
    std::unique_ptr<Reactor> reactor = new_reactor(e.get(), 50'000);
    BusPair b;
};

TEST_F(ReactorBusTest, CallsAndRepliesFlowBothWays) {
    Replies replies;
    std::vector<SlotPtr> slots;
    // More than one batch of sd_bus_process per dispatch, and more than a
    // socket buffer of arguments: again() and the EPOLLOUT edge both work.
    constexpr int n = 500;
    const std::string big(4096, 'y');
    for (int i = 0; i < n; ++i) {
        sd_bus_slot* slot = nullptr;
        ASSERT_GE(sd_bus_call_method_async(b.client.get(), &slot, nullptr, "/t", "org.buildyard.Test", "Echo", on_reply,
                                           &replies, "s", (std::to_string(i) + big).c_str()),
                  0);
        slots.emplace_back(slot);
    }
    ASSERT_TRUE(run_until(e.get(), [&] { return replies.ok + int(replies.errors.size()) == n; }, 20));
    EXPECT_EQ(replies.ok, n);
    EXPECT_TRUE(replies.errors.empty());
    for (int i = 0; i < n; ++i) EXPECT_EQ(replies.texts[size_t(i)], std::to_string(i) + big);
    EXPECT_EQ(b.server_failed, 0);
}

TEST_F(ReactorBusTest, ACallTimesOutWithinATick) {  // ticks every 50 ms
    Replies replies;
    sd_bus_slot* slot = nullptr;
    sd_bus_message* m = nullptr;
    ASSERT_GE(sd_bus_message_new_method_call(b.client.get(), &m, nullptr, "/t", "org.buildyard.Test", "Never"), 0);
    MessagePtr call(m);
    const auto start = std::chrono::steady_clock::now();
    ASSERT_GE(sd_bus_call_async(b.client.get(), &slot, m, on_reply, &replies, 200'000), 0);
    SlotPtr owned(slot);
    ASSERT_TRUE(run_until(e.get(), [&] { return !replies.errors.empty(); }, 5));
    const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_EQ(replies.errors[0], "org.freedesktop.DBus.Error.NoReply");  // sd-bus's name for a timeout
    EXPECT_GE(waited, 0.19);
    EXPECT_EQ(b.held.size(), 1u);  // the server got the call and kept it
}

int on_disconnected(sd_bus_message* m, void* userdata, sd_bus_error*) {
    if (sd_bus_message_is_signal(m, "org.freedesktop.DBus.Local", "Disconnected") > 0) {
        ++*static_cast<int*>(userdata);
    }
    return 0;
}

TEST_F(ReactorBusTest, APeerThatGoesAwayIsDisconnected) {
    int disconnected = 0;
    sd_bus_slot* slot = nullptr;
    ASSERT_GE(sd_bus_add_filter(b.server.get(), &slot, on_disconnected, &disconnected), 0);
    SlotPtr filter(slot);
    // Let the two authenticate first.
    Replies replies;
    ASSERT_GE(sd_bus_call_method_async(b.client.get(), nullptr, nullptr, "/t", "org.buildyard.Test", "Echo", on_reply,
                                       &replies, "s", "x"),
              0);
    ASSERT_TRUE(run_until(e.get(), [&] { return replies.ok == 1; }));
    b.client_driver.detach();
    b.client.reset();
    ASSERT_TRUE(run_until(e.get(), [&] { return disconnected == 1; }));
    EXPECT_EQ(b.server_failed, 0);  // a disconnect is not a failure
    for (int i = 0; i < 5; ++i) sd_event_run(e.get(), 10'000);
    EXPECT_EQ(disconnected, 1);
}

TEST(ReactorBus, GarbageFailsTheConnection) {
    auto e = new_event();
    auto reactor = new_reactor(e.get());
    Pair p;
    sd_bus* s = nullptr;
    ASSERT_GE(sd_bus_new(&s), 0);
    PeerBusPtr server(s);
    sd_id128_t id;
    sd_id128_randomize(&id);
    ASSERT_GE(sd_bus_set_fd(s, p.a.get(), p.a.get()), 0);
    p.a.release();
    ASSERT_GE(sd_bus_set_server(s, 1, id), 0);
    ASSERT_GE(sd_bus_set_anonymous(s, 1), 0);
    ASSERT_GE(sd_bus_start(s), 0);
    ReactorBus driver;
    int failed = 0;
    int error = 0;
    ASSERT_GE(driver.attach(*reactor, s, [&](int r) { ++failed, error = r; }), 0);
    // A proper SASL exchange, then a message (at least the 24 bytes sd-bus
    // reads first) whose first byte is no endianness D-Bus knows.
    const std::string junk =
        std::string(1, '\0') + "AUTH ANONYMOUS 61\r\nBEGIN\r\n" + "X\x01\x00\x01" + std::string(28, '\0');
    ASSERT_EQ(write(p.b.get(), junk.data(), junk.size()), ssize_t(junk.size()));
    ASSERT_TRUE(run_until(e.get(), [&] { return failed > 0; }));
    for (int i = 0; i < 5; ++i) sd_event_run(e.get(), 10'000);
    EXPECT_EQ(failed, 1);
    EXPECT_EQ(error, -EBADMSG);
    EXPECT_EQ(reactor->watched(), 0u);  // no longer driven
}

}  // namespace
