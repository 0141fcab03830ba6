#include "master/notifier.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/crypto.hpp"
#include "common/env_knob.hpp"
#include "common/log.hpp"
#include "master/build_log_path.hpp"
#include "master/master.hpp"

namespace by::master {

namespace {

constexpr uint64_t usec_per_sec = 1000000;
constexpr uint64_t default_retry_first = 30 * usec_per_sec;
constexpr uint64_t default_give_up_after = 24 * 3600 * usec_per_sec;
// After a mail could not be queued (the database failed), try again then.
constexpr uint64_t queue_retry = 60 * usec_per_sec;
// Sent and given-up mails stay in the queue table this long, for admins.
constexpr uint64_t keep_done = 30 * 24 * 3600 * usec_per_sec;
constexpr size_t tail_lines = 50;
constexpr off_t tail_bytes = 64 * 1024;

// The test suite's knobs, in whole microseconds.
constexpr UsecKnob usec_knob{.unit = UsecKnob::Unit::microseconds};

std::string join(const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v) {
        out += (out.empty() ? "" : ", ") + s;
    }
    return out;
}

std::string this_host() {
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) != 0 || !*host) {
        return "localhost";
    }
    return host;
}

// Adds a realtime timer, disabled until armed.
int add_timer(sd_event* event, SourcePtr& out, sd_event_time_handler_t handler, void* userdata) {
    sd_event_source* s = nullptr;
    int r = sd_event_add_time(event, &s, CLOCK_REALTIME, 0, 10000, handler, userdata);
    if (r < 0) {
        return r;
    }
    out.reset(s);
    return sd_event_source_set_enabled(s, SD_EVENT_OFF);
}

void arm(sd_event_source* s, std::optional<uint64_t> at) {
    if (!at) {
        sd_event_source_set_enabled(s, SD_EVENT_OFF);
        return;
    }
    sd_event_source_set_time(s, std::max<uint64_t>(*at, 1));
    sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

}  // namespace

Notifier::Notifier(Master& master, sd_event* event, sd_bus* bus, Store& store, std::string state_directory)
    : master_(master),
      event_(event),
      bus_(bus),
      store_(store),
      state_directory_(std::move(state_directory)),
      hostname_(this_host()),
      retry_first_(usec_from_env("BUILDYARD_MAIL_RETRY_USEC", default_retry_first, usec_knob)),
      give_up_after_(usec_from_env("BUILDYARD_MAIL_GIVE_UP_USEC", default_give_up_after, usec_knob)),
      tracker_([] { return bus::now_realtime_usec(); }) {}

Notifier::~Notifier() = default;

