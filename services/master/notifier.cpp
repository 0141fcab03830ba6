#include "master/notifier.hpp"

#include <algorithm>
#include <cstring>

#include <fcntl.h>
#include <fmt/ranges.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/bus.hpp"
#include "common/crypto.hpp"
#include "common/log.hpp"
#include "master/build_log_path.hpp"

namespace by::master {

namespace {

constexpr uint64_t usec_per_sec = 1000000;
// After a mail could not be queued (the database failed), try again then.
constexpr uint64_t queue_retry = 60 * usec_per_sec;
constexpr size_t tail_lines = 50;
constexpr off_t tail_bytes = 64 * 1024;

std::string this_host() {
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) != 0 || !*host) {
        return "localhost";
    }
    return host;
}

// `m` as a row of the mail queue, queued and due at `now`.
QueuedMail due_now(OutgoingMail m, uint64_t now) {
    QueuedMail q;
    q.subject = std::move(m.subject);
    q.from = std::move(m.from);
    q.to = std::move(m.to);
    q.text = std::move(m.text);
    q.queued_at = now;
    q.next_attempt = now;
    return q;
}

}  // namespace

Notifier::Notifier(sd_event* event, Store& store, Metrics& metrics, const config::Config& config,
                   WorkerFacts& workers, std::string state_directory)
    : event_(event),
      store_(store),
      config_(config),
      workers_(workers),
      state_directory_(std::move(state_directory)),
      hostname_(this_host()),
      tracker_([] { return bus::now_realtime_usec(); }),
      delivery_(event, store, metrics, config) {}

Notifier::~Notifier() = default;

bool Notifier::start(std::string& error) {
    if (!delivery_.start(error)) {
        return false;
    }
    sd_event_source* s = nullptr;
    int r = sd_event_add_defer(event_, &s, &Notifier::on_rearm, this);
    rearm_.reset(s);
    if (r >= 0) r = sd_event_source_set_enabled(s, SD_EVENT_OFF);
    if (r >= 0) r = missing_timer_.add(event_, &Notifier::on_missing_timer, this);
    if (r < 0) {
        error = std::string("cannot add the mail event sources: ") + std::strerror(-r);
        return false;
    }
    return true;
}

// --- missing workers --------------------------------------------------------

void Notifier::reconfigure() {
    const uint64_t now = bus::now_realtime_usec();
    std::map<std::string, uint64_t> seen;
    // The configured workers; removed ones get no more notices.
    for (const auto& [name, cfg] : config_.workers) {
        if (!workers_.worker_presence(name)) {
            continue;
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
        tracker_.configure(name, cfg.missing_timeout * usec_per_sec, !cfg.notify_on_missing.empty());
    }
    for (const auto& [name, first] : first_seen_) {
        if (!seen.count(name)) {
            tracker_.forget(name);
        }
    }
    first_seen_ = std::move(seen);
    for (const auto& [name, first] : first_seen_) {
        if (auto p = workers_.worker_presence(name)) {
            follow(name, *p);
        }
    }
    rearm_missing();
}

void Notifier::worker_changed(const std::string& worker) {
    if (!first_seen_.count(worker)) {
        return;
    }
    if (auto p = workers_.worker_presence(worker)) {
        follow(worker, *p);
    }
    rearm_missing();
}

void Notifier::follow(const std::string& worker, const WorkerPresence& p) {
    if (p.latent) {
        // A latent worker is missed only while its machine is wanted and has
        // not come up; a failed start is reported at once, not after the
        // timeout. Stopped on purpose, it is not missing.
        if (p.attached || p.trouble_since == 0) {
            tracker_.attached(worker);
        } else {
            tracker_.absent(worker, p.trouble_since, p.start_failed);
        }
        return;
    }
    if (p.attached || p.elsewhere) {
        tracker_.attached(worker);
    } else {
        // Never attached: away since the master first saw it.
        tracker_.absent(worker, p.last_disconnected ? p.last_disconnected : first_seen_.at(worker));
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
    n->missing_timer_.arm(n->tracker_.next_deadline());
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
    const auto p = workers_.worker_presence(name);
    const auto cfg = config_.workers.find(name);
    if (!p || p->attached || cfg == config_.workers.end()) {
        return;
    }
    const uint64_t now = bus::now_realtime_usec();
    const uint64_t loss = tracker_.missing_since(name);
    MissingFacts f;
    f.worker = name;
    f.master_name = config_.master.name;
    f.local = cfg->second.type == config::WorkerType::local;
    f.ever_attached = p->last_connected != 0;
    f.since = loss;
    f.timeout = cfg->second.missing_timeout;
    f.host = workers_.worker_info(name, "host");
    f.admin = workers_.worker_info(name, "admin");
    if (p->latent) {
        f.latent = true;
        f.start_failures = p->start_failures;
        if (f.start_failures > 0) f.start_error = p->last_start_error;
    }
    QueuedMail q = due_now(missing_mail(f, config_.mail.fromaddr, cfg->second.notify_on_missing, stamp(now)), now);
    q.worker = name;
    const bool queued = store_.queue_missing_mail(q, name, loss);
    if (!queued && store_.lost_hold()) {
        // Another master sharing the store mailed this loss first.
        tracker_.mark_notified(name);
        log::write(log::Level::info,
                   fmt::format("worker {} has been missing since {}; another master of the cluster mailed it", name,
                               utc_time(loss)),
                   {{"BUILDYARD_WORKER", name}});
        workers_.missing_changed(name);
        return;
    }
    if (!queued) {
        log::write(log::Level::err,
                   fmt::format("worker {} is missing, but its mail cannot be queued: {}; trying again in {} s", name,
                               store_.error(), queue_retry / usec_per_sec),
                   {{"BUILDYARD_WORKER", name}});
        tracker_.postpone(name, now + queue_retry);
        return;
    }
    tracker_.mark_notified(name);
    log::write(log::Level::warning,
               fmt::format("worker {} has been missing since {} (missing_timeout {} s); mail {} to {} queued", name,
                           utc_time(loss), cfg->second.missing_timeout, q.id, fmt::join(q.to, ", ")),
               {{"BUILDYARD_WORKER", name}, {"MESSAGE_ID", std::string(log::id::worker_missing)}});
    workers_.missing_changed(name);  // MissingNotified
    delivery_.queued();
}

// --- build results ------------------------------------------------------------

void Notifier::build_finished(const Build& b) {
    const config::Mail& mail = config_.mail;
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
    f.master_name = config_.master.name;
    f.submitted_at = b.submitted_at;
    f.started_at = b.started_at;
    f.finished_at = b.finished_at;
    f.log_tail = read_log_tail(b.id);
    QueuedMail q = due_now(build_mail(f, mail.fromaddr, mail.recipients, stamp(now)), now);
    q.worker = b.worker;
    q.build = b.id;
    const log::Field fields[] = {{"BUILDYARD_BUILD", std::to_string(b.id)}, {"BUILDYARD_BUILDER", b.builder}};
    if (!store_.queue_mail(q)) {
        log::write(log::Level::err,
                   fmt::format("cannot queue the result mail of build {}: {}", b.id, store_.error()),
                   {fields[0], fields[1], {"BUILDYARD_WORKER", b.worker}});
        return;
    }
    log::write(log::Level::info,
               fmt::format("result of build {} queued as mail {} to {}", b.id, q.id, fmt::join(q.to, ", ")),
               {fields[0], fields[1], {"BUILDYARD_WORKER", b.worker}});
    delivery_.queued();
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

}  // namespace by::master
