// The PostgreSQL store's part in mail: when each worker was first seen and
// which of its absences was mailed, a latent worker's failure streak, and
// the queue of mails to deliver.
#include "master/pg_store.hpp"
#include "master/store_json.hpp"

namespace by::master {

namespace {

// How long a master that took a mail to send keeps it from the others:
// longer than any SMTP session lasts (smtp.hpp's timeouts).
constexpr uint64_t mail_lease = 600'000'000;

constexpr const char* mail_columns =
    "id, worker, build, subject, sender, recipients, message, queued_at, attempts, next_attempt";

QueuedMail row_to_mail(const PGresult* r) {
    QueuedMail m;
    m.id = pg_u64(r, 0, 0);
    m.worker = pg_text(r, 0, 1);
    m.build = pg_u64(r, 0, 2);
    m.subject = pg_text(r, 0, 3);
    m.from = pg_text(r, 0, 4);
    m.to = store_json::to_list(pg_text(r, 0, 5));
    m.text = pg_text(r, 0, 6);
    m.queued_at = pg_u64(r, 0, 7);
    m.attempts = static_cast<unsigned>(pg_u64(r, 0, 8));
    m.next_attempt = pg_u64(r, 0, 9);
    return m;
}

}  // namespace

void PgStore::prepare_mail() {
    db_.prepare("load_missing", "SELECT first_seen, notified_loss FROM workers WHERE name = $1");
    db_.prepare("set_first_seen",
                "INSERT INTO workers (name, first_seen) VALUES ($1, $2) "
                "ON CONFLICT (name) DO UPDATE SET first_seen = $2 WHERE workers.first_seen = 0");
    db_.prepare("load_latent",
                "SELECT latent_failures, latent_quarantine_until, latent_last_error, latent_trouble_since "
                "FROM workers WHERE name = $1");
    db_.prepare("save_latent",
                "INSERT INTO workers (name, latent_failures, latent_quarantine_until, latent_last_error, "
                "latent_trouble_since) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO UPDATE SET "
                "latent_failures = $2, latent_quarantine_until = $3, latent_last_error = $4, "
                "latent_trouble_since = $5");
    db_.prepare("insert_mail",
                "INSERT INTO mail_queue (worker, build, subject, sender, recipients, message, queued_at, attempts, "
                "next_attempt) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id");
    // Once per loss, whichever master is first: a loss already mailed (by
    // another master sharing the store) is not mailed again.
    db_.prepare("mark_loss",
                "INSERT INTO workers (name, notified_loss) VALUES ($1, $2) "
                "ON CONFLICT (name) DO UPDATE SET notified_loss = $2 WHERE workers.notified_loss < $2");
    // The mail due first, leased for `mail_lease` so that no other master
    // sharing the store sends it meanwhile; its delivery's outcome (sent,
    // retry, given up) replaces the lease.
    db_.prepare("next_due_mail", std::string("UPDATE mail_queue SET next_attempt = $1 + ") +
                                     std::to_string(mail_lease) +
                                     " WHERE id = (SELECT id FROM mail_queue WHERE state = 'queued' AND "
                                     "next_attempt <= $1 ORDER BY next_attempt, id LIMIT 1 FOR UPDATE SKIP LOCKED) "
                                     "RETURNING " + mail_columns);
    db_.prepare("next_mail_time", "SELECT MIN(next_attempt) FROM mail_queue WHERE state = 'queued'");
    db_.prepare("queued_mail_count", "SELECT COUNT(*) FROM mail_queue WHERE state = 'queued'");
    db_.prepare("mail_sent", "UPDATE mail_queue SET state = 'sent', done_at = $2, last_error = '' WHERE id = $1");
    db_.prepare("mail_retry",
                "UPDATE mail_queue SET recipients = $2, attempts = $3, next_attempt = $4, last_error = $5 "
                "WHERE id = $1");
    db_.prepare("mail_given_up",
                "UPDATE mail_queue SET state = 'failed', done_at = $2, last_error = $3 WHERE id = $1");
    db_.prepare("prune_mail", "DELETE FROM mail_queue WHERE state <> 'queued' AND done_at < $1");
    db_.prepare("check_writes",
                "INSERT INTO meta (key, value) VALUES ('write_check', $1) "
                "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value");
}

MissingRecord PgStore::load_missing(const std::string& name) {
    MissingRecord m;
    PgResult r = run("cannot load a worker", "load_missing", {name});
    if (r && PQntuples(r.get()) > 0) {
        m.first_seen = pg_u64(r.get(), 0, 0);
        m.notified_loss = pg_u64(r.get(), 0, 1);
    }
    return m;
}

bool PgStore::set_first_seen(const std::string& name, uint64_t at) {
    return write("cannot record a worker", "set_first_seen", {name, pg_param(at)});
}

LatentMachine::Record PgStore::load_latent(const std::string& name) {
    LatentMachine::Record l;
    PgResult r = run("cannot load a latent worker", "load_latent", {name});
    if (r && PQntuples(r.get()) > 0) {
        l.failures = static_cast<unsigned>(pg_u64(r.get(), 0, 0));
        l.quarantine_until = pg_u64(r.get(), 0, 1);
        l.last_error = pg_text(r.get(), 0, 2);
        l.trouble_since = pg_u64(r.get(), 0, 3);
    }
    return l;
}

bool PgStore::save_latent(const std::string& name, const LatentMachine::Record& r) {
    return write("cannot record a latent worker's failures", "save_latent",
                 {name, std::to_string(r.failures), pg_param(r.quarantine_until), r.last_error,
                  pg_param(r.trouble_since)});
}

bool PgStore::insert_mail(QueuedMail& m) {
    PgResult r = run("cannot queue a mail", "insert_mail",
                     {m.worker, pg_param(m.build), m.subject, m.from, store_json::from_list(m.to), m.text,
                      pg_param(m.queued_at), std::to_string(m.attempts), pg_param(m.next_attempt)});
    if (!r) {
        return false;
    }
    m.id = pg_u64(r.get(), 0, 0);
    return true;
}

bool PgStore::queue_mail(QueuedMail& mail) { return insert_mail(mail); }

bool PgStore::queue_missing_mail(QueuedMail& mail, const std::string& worker, uint64_t loss) {
    lost_hold_ = false;
    if (in_transaction(
            [&] {
                if (!insert_mail(mail)) {
                    return false;
                }
                PgResult r = run("cannot record a missing notice", "mark_loss", {worker, pg_param(loss)});
                if (r && std::string_view(PQcmdTuples(r.get())) != "1") {
                    cause_ = "another master mailed this loss";
                    unanswered_ = false;
                    error_ = "worker " + worker + " is missing: " + cause_;
                    lost_hold_ = true;
                    return false;
                }
                return static_cast<bool>(r);
            },
            "cannot commit a missing notice")) {
        return true;
    }
    mail.id = 0;
    return false;
}

std::optional<QueuedMail> PgStore::next_due_mail(uint64_t now) {
    PgResult r = run("cannot read the mail queue", "next_due_mail", {pg_param(now)});
    if (!r || PQntuples(r.get()) == 0) {
        return std::nullopt;
    }
    return row_to_mail(r.get());
}

std::optional<uint64_t> PgStore::next_mail_time() {
    PgResult r = run("cannot read the mail queue", "next_mail_time", {});
    if (!r || PQntuples(r.get()) == 0 || PQgetisnull(r.get(), 0, 0)) {
        return std::nullopt;
    }
    return pg_u64(r.get(), 0, 0);
}

std::optional<uint64_t> PgStore::queued_mail_count() {
    PgResult r = run("cannot read the mail queue", "queued_mail_count", {});
    if (!r || PQntuples(r.get()) == 0) {
        return std::nullopt;
    }
    return pg_u64(r.get(), 0, 0);
}

bool PgStore::mail_sent(uint64_t id, uint64_t at) {
    return write("cannot record a sent mail", "mail_sent", {pg_param(id), pg_param(at)});
}

bool PgStore::mail_retry(uint64_t id, const std::vector<std::string>& to, unsigned attempts, uint64_t next_attempt,
                         const std::string& error) {
    return write("cannot reschedule a mail", "mail_retry",
                 {pg_param(id), store_json::from_list(to), std::to_string(attempts), pg_param(next_attempt), error});
}

bool PgStore::mail_given_up(uint64_t id, uint64_t at, const std::string& error) {
    return write("cannot record a mail given up", "mail_given_up", {pg_param(id), pg_param(at), error});
}

bool PgStore::prune_mail(uint64_t before) {
    return write("cannot prune the mail queue", "prune_mail", {pg_param(before)});
}

}  // namespace by::master
