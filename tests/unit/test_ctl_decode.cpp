// Decoding of GetAll replies (a{sv}) into ctl::Value, on messages built
// locally: a bus object on one end of a socketpair is enough to make them.
#include <sys/socket.h>

#include <memory>

#include <gtest/gtest.h>

#include "common/bus.hpp"
#include "common/raii.hpp"
#include "ctl/decode.hpp"

using namespace by::ctl;

namespace {

class CtlDecode : public ::testing::Test {
protected:
    void SetUp() override {
        int fds[2];
        ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        peer_.reset(fds[1]);
        sd_bus* b = nullptr;
        ASSERT_GE(sd_bus_new(&b), 0);
        bus_.reset(b);
        ASSERT_GE(sd_bus_set_fd(b, fds[0], fds[0]), 0);
        ASSERT_GE(sd_bus_start(b), 0);
        sd_bus_message* m = nullptr;
        ASSERT_GE(sd_bus_message_new_method_call(b, &m, "org.example", "/", "org.example", "X"), 0);
        msg_.reset(m);
    }

    // Seals the message and moves its read position to the start.
    sd_bus_message* sealed() {
        EXPECT_GE(sd_bus_message_seal(msg_.get(), 1, 0), 0);
        EXPECT_GE(sd_bus_message_rewind(msg_.get(), 1), 0);
        return msg_.get();
    }

    by::Fd peer_;
    // Closed without the flush of by::BusPtr: the peer never answers the
    // authentication, and a flush would wait for it.
    std::unique_ptr<sd_bus, by::FreeWith<sd_bus_close_unref>> bus_;
    by::MessagePtr msg_;
};

}  // namespace

TEST_F(CtlDecode, WorkerPropertiesOfEveryType) {
    sd_bus_message* m = msg_.get();
    ASSERT_GE(sd_bus_message_open_container(m, 'a', "{sv}"), 0);
    ASSERT_GE(sd_bus_message_append(m, "{sv}", "Name", "s", "bot"), 0);
    ASSERT_GE(sd_bus_message_append(m, "{sv}", "Connected", "b", 1), 0);
    ASSERT_GE(sd_bus_message_append(m, "{sv}", "MaxBuilds", "u", 2u), 0);
    ASSERT_GE(sd_bus_message_append(m, "{sv}", "LastConnected", "t", uint64_t{1700000000000000}), 0);
    ASSERT_GE(sd_bus_message_append(m, "{sv}", "BuildWaitTimeout", "x", int64_t{-1}), 0);
    ASSERT_GE(sd_bus_message_append(m, "{sv}", "ExitStatus", "i", -3), 0);
    ASSERT_GE(sd_bus_message_append(m, "{sv}", "Path", "o", "/org/x"), 0);
    ASSERT_GE(sd_bus_message_append(m, "{sv}", "NotifyOnMissing", "as", 2, "a@x", "b@y"), 0);
    ASSERT_GE(sd_bus_message_append(m, "{sv}", "Info", "a{ss}", 2, "host", "h1", "os", "Linux"), 0);
    // A type buildyardctl does not know is skipped, not an error.
    ASSERT_GE(sd_bus_message_append(m, "{sv}", "Odd", "(ii)", 1, 2), 0);
    ASSERT_GE(sd_bus_message_append(m, "{sv}", "After", "s", "still read"), 0);
    ASSERT_GE(sd_bus_message_close_container(m), 0);

    PropertyMap props;
    ASSERT_GE(read_property_map(sealed(), props), 0);
    EXPECT_EQ(std::get<std::string>(props["Name"]), "bot");
    EXPECT_EQ(std::get<bool>(props["Connected"]), true);
    EXPECT_EQ(std::get<uint64_t>(props["MaxBuilds"]), 2u);
    EXPECT_EQ(std::get<uint64_t>(props["LastConnected"]), 1700000000000000u);
    EXPECT_EQ(std::get<int64_t>(props["BuildWaitTimeout"]), -1);
    EXPECT_EQ(std::get<int64_t>(props["ExitStatus"]), -3);
    EXPECT_EQ(std::get<std::string>(props["Path"]), "/org/x");
    EXPECT_EQ(std::get<std::vector<std::string>>(props["NotifyOnMissing"]),
              (std::vector<std::string>{"a@x", "b@y"}));
    EXPECT_EQ(std::get<StringMap>(props["Info"]), (StringMap{{"host", "h1"}, {"os", "Linux"}}));
    EXPECT_TRUE(std::holds_alternative<std::monostate>(props["Odd"]));
    EXPECT_EQ(std::get<std::string>(props["After"]), "still read");
    EXPECT_EQ(props.size(), 11u);
}

TEST_F(CtlDecode, EmptyMap) {
    ASSERT_GE(sd_bus_message_open_container(msg_.get(), 'a', "{sv}"), 0);
    ASSERT_GE(sd_bus_message_close_container(msg_.get()), 0);
    PropertyMap props;
    ASSERT_GE(read_property_map(sealed(), props), 0);
    EXPECT_TRUE(props.empty());
}

TEST_F(CtlDecode, WrongSignatureFails) {
    ASSERT_GE(sd_bus_message_append(msg_.get(), "s", "not a map"), 0);
    PropertyMap props;
    EXPECT_LT(read_property_map(sealed(), props), 0);
}

TEST_F(CtlDecode, SingleVariant) {
    ASSERT_GE(sd_bus_message_append(msg_.get(), "v", "q", uint16_t{9}), 0);
    Value v;
    ASSERT_GE(read_variant(sealed(), v), 0);
    EXPECT_EQ(std::get<uint64_t>(v), 9u);
}
