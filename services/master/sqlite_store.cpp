#include "master/sqlite_store.hpp"

#include <algorithm>
#include <cstdlib>
#include <iterator>

#include "master/store_json.hpp"

namespace by::master {

namespace {

constexpr const char* schema = R"sql(
CREATE TABLE IF NOT EXISTS builds (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  request_id INTEGER NOT NULL DEFAULT 0,
  builder TEXT NOT NULL,
  worker TEXT NOT NULL DEFAULT '',
  state TEXT NOT NULL,
  result TEXT NOT NULL DEFAULT '',
  exit_status INTEGER NOT NULL DEFAULT -1,
  requested TEXT NOT NULL DEFAULT '{}',
  properties TEXT NOT NULL DEFAULT '{}',
  submitted_at INTEGER NOT NULL DEFAULT 0,
  started_at INTEGER NOT NULL DEFAULT 0,
  finished_at INTEGER NOT NULL DEFAULT 0,
  current_step INTEGER NOT NULL DEFAULT 0,
  retried_as INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS builds_unfinished ON builds(state) WHERE state != 'finished';
CREATE TABLE IF NOT EXISTS workers (
  name TEXT PRIMARY KEY,
  paused INTEGER NOT NULL DEFAULT 0,
  pause_reason TEXT NOT NULL DEFAULT '',
  last_connected INTEGER NOT NULL DEFAULT 0,
  last_disconnected INTEGER NOT NULL DEFAULT 0,
  info TEXT NOT NULL DEFAULT '{}'
);
)sql";

constexpr const char* build_columns =
    "id, request_id, builder, worker, state, result, exit_status, requested, properties, "
    "submitted_at, started_at, finished_at, current_step, retried_as, usage";

// Binds the mutable columns shared by insert and update, from index 1.
void bind_build(sqlite::Statement& s, const Build& b) {
    s.bind(1, static_cast<int64_t>(b.request_id))
        .bind(2, b.builder)
        .bind(3, b.worker)
        .bind(4, to_string(b.state))
        .bind(5, to_string(b.result))
        .bind(6, static_cast<int64_t>(b.exit_status))
        .bind(7, store_json::from_map(b.requested))
        .bind(8, store_json::from_map(b.properties))
        .bind(9, static_cast<int64_t>(b.submitted_at))
        .bind(10, static_cast<int64_t>(b.started_at))
        .bind(11, static_cast<int64_t>(b.finished_at))
        .bind(12, static_cast<int64_t>(b.current_step))
        .bind(13, static_cast<int64_t>(b.retried_as))
        .bind(14, store_json::from_usage(b.usage));
}

}  // namespace

bool SqliteStore::check(int rc, const char* what) {
    if (rc == SQLITE_OK || rc == SQLITE_DONE || rc == SQLITE_ROW) {
        return true;
    }
    cause_ = db_.error_message();
    error_ = std::string(what) + ": " + cause_;
    return false;
}

bool SqliteStore::open(const std::string& directory) {
    std::string path = directory + "/state.db";
    if (!check(db_.open(path), ("cannot open " + path).c_str())) {
        return false;
    }
    if (!check(db_.exec(schema), "cannot create the schema")) {
        return false;
    }
    if (!migrate()) {
        return false;
    }
    insert_build_ = db_.prepare(
        "INSERT INTO builds (request_id, builder, worker, state, result, exit_status, requested, properties, "
        "submitted_at, started_at, finished_at, current_step, retried_as, usage) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)");
    update_build_ = db_.prepare(
        "UPDATE builds SET request_id=?1, builder=?2, worker=?3, state=?4, result=?5, exit_status=?6, "
        "requested=?7, properties=?8, submitted_at=?9, started_at=?10, finished_at=?11, current_step=?12, "
        "retried_as=?13, usage=?14 WHERE id=?15");
    // Only a pending build can be claimed; start_build() changes no other column.
    claim_build_ = db_.prepare(
        "UPDATE builds SET state=?2, worker=?3, properties=?4, started_at=?5, current_step=?6 "
        "WHERE id=?1 AND state='pending'");
    load_build_ = db_.prepare(std::string("SELECT ") + build_columns + " FROM builds WHERE id=?1");
    save_worker_ = db_.prepare(
        "INSERT INTO workers (name, paused, pause_reason, last_connected, last_disconnected, info) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(name) DO UPDATE SET paused=?2, pause_reason=?3, "
        "last_connected=?4, last_disconnected=?5, info=?6");
    load_worker_ = db_.prepare(
        "SELECT paused, pause_reason, last_connected, last_disconnected, info FROM workers WHERE name=?1");
    if (!insert_build_ || !update_build_ || !claim_build_ || !load_build_ || !save_worker_ || !load_worker_) {
        error_ = "cannot prepare statements: " + db_.error_message();
        return false;
    }
    return true;
}

// The schema above is version 1. Each entry brings it one version further;
// new entries go at the end, and applied ones never change.
namespace {
constexpr const char* migrations[] = {
    // 2: missing-worker mail and the mail queue.
    R"sql(
ALTER TABLE workers ADD COLUMN first_seen INTEGER NOT NULL DEFAULT 0;
ALTER TABLE workers ADD COLUMN notified_loss INTEGER NOT NULL DEFAULT 0;
CREATE TABLE mail_queue (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  state TEXT NOT NULL DEFAULT 'queued',
  worker TEXT NOT NULL DEFAULT '',
  build INTEGER NOT NULL DEFAULT 0,
  subject TEXT NOT NULL DEFAULT '',
  sender TEXT NOT NULL,
  recipients TEXT NOT NULL,
  message TEXT NOT NULL,
  queued_at INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt INTEGER NOT NULL DEFAULT 0,
  last_error TEXT NOT NULL DEFAULT '',
  done_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX mail_queue_queued ON mail_queue(next_attempt) WHERE state = 'queued';
)sql",
    // 3: a latent worker's failure streak survives a restart.
    R"sql(
ALTER TABLE workers ADD COLUMN latent_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE workers ADD COLUMN latent_quarantine_until INTEGER NOT NULL DEFAULT 0;
ALTER TABLE workers ADD COLUMN latent_last_error TEXT NOT NULL DEFAULT '';
ALTER TABLE workers ADD COLUMN latent_trouble_since INTEGER NOT NULL DEFAULT 0;
)sql",
    // 4: what a build used (cpu_nsec, memory_peak, io_read_bytes,
    // io_write_bytes; only the known ones), as JSON.
    R"sql(
ALTER TABLE builds ADD COLUMN usage TEXT NOT NULL DEFAULT '{}';
)sql",
};
}  // namespace

