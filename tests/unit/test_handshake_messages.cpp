// The Handshake1 messages as each side reads them (common/handshake_messages),
// built in memory: what a worker or a master can put in them.
#include <sys/socket.h>

#include <gtest/gtest.h>

#include "common/handshake_messages.hpp"
#include "common/raii.hpp"

using namespace by;

namespace {

class HandshakeMessages : public ::testing::Test {
protected:
    HandshakeMessages() {
        int fds[2];
        sd_bus* b = nullptr;
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0 && sd_bus_new(&b) >= 0) {
            bus_.reset(b);
            sd_bus_set_fd(b, fds[0], fds[0]);
            other_.reset(fds[1]);
            sd_bus_start(b);
        }
    }

    MessagePtr call(const char* member) {
        sd_bus_message* m = nullptr;
        EXPECT_GE(sd_bus_message_new_method_call(bus_.get(), &m, nullptr, "/org/buildyard/Master1",
                                                 handshake::interface, member), 0);
        return MessagePtr(m);
    }
    MessagePtr reply_to(const char* member) {
        call_ = call(member);
        EXPECT_GE(sd_bus_message_seal(call_.get(), 1, 0), 0);
        sd_bus_message* m = nullptr;
        EXPECT_GE(sd_bus_message_new_method_return(call_.get(), &m), 0);
        return MessagePtr(m);
    }
    static void seal(const MessagePtr& m) {
        ASSERT_GE(sd_bus_message_seal(m.get(), 2, 0), 0);
        ASSERT_GE(sd_bus_message_rewind(m.get(), 1), 0);
    }
    // Authenticate's reply with `settings`.
    MessagePtr accepted(const bus::StringMap& settings) {
        auto m = reply_to("Authenticate");
        const std::vector<uint8_t> proof(32, 1);
        EXPECT_GE(sd_bus_message_append_array(m.get(), 'y', proof.data(), proof.size()), 0);
        EXPECT_GE(sd_bus_message_append(m.get(), "o", "/org/buildyard/Master1/worker/w1"), 0);
        EXPECT_GE(bus::append_string_map(m.get(), settings), 0);
        seal(m);
        return m;
    }

    PeerBusPtr bus_;
    Fd other_;
    MessagePtr call_;
};

}  // namespace

TEST_F(HandshakeMessages, Hello) {
    auto m = call("Hello");
    const std::vector<uint8_t> nonce(32, 9);
    ASSERT_GE(sd_bus_message_append(m.get(), "s", "w1"), 0);
    ASSERT_GE(sd_bus_message_append_array(m.get(), 'y', nonce.data(), nonce.size()), 0);
    const std::vector<uint8_t> binding(32, 5);
    ASSERT_GE(sd_bus_message_append_array(m.get(), 'y', binding.data(), binding.size()), 0);
    seal(m);
    handshake::Hello hello;
    std::string error;
    EXPECT_EQ(handshake::read_hello(m.get(), hello, error), 1);
    EXPECT_EQ(hello.name, "w1");
    EXPECT_EQ(hello.worker_nonce, nonce);
    EXPECT_EQ(hello.channel_binding, binding);

    auto short_nonce = call("Hello");
    ASSERT_GE(sd_bus_message_append(short_nonce.get(), "s", "w1"), 0);
    ASSERT_GE(sd_bus_message_append_array(short_nonce.get(), 'y', nonce.data(), 31), 0);
    ASSERT_GE(sd_bus_message_append_array(short_nonce.get(), 'y', nonce.data(), 0), 0);
    seal(short_nonce);
    EXPECT_EQ(handshake::read_hello(short_nonce.get(), hello, error), 0);
    EXPECT_EQ(error, "worker_nonce must be 32 bytes.");

    auto wrong_types = call("Hello");
    ASSERT_GE(sd_bus_message_append(wrong_types.get(), "u", 7), 0);
    seal(wrong_types);
    EXPECT_LT(handshake::read_hello(wrong_types.get(), hello, error), 0);
}

TEST_F(HandshakeMessages, AcceptedKeepaliveInterval) {
    handshake::Accepted a;
    std::string error;
    EXPECT_EQ(handshake::read_accepted(accepted({{"keepalive_interval", "60"}, {"keepalive_timeout", "5"}}).get(), a,
                                       error), 1);
    EXPECT_EQ(a.keepalive_interval, 60u);
    EXPECT_EQ(a.worker_path, "/org/buildyard/Master1/worker/w1");
    EXPECT_EQ(a.master_proof, std::vector<uint8_t>(32, 1));
    EXPECT_EQ(handshake::read_accepted(accepted({{"keepalive_interval", "0"}}).get(), a, error), 1);
    EXPECT_EQ(a.keepalive_interval, 0u);
    EXPECT_EQ(handshake::read_accepted(accepted({}).get(), a, error), 1);
    EXPECT_EQ(a.keepalive_interval, 0u);
}

// An interval the worker cannot time (twice it, in microseconds, passes
// 2^64), or that is no number, is a malformed reply: found by
// tests/fuzz/fuzz_handshake.cpp (strtoull took "18446744073709551615" and
// "-1" as intervals that wrapped the silence check around, and "x" as none).
TEST_F(HandshakeMessages, AcceptedRefusesAnIntervalItCannotTime) {
    for (const char* bad : {"18446744073709551615", "-1", "x", "315360001", " 60", ""}) {
        handshake::Accepted a;
        std::string error;
        EXPECT_EQ(handshake::read_accepted(accepted({{"keepalive_interval", bad}}).get(), a, error), 0) << bad;
        EXPECT_NE(error.find("keepalive_interval"), std::string::npos) << error;
    }
}
