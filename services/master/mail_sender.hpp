// The mail thread: SMTP deliveries run here, one at a time, so a slow or
// dead server never stalls the master's loop. The loop hands in jobs with
// submit() and watches fd(): when it is readable, take_results() has the
// outcomes. The thread touches no database, bus or loop.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "master/smtp.hpp"

namespace by::master {

struct DeliveryJob {
    uint64_t id = 0;
    SmtpSettings settings;
    std::string from;
    std::vector<std::string> to;
    std::string text;
};

struct DeliveryResult {
    uint64_t id = 0;
    SmtpOutcome outcome;
};

class MailSender {
public:
    using Send = std::function<SmtpOutcome(const SmtpSettings&, const std::string& from,
                                           const std::vector<std::string>& to, const std::string& text)>;

    explicit MailSender(Send send = smtp_send);
    MailSender(const MailSender&) = delete;
    MailSender& operator=(const MailSender&) = delete;
    // Waits a moment for a delivery in progress, then leaves it behind:
    // a master that is stopping does not wait for a stuck server.
    ~MailSender();

    // Creates the eventfd and starts the thread. false with `error` set on failure.
    bool start(std::string& error);
    // Readable (an eventfd) when results are waiting.
    int fd() const;

    void submit(DeliveryJob job);
    // The results so far; also resets fd().
    std::vector<DeliveryResult> take_results();

private:
    struct State;
    std::shared_ptr<State> state_;
    Send send_;
};

}  // namespace by::master
