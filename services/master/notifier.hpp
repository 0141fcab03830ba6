// The master's mail: missing-worker notices and build results. It keeps
// the MissingTracker in step with the workers and wakes up with one timer
// at its earliest deadline; queues each mail in the state database (a
// missing notice in the same transaction that records it was sent, so a
// restart never sends a second); and hands queued mails one at a time to
// the mail thread, retrying failures with backoff for a day.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "common/raii.hpp"
#include "master/build.hpp"
#include "master/mail_message.hpp"
#include "master/mail_sender.hpp"
#include "master/missing.hpp"
#include "master/store.hpp"

namespace by::master {

class Master;
struct Worker;

class Notifier {
public:
    Notifier(Master& master, sd_event* event, sd_bus* bus, Store& store, std::string state_directory);
    Notifier(const Notifier&) = delete;
    Notifier& operator=(const Notifier&) = delete;
    ~Notifier();

    // Starts the mail thread and the event sources, and resumes delivery of
    // what was queued before. false with `error` set on failure.
    bool start(std::string& error);

    // The configuration was loaded or reloaded: follow each worker's
    // missing_timeout and notify_on_missing, forget removed workers.
    void reconfigure();
    // A worker changed (attached, detached, anything): catch up with it.
    void worker_changed(const Worker& w);
    // A build that ran has finished; mails its result if its builder is
    // in [mail] builders. Retry is not a final result and is not mailed.
    void build_finished(const Build& b);

    uint64_t missing_since(const std::string& worker) const { return tracker_.missing_since(worker); }
    bool missing_notified(const std::string& worker) const { return tracker_.notified(worker); }

private:
    void follow(const Worker& w);
    void rearm_missing();
    void queue_missing(const std::string& name);
    void deliver();
    // The mail queue cannot be written: pause delivery rather than resend.
    void database_trouble(uint64_t now);
    void handle(const DeliveryResult& r);
    SmtpSettings smtp_settings() const;
    MessageStamp stamp(uint64_t now) const;
    std::string read_log_tail(uint64_t build) const;

    static int on_missing_timer(sd_event_source* s, uint64_t usec, void* userdata);
    static int on_rearm(sd_event_source* s, void* userdata);
    static int on_retry_timer(sd_event_source* s, uint64_t usec, void* userdata);
    static int on_results(sd_event_source* s, int fd, uint32_t revents, void* userdata);

    Master& master_;
    sd_event* event_;
    sd_bus* bus_;
    Store& store_;
    std::string state_directory_;
    std::string hostname_;
    uint64_t retry_first_;   // usec before the first retry
    uint64_t give_up_after_; // usec after queueing
    MissingTracker tracker_;
    std::map<std::string, uint64_t> first_seen_;  // the tracked workers
    std::optional<QueuedMail> in_flight_;
    std::set<uint64_t> sent_unrecorded_;  // sent, but marking them sent failed
    uint64_t paused_until_ = 0;
    // Declared after the sender, so they are gone before it is.
    MailSender sender_;
    SourcePtr missing_timer_;
    SourcePtr rearm_;  // defer: re-arms missing_timer_ once per iteration
    SourcePtr retry_timer_;
    SourcePtr results_;
};

}  // namespace by::master
