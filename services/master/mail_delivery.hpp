// The mail queue's delivery: hands the mails queued in the state database
// one at a time to the mail thread (mail_sender.hpp), records each as sent,
// and retries failures with backoff for a day before giving up. What to
// mail, and when, is the notifier's (notifier.hpp).
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>

#include <systemd/sd-event.h>

#include "common/config.hpp"
#include "common/raii.hpp"
#include "master/deadline_timer.hpp"
#include "master/mail_sender.hpp"
#include "master/metrics.hpp"
#include "master/store.hpp"

namespace by::master {

class MailDelivery {
public:
    // `config` is the master's, replaced in place on reload: each delivery
    // takes the [mail] settings of the moment.
    MailDelivery(sd_event* event, Store& store, Metrics& metrics, const config::Config& config);
    MailDelivery(const MailDelivery&) = delete;
    MailDelivery& operator=(const MailDelivery&) = delete;
    ~MailDelivery();

    // Starts the mail thread and the event sources, prunes old mails, and
    // resumes delivery of what was queued before once the loop runs. false
    // with `error` set on failure.
    bool start(std::string& error);

    // A mail was just queued in the store: send it when its turn comes.
    void queued();

private:
    void deliver();
    // The mail queue cannot be written: pause delivery rather than resend.
    void database_trouble(uint64_t now);
    void handle(const DeliveryResult& r);
    SmtpSettings smtp_settings() const;

    static int on_retry_timer(sd_event_source* s, uint64_t usec, void* userdata);
    static int on_results(sd_event_source* s, int fd, uint32_t revents, void* userdata);

    sd_event* event_;
    Store& store_;
    Metrics& metrics_;
    const config::Config& config_;
    std::optional<QueuedMail> in_flight_;
    std::set<uint64_t> sent_unrecorded_;  // sent, but marking them sent failed
    uint64_t paused_until_ = 0;
    // Declared after the sender, so they are gone before it is.
    MailSender sender_;
    DeadlineTimer retry_timer_;
    SourcePtr results_;
};

}  // namespace by::master
