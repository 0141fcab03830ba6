// The store's part in mail: when each worker was first seen and which of
// its absences was mailed, and the queue of mails to deliver. Mail is rare,
// so statements are prepared when used.
#include "master/sqlite_store.hpp"

#include "master/store_json.hpp"

namespace by::master {

namespace {

constexpr const char* mail_columns =
    "id, worker, build, subject, sender, recipients, message, queued_at, attempts, next_attempt";

QueuedMail row_to_mail(sqlite::Statement& s) {
    QueuedMail m;
    m.id = static_cast<uint64_t>(s.int64(0));
    m.worker = s.text(1);
    m.build = static_cast<uint64_t>(s.int64(2));
    m.subject = s.text(3);
    m.from = s.text(4);
    m.to = store_json::to_list(s.text(5));
    m.text = s.text(6);
    m.queued_at = static_cast<uint64_t>(s.int64(7));
    m.attempts = static_cast<unsigned>(s.int64(8));
    m.next_attempt = static_cast<uint64_t>(s.int64(9));
    return m;
}

}  // namespace

MissingRecord SqliteStore::load_missing(const std::string& name) {
    MissingRecord r;
    auto s = db_.prepare("SELECT first_seen, notified_loss FROM workers WHERE name = ?1");
    if (s && s.bind(1, name).step() == SQLITE_ROW) {
        r.first_seen = static_cast<uint64_t>(s.int64(0));
        r.notified_loss = static_cast<uint64_t>(s.int64(1));
    }
    return r;
}

bool SqliteStore::set_first_seen(const std::string& name, uint64_t at) {
    auto s = db_.prepare(
        "INSERT INTO workers (name, first_seen) VALUES (?1, ?2) "
        "ON CONFLICT(name) DO UPDATE SET first_seen = ?2 WHERE first_seen = 0");
    return s && check(s.bind(1, name).bind(2, static_cast<int64_t>(at)).step(), "cannot record a worker");
}

LatentMachine::Record SqliteStore::load_latent(const std::string& name) {
    LatentMachine::Record r;
    auto s = db_.prepare(
        "SELECT latent_failures, latent_quarantine_until, latent_last_error, latent_trouble_since "
        "FROM workers WHERE name = ?1");
    if (s && s.bind(1, name).step() == SQLITE_ROW) {
        r.failures = static_cast<unsigned>(s.int64(0));
        r.quarantine_until = static_cast<uint64_t>(s.int64(1));
        r.last_error = s.text(2);
        r.trouble_since = static_cast<uint64_t>(s.int64(3));
    }
    return r;
}

bool SqliteStore::save_latent(const std::string& name, const LatentMachine::Record& r) {
    auto s = db_.prepare(
        "INSERT INTO workers (name, latent_failures, latent_quarantine_until, latent_last_error, "
        "latent_trouble_since) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(name) DO UPDATE SET "
        "latent_failures = ?2, latent_quarantine_until = ?3, latent_last_error = ?4, latent_trouble_since = ?5");
    return s && check(s.bind(1, name)
                          .bind(2, static_cast<int64_t>(r.failures))
                          .bind(3, static_cast<int64_t>(r.quarantine_until))
                          .bind(4, r.last_error)
                          .bind(5, static_cast<int64_t>(r.trouble_since))
                          .step(),
                      "cannot record a latent worker's failures");
}

bool SqliteStore::insert_mail(QueuedMail& m) {
    auto s = db_.prepare(
        "INSERT INTO mail_queue (worker, build, subject, sender, recipients, message, queued_at, attempts, "
        "next_attempt) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
    if (!s) {
        return check(SQLITE_ERROR, "cannot queue a mail");
    }
    s.bind(1, m.worker)
        .bind(2, static_cast<int64_t>(m.build))
        .bind(3, m.subject)
        .bind(4, m.from)
        .bind(5, store_json::from_list(m.to))
        .bind(6, m.text)
        .bind(7, static_cast<int64_t>(m.queued_at))
        .bind(8, static_cast<int64_t>(m.attempts))
        .bind(9, static_cast<int64_t>(m.next_attempt));
    if (!check(s.step(), "cannot queue a mail")) {
        return false;
    }
    m.id = static_cast<uint64_t>(db_.last_insert_rowid());
    return true;
}

bool SqliteStore::queue_mail(QueuedMail& mail) { return insert_mail(mail); }

bool SqliteStore::queue_missing_mail(QueuedMail& mail, const std::string& worker, uint64_t loss) {
    if (!check(db_.exec("BEGIN IMMEDIATE"), "cannot begin a transaction")) {
        return false;
    }
    auto mark = db_.prepare(
        "INSERT INTO workers (name, notified_loss) VALUES (?1, ?2) "
        "ON CONFLICT(name) DO UPDATE SET notified_loss = ?2");
    if (!insert_mail(mail) || !mark ||
        !check(mark.bind(1, worker).bind(2, static_cast<int64_t>(loss)).step(), "cannot record a missing notice")) {
        db_.exec("ROLLBACK");
        mail.id = 0;
        return false;
    }
    return check(db_.exec("COMMIT"), "cannot commit a missing notice");
}

std::optional<QueuedMail> SqliteStore::next_due_mail(uint64_t now) {
    auto s = db_.prepare(std::string("SELECT ") + mail_columns +
                         " FROM mail_queue WHERE state = 'queued' AND next_attempt <= ?1 "
                         "ORDER BY next_attempt, id LIMIT 1");
    if (!s || s.bind(1, static_cast<int64_t>(now)).step() != SQLITE_ROW) {
        return std::nullopt;
    }
    return row_to_mail(s);
}

std::optional<uint64_t> SqliteStore::next_mail_time() {
    auto s = db_.prepare("SELECT MIN(next_attempt) FROM mail_queue WHERE state = 'queued'");
    if (!s || s.step() != SQLITE_ROW || s.is_null(0)) {
        return std::nullopt;
    }
    return static_cast<uint64_t>(s.int64(0));
}

std::optional<uint64_t> SqliteStore::queued_mail_count() {
    auto s = db_.prepare("SELECT COUNT(*) FROM mail_queue WHERE state = 'queued'");
    if (!s || s.step() != SQLITE_ROW) {
        return std::nullopt;
    }
    return static_cast<uint64_t>(s.int64(0));
}

bool SqliteStore::mail_sent(uint64_t id, uint64_t at) {
    auto s = db_.prepare("UPDATE mail_queue SET state = 'sent', done_at = ?2, last_error = '' WHERE id = ?1");
    return s && check(s.bind(1, static_cast<int64_t>(id)).bind(2, static_cast<int64_t>(at)).step(),
                      "cannot record a sent mail");
}

bool SqliteStore::mail_retry(uint64_t id, const std::vector<std::string>& to, unsigned attempts, uint64_t next_attempt,
                       const std::string& error) {
    auto s = db_.prepare(
        "UPDATE mail_queue SET recipients = ?2, attempts = ?3, next_attempt = ?4, last_error = ?5 WHERE id = ?1");
    if (!s) {
        return check(SQLITE_ERROR, "cannot reschedule a mail");
    }
    s.bind(1, static_cast<int64_t>(id))
        .bind(2, store_json::from_list(to))
        .bind(3, static_cast<int64_t>(attempts))
        .bind(4, static_cast<int64_t>(next_attempt))
        .bind(5, error);
    return check(s.step(), "cannot reschedule a mail");
}

bool SqliteStore::mail_given_up(uint64_t id, uint64_t at, const std::string& error) {
    auto s = db_.prepare("UPDATE mail_queue SET state = 'failed', done_at = ?2, last_error = ?3 WHERE id = ?1");
    return s && check(s.bind(1, static_cast<int64_t>(id)).bind(2, static_cast<int64_t>(at)).bind(3, error).step(),
                      "cannot record a mail given up");
}

bool SqliteStore::prune_mail(uint64_t before) {
    auto s = db_.prepare("DELETE FROM mail_queue WHERE state != 'queued' AND done_at < ?1");
    return s && check(s.bind(1, static_cast<int64_t>(before)).step(), "cannot prune the mail queue");
}

bool SqliteStore::check_writes(uint64_t now) {
    auto s = db_.prepare(
        "INSERT INTO meta (key, value) VALUES ('write_check', ?1) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value");
    return s && check(s.bind(1, std::to_string(now)).step(), "cannot write");
}

}  // namespace by::master
