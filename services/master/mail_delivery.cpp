#include "master/mail_delivery.hpp"

#include <algorithm>
#include <cstring>

#include <fmt/ranges.h>
#include <sys/epoll.h>

#include "common/bus.hpp"
#include "common/log.hpp"
#include "master/mail_message.hpp"

namespace by::master {

namespace {

constexpr uint64_t usec_per_sec = 1000000;
// After the mail queue could not be written, try again then.
constexpr uint64_t database_pause = 60 * usec_per_sec;
// Sent and given-up mails stay in the queue table this long, for admins.
constexpr uint64_t keep_done = 30 * 24 * 3600 * usec_per_sec;

}  // namespace

MailDelivery::MailDelivery(sd_event* event, Store& store, Metrics& metrics, const config::Config& config)
    : event_(event),
      store_(store),
      metrics_(metrics),
      config_(config) {}

MailDelivery::~MailDelivery() = default;

bool MailDelivery::start(std::string& error) {
    if (!sender_.start(error)) {
        return false;
    }
    int r = retry_timer_.add(event_, &MailDelivery::on_retry_timer, this);
    if (r >= 0) {
        sd_event_source* s = nullptr;
        r = sd_event_add_io(event_, &s, sender_.fd(), EPOLLIN, &MailDelivery::on_results, this);
        results_.reset(s);
    }
    if (r < 0) {
        error = std::string("cannot add the mail event sources: ") + std::strerror(-r);
        return false;
    }
    const uint64_t now = bus::now_realtime_usec();
    if (!store_.prune_mail(now > keep_done ? now - keep_done : 0)) {
        log::warning("cannot prune the mail queue: {}", store_.error());
    }
    // Resume delivery once the loop runs, that is once the master has
    // started: a master that fails to start (another one owns the bus
    // name) must not send what the running one is sending.
    retry_timer_.arm(now);
    return true;
}

void MailDelivery::queued() {
    metrics_.mail_queued();
    deliver();
}

SmtpSettings MailDelivery::smtp_settings() const {
    const config::Mail& m = config_.mail;
    SmtpSettings s;
    s.relayhost = m.relayhost;
    s.port = m.port;
    s.starttls = m.starttls;
    s.username = m.username;
    s.password = m.password;
    s.tls_ca_file = m.tls_ca_file;
    return s;
}

void MailDelivery::deliver() {
    if (auto n = store_.queued_mail_count()) {
        metrics_.mail_queue_length(*n);
    }
    if (in_flight_ || !retry_timer_) {
        return;
    }
    const uint64_t now = bus::now_realtime_usec();
    if (now < paused_until_) {
        retry_timer_.arm(paused_until_);
        return;
    }
    auto m = store_.next_due_mail(now);
    // A mail sent whose "sent" could not be written is never sent again
    // by this process: try the write again instead, or wait.
    while (m && sent_unrecorded_.count(m->id)) {
        if (!store_.mail_sent(m->id, now)) {
            database_trouble(now);
            return;
        }
        sent_unrecorded_.erase(m->id);
        m = store_.next_due_mail(now);
    }
    if (!m) {
        retry_timer_.arm(store_.next_mail_time());
        return;
    }
    retry_timer_.arm(std::nullopt);
    sender_.submit(DeliveryJob{m->id, smtp_settings(), m->from, m->to, m->text});
    in_flight_ = std::move(m);
}

void MailDelivery::database_trouble(uint64_t now) {
    log::error("cannot update the mail queue: {}; mail delivery pauses for {} s", store_.error(),
               database_pause / usec_per_sec);
    paused_until_ = now + database_pause;
    retry_timer_.arm(paused_until_);
}

int MailDelivery::on_retry_timer(sd_event_source*, uint64_t, void* userdata) {
    static_cast<MailDelivery*>(userdata)->deliver();
    return 0;
}

int MailDelivery::on_results(sd_event_source*, int, uint32_t, void* userdata) {
    auto* d = static_cast<MailDelivery*>(userdata);
    for (const auto& r : d->sender_.take_results()) {
        d->handle(r);
    }
    d->deliver();
    return 0;
}

void MailDelivery::handle(const DeliveryResult& r) {
    if (!in_flight_ || in_flight_->id != r.id) {
        return;
    }
    QueuedMail m = std::move(*in_flight_);
    in_flight_.reset();
    const uint64_t now = bus::now_realtime_usec();
    const SmtpOutcome& o = r.outcome;
    const std::string server = fmt::format("{}:{}", config_.mail.relayhost, config_.mail.port);
    const std::string build = m.build ? std::to_string(m.build) : "";
    const std::string reply = o.reply.empty() ? "no reply" : o.reply;
    auto say = [&](log::Level level, const std::string& text) {
        if (m.build) {
            log::write(level, text, {{"BUILDYARD_WORKER", m.worker}, {"BUILDYARD_BUILD", build}});
        } else {
            log::write(level, text, {{"BUILDYARD_WORKER", m.worker}});
        }
    };

    if (!o.accepted.empty()) {
        std::vector<std::string> left;
        for (const auto& a : m.to) {
            if (std::find(o.accepted.begin(), o.accepted.end(), a) == o.accepted.end()) {
                left.push_back(a);
            }
        }
        // Recorded first thing: a crash after this must not send it again.
        // (Some recipients left: the retry below records that.)
        if (left.empty() && !store_.mail_sent(m.id, now)) {
            sent_unrecorded_.insert(m.id);
            database_trouble(now);
        }
        say(log::Level::info, fmt::format("mail {} \"{}\" sent to {} through {}: {}", m.id, m.subject,
                                          fmt::join(o.accepted, ", "), server, reply));
        if (left.empty()) {
            metrics_.mail_sent();
            return;
        }
        m.to = left;
    }

    const unsigned attempts = m.attempts + 1;
    const config::Mail& mail = config_.mail;
    metrics_.mail_failed(now - m.queued_at >= mail.give_up_after_usec);
    if (now - m.queued_at >= mail.give_up_after_usec) {
        if (!store_.mail_given_up(m.id, now, o.error)) {
            database_trouble(now);
        }
        say(log::Level::err,
            fmt::format("gave up on mail {} \"{}\" to {} after {} attempts since {}: {} (server reply: {})", m.id,
                        m.subject, fmt::join(m.to, ", "), attempts, utc_time(m.queued_at), o.error, reply));
        return;
    }
    const uint64_t delay = retry_delay(attempts, mail.retry_interval_usec);
    if (!store_.mail_retry(m.id, m.to, attempts, now + delay, o.error)) {
        database_trouble(now);
    }
    say(log::Level::warning,
        fmt::format("cannot send mail {} \"{}\" to {}: {} (server reply: {}); trying again in {}", m.id, m.subject,
                    fmt::join(m.to, ", "), o.error, reply,
                    delay >= usec_per_sec ? format_duration(delay) : fmt::format("{} ms", delay / 1000)));
}

}  // namespace by::master