bool Notifier::start(std::string& error) {
    if (!sender_.start(error)) {
        return false;
    }
    int r = add_timer(event_, missing_timer_, &Notifier::on_missing_timer, this);
    if (r >= 0) r = add_timer(event_, retry_timer_, &Notifier::on_retry_timer, this);
    if (r >= 0) {
        sd_event_source* s = nullptr;
        r = sd_event_add_io(event_, &s, sender_.fd(), EPOLLIN, &Notifier::on_results, this);
        results_.reset(s);
    }
    if (r >= 0) {
        sd_event_source* s = nullptr;
        r = sd_event_add_defer(event_, &s, &Notifier::on_rearm, this);
        rearm_.reset(s);
        if (r >= 0) r = sd_event_source_set_enabled(s, SD_EVENT_OFF);
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
    arm(retry_timer_.get(), now);
    return true;
}

// --- missing workers --------------------------------------------------------

void Notifier::reconfigure() {
    const uint64_t now = bus::now_realtime_usec();
    std::map<std::string, uint64_t> seen;
    for (const auto& [name, w] : master_.workers()) {
        if (!w->configured) {
            continue;  // removed: no more notices
        }
        if (auto it = first_seen_.find(name); it != first_seen_.end()) {
            seen.insert(*it);
        } else {
            // New to us (master start or reload): when the master first saw
            // it and which absence was mailed come from the database, so a
            // restart neither resets the clock nor mails the same loss again.
            MissingRecord rec = store_.load_missing(name);
            if (rec.first_seen == 0) {
                rec.first_seen = now;
                if (!store_.set_first_seen(name, now)) {
                    log::error("cannot record worker {}: {}", name, store_.error());
                }
            }
            seen[name] = rec.first_seen;
            tracker_.configure(name, 0, false);
            tracker_.set_notified_loss(name, rec.notified_loss);
        }
        tracker_.configure(name, w->cfg.missing_timeout * usec_per_sec, !w->cfg.notify_on_missing.empty());
    }
    for (const auto& [name, first] : first_seen_) {
        if (!seen.count(name)) {
            tracker_.forget(name);
        }
    }
    first_seen_ = std::move(seen);
    for (const auto& [name, first] : first_seen_) {
        follow(*master_.workers().at(name));
    }
    rearm_missing();
}

void Notifier::worker_changed(const Worker& w) {
    if (!first_seen_.count(w.cfg.name)) {
        return;
    }
    follow(w);
    rearm_missing();
}

void Notifier::follow(const Worker& w) {
    if (w.latent) {
        // A latent worker is missed only while its machine is wanted and has
        // not come up; a failed start is reported at once, not after the
        // timeout. Stopped on purpose, it is not missing.
        const LatentMachine& m = w.latent->machine;
        if (w.attached || m.trouble_since() == 0) {
            tracker_.attached(w.cfg.name);
        } else {
            tracker_.absent(w.cfg.name, m.trouble_since(), m.start_failed());
        }
        return;
    }
    if (w.attached) {
        tracker_.attached(w.cfg.name);
    } else {
        // Never attached: away since the master first saw it.
        tracker_.absent(w.cfg.name, w.last_disconnected ? w.last_disconnected : first_seen_.at(w.cfg.name));
    }
}

void Notifier::rearm_missing() {
    // Once per loop iteration, however many workers changed in it: finding
    // the next deadline looks at every worker.
    if (rearm_) {
        sd_event_source_set_enabled(rearm_.get(), SD_EVENT_ONESHOT);
    }
}

int Notifier::on_rearm(sd_event_source*, void* userdata) {
    auto* n = static_cast<Notifier*>(userdata);
    arm(n->missing_timer_.get(), n->tracker_.next_deadline());
    return 0;
}

int Notifier::on_missing_timer(sd_event_source*, uint64_t, void* userdata) {
    auto* n = static_cast<Notifier*>(userdata);
    for (const auto& name : n->tracker_.due()) {
        n->queue_missing(name);
    }
    n->rearm_missing();
    return 0;
}

void Notifier::queue_missing(const std::string& name) {
    Worker* w = master_.find_worker(name);
    if (!w || w->attached) {
        return;
    }
    const uint64_t now = bus::now_realtime_usec();
    const uint64_t loss = tracker_.missing_since(name);
    MissingFacts f;
    f.worker = name;
    f.master_name = master_.config().master.name;
    f.local = w->cfg.type == config::WorkerType::local;
    f.ever_attached = w->last_connected != 0;
    f.since = loss;
    f.timeout = w->cfg.missing_timeout;
    if (auto it = w->info.find("host"); it != w->info.end()) f.host = it->second;
    if (auto it = w->info.find("admin"); it != w->info.end()) f.admin = it->second;
    if (w->latent) {
        f.latent = true;
        f.start_failures = w->latent->machine.failures();
        if (f.start_failures > 0) f.start_error = w->latent->machine.last_error();
    }
    const OutgoingMail m = missing_mail(f, master_.config().mail.fromaddr, w->cfg.notify_on_missing, stamp(now));

    QueuedMail q;
    q.worker = name;
    q.subject = m.subject;
    q.from = m.from;
    q.to = m.to;
    q.text = m.text;
    q.queued_at = now;
    q.next_attempt = now;
    if (!store_.queue_missing_mail(q, name, loss)) {
        log::write(log::Level::err,
                   fmt::format("worker {} is missing, but its mail cannot be queued: {}; trying again in {} s", name,
                               store_.error(), queue_retry / usec_per_sec),
                   {{"BUILDYARD_WORKER", name}});
        tracker_.postpone(name, now + queue_retry);
        return;
    }
    tracker_.mark_notified(name);
    master_.metrics().mail_queued();
    log::write(log::Level::warning,
               fmt::format("worker {} has been missing since {} (missing_timeout {} s); mail {} to {} queued", name,
                           utc_time(loss), w->cfg.missing_timeout, q.id, join(q.to)),
               {{"BUILDYARD_WORKER", name}, {"MESSAGE_ID", std::string(log::id::worker_missing)}});
    sd_bus_emit_properties_changed(bus_, w->path.c_str(), bus::worker_iface, "MissingNotified", nullptr);
    w->shown.missing_notified = true;  // told now: the master's next flush need not repeat it
    deliver();
}

// --- build results ------------------------------------------------------------

void Notifier::build_finished(const Build& b) {
    const config::Mail& mail = master_.config().mail;
    if (b.result == Result::retry || mail.recipients.empty() ||
        std::find(mail.builders.begin(), mail.builders.end(), b.builder) == mail.builders.end()) {
        return;
    }
    const uint64_t now = bus::now_realtime_usec();
    BuildFacts f;
    f.id = b.id;
    f.builder = b.builder;
    f.worker = b.worker;
    f.result = std::string(to_string(b.result));
    f.exit_status = b.exit_status;
    f.usage = b.usage;
    f.master_name = master_.config().master.name;
    f.submitted_at = b.submitted_at;
    f.started_at = b.started_at;
    f.finished_at = b.finished_at;
    f.log_tail = read_log_tail(b.id);
    const OutgoingMail m = build_mail(f, mail.fromaddr, mail.recipients, stamp(now));

    QueuedMail q;
    q.worker = b.worker;
    q.build = b.id;
    q.subject = m.subject;
    q.from = m.from;
    q.to = m.to;
    q.text = m.text;
    q.queued_at = now;
    q.next_attempt = now;
    const log::Field fields[] = {{"BUILDYARD_BUILD", std::to_string(b.id)}, {"BUILDYARD_BUILDER", b.builder}};
    if (!store_.queue_mail(q)) {
        log::write(log::Level::err,
                   fmt::format("cannot queue the result mail of build {}: {}", b.id, store_.error()),
                   {fields[0], fields[1], {"BUILDYARD_WORKER", b.worker}});
        return;
    }
    master_.metrics().mail_queued();
    log::write(log::Level::info, fmt::format("result of build {} queued as mail {} to {}", b.id, q.id, join(q.to)),
               {fields[0], fields[1], {"BUILDYARD_WORKER", b.worker}});
    deliver();
}

std::string Notifier::read_log_tail(uint64_t build) const {
    Fd fd(::open(build_log_path(state_directory_, build).c_str(), O_RDONLY | O_CLOEXEC));
    struct stat st {};
    if (!fd || fstat(fd.get(), &st) < 0) {
        return {};
    }
    const off_t start = st.st_size > tail_bytes ? st.st_size - tail_bytes : 0;
    std::string data(static_cast<size_t>(st.st_size - start), '\0');
    const ssize_t n = pread(fd.get(), data.data(), data.size(), start);
    data.resize(n > 0 ? static_cast<size_t>(n) : 0);
    return std::string(log_tail(data, tail_lines));
}

MessageStamp Notifier::stamp(uint64_t now) const {
    std::string token = crypto::random_hex(8);
    if (token.empty()) {
        token.assign(16, '0');  // still a unique Message-ID, by its time
    }
    return MessageStamp{now, hostname_, token};
}

// --- delivery -----------------------------------------------------------------

SmtpSettings Notifier::smtp_settings() const {
    const config::Mail& m = master_.config().mail;
    SmtpSettings s;
    s.relayhost = m.relayhost;
    s.port = m.port;
    s.starttls = m.starttls;
    s.username = m.username;
    s.password = m.password;
    s.tls_ca_file = m.tls_ca_file;
    return s;
}

void Notifier::deliver() {
    if (auto n = store_.queued_mail_count()) {
        master_.metrics().mail_queue_length(*n);
    }
    if (in_flight_ || !retry_timer_) {
        return;
    }
    const uint64_t now = bus::now_realtime_usec();
    if (now < paused_until_) {
        arm(retry_timer_.get(), paused_until_);
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
        arm(retry_timer_.get(), store_.next_mail_time());
        return;
    }
    sd_event_source_set_enabled(retry_timer_.get(), SD_EVENT_OFF);
    sender_.submit(DeliveryJob{m->id, smtp_settings(), m->from, m->to, m->text});
    in_flight_ = std::move(m);
}

void Notifier::database_trouble(uint64_t now) {
    log::error("cannot update the mail queue: {}; mail delivery pauses for {} s", store_.error(),
               queue_retry / usec_per_sec);
    paused_until_ = now + queue_retry;
    arm(retry_timer_.get(), paused_until_);
}

int Notifier::on_retry_timer(sd_event_source*, uint64_t, void* userdata) {
    static_cast<Notifier*>(userdata)->deliver();
    return 0;
}

int Notifier::on_results(sd_event_source*, int, uint32_t, void* userdata) {
    auto* n = static_cast<Notifier*>(userdata);
    for (const auto& r : n->sender_.take_results()) {
        n->handle(r);
    }
    n->deliver();
    return 0;
}

void Notifier::handle(const DeliveryResult& r) {
    if (!in_flight_ || in_flight_->id != r.id) {
        return;
    }
    QueuedMail m = std::move(*in_flight_);
    in_flight_.reset();
    const uint64_t now = bus::now_realtime_usec();
    const SmtpOutcome& o = r.outcome;
    const std::string server = fmt::format("{}:{}", master_.config().mail.relayhost, master_.config().mail.port);
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
                                          join(o.accepted), server, reply));
        if (left.empty()) {
            master_.metrics().mail_sent();
            return;
        }
        m.to = left;
    }

    const unsigned attempts = m.attempts + 1;
    master_.metrics().mail_failed(now - m.queued_at >= give_up_after_);
    if (now - m.queued_at >= give_up_after_) {
        if (!store_.mail_given_up(m.id, now, o.error)) {
            database_trouble(now);
        }
        say(log::Level::err,
            fmt::format("gave up on mail {} \"{}\" to {} after {} attempts since {}: {} (server reply: {})", m.id,
                        m.subject, join(m.to), attempts, utc_time(m.queued_at), o.error, reply));
        return;
    }
    const uint64_t delay = retry_delay(attempts, retry_first_);
    if (!store_.mail_retry(m.id, m.to, attempts, now + delay, o.error)) {
        database_trouble(now);
    }
    say(log::Level::warning,
        fmt::format("cannot send mail {} \"{}\" to {}: {} (server reply: {}); trying again in {}", m.id, m.subject,
                    join(m.to), o.error, reply,
                    delay >= usec_per_sec ? format_duration(delay) : fmt::format("{} ms", delay / 1000)));
}

}  // namespace by::master