bool SqliteStore::migrate() {
    if (!check(db_.exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"),
               "cannot create the meta table") ||
        !check(db_.exec("BEGIN IMMEDIATE"), "cannot begin a transaction")) {
        return false;
    }
    int64_t version = 1;
    {
        auto s = db_.prepare("SELECT value FROM meta WHERE key = 'schema_version'");
        if (s && s.step() == SQLITE_ROW) {
            version = std::max<int64_t>(1, std::strtoll(s.text(0).c_str(), nullptr, 10));
        }
    }
    const auto latest = static_cast<int64_t>(std::size(migrations)) + 1;
    if (version > latest) {
        // Written by a newer master: its columns mean what this one cannot
        // know, so do not touch it.
        db_.exec("ROLLBACK");
        cause_ = "the schema is version " + std::to_string(version) +
                 ", newer than this buildyard-masterd knows (up to " + std::to_string(latest) + ")";
        error_ = "cannot use the state database: " + cause_ + "; run a master of the version that wrote it";
        return false;
    }
    if (version == latest) {
        // Up to date: write nothing, so that a master can start on a full disk.
        return check(db_.exec("COMMIT"), "cannot end the schema check");
    }
    for (; version < latest; ++version) {
        if (!check(db_.exec(migrations[version - 1]),
                   ("cannot update the schema to version " + std::to_string(version + 1)).c_str())) {
            db_.exec("ROLLBACK");
            return false;
        }
    }
    auto set = db_.prepare("INSERT INTO meta (key, value) VALUES ('schema_version', ?1) "
                           "ON CONFLICT(key) DO UPDATE SET value = ?1");
    if (!set || !check(set.bind(1, std::to_string(version)).step(), "cannot record the schema version")) {
        db_.exec("ROLLBACK");
        return false;
    }
    return check(db_.exec("COMMIT"), "cannot commit the schema");
}

bool SqliteStore::record_submitted(Build& b) {
    insert_build_.reset();
    bind_build(insert_build_, b);
    if (!check(insert_build_.step(), "cannot insert a build")) {
        return false;
    }
    b.id = static_cast<uint64_t>(db_.last_insert_rowid());
    return true;
}

bool SqliteStore::update_build(const Build& b) {
    update_build_.reset();
    bind_build(update_build_, b);
    update_build_.bind(15, static_cast<int64_t>(b.id));
    return check(update_build_.step(), "cannot update a build");
}

