#include "latent/latent_store.hpp"

#include <cstdint>

#include <fmt/format.h>

namespace by::latent {

namespace {

// One live start per worker, enforced by the database too.
constexpr const char* schema = R"sql(
CREATE TABLE IF NOT EXISTS starts (
  start TEXT PRIMARY KEY,
  master TEXT NOT NULL,
  worker TEXT NOT NULL UNIQUE,
  backend TEXT NOT NULL,
  phase TEXT NOT NULL CHECK (phase IN ('creating', 'running', 'stopping')),
  instance TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL,
  lease_expires INTEGER NOT NULL,
  running_at INTEGER NOT NULL DEFAULT 0
);
)sql";

constexpr const char* columns =
    "start, master, worker, backend, phase, instance, created_at, lease_expires, running_at";

StartRow read_row(const sqlite::Statement& s) {
    StartRow row;
    row.start = s.text(0);
    row.master = s.text(1);
    row.worker = s.text(2);
    row.backend = s.text(3);
    row.phase = parse_phase(s.text(4)).value_or(Phase::stopping);
    row.instance = s.text(5);
    row.created_at = static_cast<uint64_t>(s.int64(6));
    row.lease_expires = static_cast<uint64_t>(s.int64(7));
    row.running_at = static_cast<uint64_t>(s.int64(8));
    return row;
}

// SQLite integers are signed; a saturated lease is stored as the largest one.
int64_t to_db(uint64_t v) { return v > INT64_MAX ? INT64_MAX : static_cast<int64_t>(v); }

}  // namespace

bool LatentStore::check(int rc, const char* what) {
    if (rc == SQLITE_OK || rc == SQLITE_DONE || rc == SQLITE_ROW) {
        return true;
    }
    error_ = fmt::format("{}: {}", what, db_.error_message());
    return false;
}

bool LatentStore::open(const std::string& directory) {
    const std::string path = directory + "/latent.db";
    if (int rc = db_.open(path); rc != SQLITE_OK) {
        error_ = fmt::format("cannot open {}: {}", path, db_.error_message());
        return false;
    }
    return check(db_.exec(schema), "cannot create the schema");
}

bool LatentStore::insert(const StartRow& row) {
    auto s = db_.prepare(fmt::format("INSERT INTO starts ({}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", columns));
    if (!s) return check(SQLITE_ERROR, "cannot prepare an insert");
    s.bind(1, row.start)
        .bind(2, row.master)
        .bind(3, row.worker)
        .bind(4, row.backend)
        .bind(5, to_string(row.phase))
        .bind(6, row.instance)
        .bind(7, to_db(row.created_at))
        .bind(8, to_db(row.lease_expires))
        .bind(9, to_db(row.running_at));
    return check(s.step(), "cannot record the start");
}

bool LatentStore::set_phase(const std::string& start, Phase phase) {
    auto s = db_.prepare("UPDATE starts SET phase = ? WHERE start = ?");
    if (!s) return check(SQLITE_ERROR, "cannot prepare an update");
    s.bind(1, to_string(phase)).bind(2, start);
    return check(s.step(), "cannot record the phase");
}

bool LatentStore::set_running(const std::string& start, const std::string& instance, uint64_t lease_expires,
                              uint64_t running_at) {
    auto s = db_.prepare(
        "UPDATE starts SET phase = 'running', instance = ?, lease_expires = ?, running_at = ? WHERE start = ?");
    if (!s) return check(SQLITE_ERROR, "cannot prepare an update");
    s.bind(1, instance).bind(2, to_db(lease_expires)).bind(3, to_db(running_at)).bind(4, start);
    return check(s.step(), "cannot record the instance");
}

bool LatentStore::set_lease(const std::string& start, uint64_t lease_expires) {
    auto s = db_.prepare("UPDATE starts SET lease_expires = ? WHERE start = ?");
    if (!s) return check(SQLITE_ERROR, "cannot prepare an update");
    s.bind(1, to_db(lease_expires)).bind(2, start);
    return check(s.step(), "cannot record the lease");
}

bool LatentStore::remove(const std::string& start) {
    auto s = db_.prepare("DELETE FROM starts WHERE start = ?");
    if (!s) return check(SQLITE_ERROR, "cannot prepare a delete");
    s.bind(1, start);
    return check(s.step(), "cannot delete the start");
}

std::optional<StartRow> LatentStore::load(const std::string& start) {
    auto s = db_.prepare(fmt::format("SELECT {} FROM starts WHERE start = ?", columns));
    if (!s) return std::nullopt;
    s.bind(1, start);
    if (s.step() != SQLITE_ROW) {
        return std::nullopt;
    }
    return read_row(s);
}

std::vector<StartRow> LatentStore::load_all() {
    std::vector<StartRow> out;
    auto s = db_.prepare(fmt::format("SELECT {} FROM starts ORDER BY created_at, start", columns));
    if (!s) {
        check(SQLITE_ERROR, "cannot prepare a select");
        return out;
    }
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) {
        out.push_back(read_row(s));
    }
    check(rc, "cannot read the starts");
    return out;
}

}  // namespace by::latent
