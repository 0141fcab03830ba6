// The master's mail: missing-worker notices and build results. It keeps
// the MissingTracker in step with the workers and wakes up with one timer
// at its earliest deadline; queues each mail in the state database (a
// missing notice in the same transaction that records it was sent, so a
// restart never sends a second); and leaves the sending to MailDelivery.
// What it needs of the master comes in: the store, the metrics, the
// configuration, and WorkerFacts for the workers.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include <systemd/sd-event.h>

#include "common/config.hpp"
#include "common/raii.hpp"
#include "master/build.hpp"
#include "master/deadline_timer.hpp"
#include "master/mail_delivery.hpp"
#include "master/mail_message.hpp"
#include "master/metrics.hpp"
#include "master/missing.hpp"
#include "master/store.hpp"
#include "master/worker_facts.hpp"

namespace by::master {

class Notifier {
public:
    // `config` is the master's, replaced in place on reload (then
    // reconfigure() follows it).
    Notifier(sd_event* event, Store& store, Metrics& metrics, const config::Config& config, WorkerFacts& workers,
             std::string state_directory);
    Notifier(const Notifier&) = delete;
    Notifier& operator=(const Notifier&) = delete;
    ~Notifier();

    // Starts the delivery and the event sources. false with `error` set on
    // failure.
    bool start(std::string& error);

    // The configuration was loaded or reloaded: follow each worker's
    // missing_timeout and notify_on_missing, forget removed workers.
    void reconfigure();
    // A worker changed (attached, detached, anything): catch up with it.
    void worker_changed(const std::string& worker);
    // A build that ran has finished; mails its result if its builder is
    // in [mail] builders. Retry is not a final result and is not mailed.
    void build_finished(const Build& b);

    uint64_t missing_since(const std::string& worker) const { return tracker_.missing_since(worker); }
    bool missing_notified(const std::string& worker) const { return tracker_.notified(worker); }

private:
    void follow(const std::string& worker, const WorkerPresence& p);
    void rearm_missing();
    void queue_missing(const std::string& name);
    MessageStamp stamp(uint64_t now) const;
    std::string read_log_tail(uint64_t build) const;

    static int on_missing_timer(sd_event_source* s, uint64_t usec, void* userdata);
    static int on_rearm(sd_event_source* s, void* userdata);

    sd_event* event_;
    Store& store_;
    const config::Config& config_;
    WorkerFacts& workers_;
    std::string state_directory_;
    std::string hostname_;
    MissingTracker tracker_;
    std::map<std::string, uint64_t> first_seen_;  // the tracked workers
    MailDelivery delivery_;
    DeadlineTimer missing_timer_;
    SourcePtr rearm_;  // defer: re-arms missing_timer_ once per iteration
};

}  // namespace by::master
