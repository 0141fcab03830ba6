// The mail thread: jobs in, results out through an eventfd, and a stuck
// delivery does not hold up shutdown.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include <poll.h>

#include "master/mail_sender.hpp"

using namespace by::master;

namespace {

bool readable(int fd, int timeout_ms) {
    pollfd p{fd, POLLIN, 0};
    return poll(&p, 1, timeout_ms) == 1;
}

}  // namespace

TEST(MailSender, ResultsComeBackThroughTheEventfd) {
    MailSender sender([](const SmtpSettings& s, const std::string& from, const std::vector<std::string>& to,
                         const std::string& text) {
        SmtpOutcome o;
        o.delivered = text == "ok";
        o.accepted = o.delivered ? to : std::vector<std::string>{};
        o.reply = s.relayhost + " " + from;
        return o;
    });
    std::string error;
    ASSERT_TRUE(sender.start(error)) << error;
    EXPECT_FALSE(readable(sender.fd(), 0));

    SmtpSettings settings;
    settings.relayhost = "relay";
    sender.submit(DeliveryJob{1, settings, "me@x.org", {"a@x.org"}, "ok"});
    sender.submit(DeliveryJob{2, settings, "me@x.org", {"b@x.org"}, "bad"});
    std::vector<DeliveryResult> results;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (results.size() < 2 && std::chrono::steady_clock::now() < deadline) {
        if (readable(sender.fd(), 1000)) {
            for (auto& r : sender.take_results()) {
                results.push_back(std::move(r));
            }
        }
    }
    ASSERT_EQ(results.size(), 2u);
    EXPECT_EQ(results[0].id, 1u);
    EXPECT_TRUE(results[0].outcome.delivered);
    EXPECT_EQ(results[0].outcome.accepted, std::vector<std::string>{"a@x.org"});
    EXPECT_EQ(results[0].outcome.reply, "relay me@x.org");
    EXPECT_EQ(results[1].id, 2u);
    EXPECT_FALSE(results[1].outcome.delivered);
    EXPECT_FALSE(readable(sender.fd(), 0));  // take_results reset it
}

TEST(MailSender, AStuckDeliveryDoesNotHoldUpShutdown) {
    auto sending = std::make_shared<std::atomic<bool>>(false);
    auto started = std::chrono::steady_clock::now();
    {
        MailSender sender([sending](const SmtpSettings&, const std::string&, const std::vector<std::string>&,
                                    const std::string&) {
            *sending = true;
            std::this_thread::sleep_for(std::chrono::seconds(30));
            return SmtpOutcome{};
        });
        std::string error;
        ASSERT_TRUE(sender.start(error)) << error;
        sender.submit(DeliveryJob{1, {}, "me@x.org", {"a@x.org"}, "x"});
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (!*sending && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        ASSERT_TRUE(*sending);
        started = std::chrono::steady_clock::now();
    }
    const auto waited = std::chrono::steady_clock::now() - started;
    EXPECT_GE(waited, std::chrono::milliseconds(1900));  // it gave the delivery a moment
    EXPECT_LT(waited, std::chrono::seconds(5));
}