void SqliteStore::rollback() {
    if (!sqlite3_get_autocommit(db_.get())) {
        db_.exec("ROLLBACK");
    }
}

Build SqliteStore::row_to_build(sqlite::Statement& s) {
    Build b;
    b.id = static_cast<uint64_t>(s.int64(0));
    b.request_id = static_cast<uint64_t>(s.int64(1));
    b.builder = s.text(2);
    b.worker = s.text(3);
    b.state = parse_build_state(s.text(4)).value_or(BuildState::finished);
    b.result = parse_result(s.text(5)).value_or(Result::exception);
    b.exit_status = static_cast<int>(s.int64(6));
    b.requested = store_json::to_map(s.text(7));
    b.properties = store_json::to_map(s.text(8));
    b.submitted_at = static_cast<uint64_t>(s.int64(9));
    b.started_at = static_cast<uint64_t>(s.int64(10));
    b.finished_at = static_cast<uint64_t>(s.int64(11));
    b.current_step = static_cast<unsigned>(s.int64(12));
    b.retried_as = static_cast<uint64_t>(s.int64(13));
    b.usage = store_json::to_usage(s.text(14));
    if (b.request_id == 0) {
        b.request_id = b.id;
    }
    return b;
}

std::optional<Build> SqliteStore::load_build(uint64_t id) {
    load_build_.reset();
    load_build_.bind(1, static_cast<int64_t>(id));
    if (load_build_.step() != SQLITE_ROW) {
        load_build_.reset();
        return std::nullopt;
    }
    Build b = row_to_build(load_build_);
    load_build_.reset();  // ends the read transaction
    return b;
}

std::vector<Build> SqliteStore::load_unfinished() {
    auto s = db_.prepare(std::string("SELECT ") + build_columns +
                         " FROM builds WHERE state != 'finished' ORDER BY id");
    std::vector<Build> out;
    while (s && s.step() == SQLITE_ROW) {
        out.push_back(row_to_build(s));
    }
    return out;
}

std::vector<Build> SqliteStore::list_builds(uint64_t before, uint64_t limit) {
    // Only the columns a listing shows: no JSON to parse per row. Bound, not
    // pasted: a limit past INT64_MAX would not even parse as SQL.
    constexpr auto most = static_cast<uint64_t>(INT64_MAX);
    auto s = db_.prepare("SELECT id, builder, worker, state, result FROM builds WHERE id < ?1 ORDER BY id DESC "
                         "LIMIT ?2");
    std::vector<Build> out;
    if (!s) {
        return out;
    }
    s.bind(1, static_cast<int64_t>(before == 0 || before > most ? most : before))
        .bind(2, static_cast<int64_t>(std::min(limit, most)));
    while (s.step() == SQLITE_ROW) {
        Build b;
        b.id = static_cast<uint64_t>(s.int64(0));
        b.builder = s.text(1);
        b.worker = s.text(2);
        b.state = parse_build_state(s.text(3)).value_or(BuildState::finished);
        b.result = parse_result(s.text(4)).value_or(Result::exception);
        out.push_back(std::move(b));
    }
    return out;
}

std::optional<WorkerRecord> SqliteStore::load_worker(const std::string& name) {
    load_worker_.reset();
    load_worker_.bind(1, name);
    if (load_worker_.step() != SQLITE_ROW) {
        load_worker_.reset();
        return std::nullopt;
    }
    WorkerRecord w;
    w.name = name;
    w.paused = load_worker_.int64(0) != 0;
    w.pause_reason = load_worker_.text(1);
    w.last_connected = static_cast<uint64_t>(load_worker_.int64(2));
    w.last_disconnected = static_cast<uint64_t>(load_worker_.int64(3));
    w.info = store_json::to_map(load_worker_.text(4));
    load_worker_.reset();
    return w;
}

bool SqliteStore::save_worker(const WorkerRecord& w) {
    save_worker_.reset();
    save_worker_.bind(1, w.name)
        .bind(2, static_cast<int64_t>(w.paused ? 1 : 0))
        .bind(3, w.pause_reason)
        .bind(4, static_cast<int64_t>(w.last_connected))
        .bind(5, static_cast<int64_t>(w.last_disconnected))
        .bind(6, store_json::from_map(w.info));
    return check(save_worker_.step(), "cannot save a worker");
}

std::unique_ptr<Store> open_sqlite_store(const std::string& directory, std::string& error) {
    auto store = std::make_unique<SqliteStore>();
    if (!store->open(directory)) {
        error = store->error();
        return nullptr;
    }
    return store;
}

}  // namespace by::master
