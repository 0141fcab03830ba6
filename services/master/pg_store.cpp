#include "master/pg_store.hpp"

#include <algorithm>
#include <iterator>

#include <fmt/format.h>

#include "master/pg_notice.hpp"
#include "master/store_json.hpp"

namespace by::master {

namespace {

// A write of a held build goes through only while this master holds its
// fence (the parameters numbered `name` and `fence`): the row in `masters` is locked FOR
// SHARE until the commit, so a master declaring it dead (which updates
// that row) waits for the write, or the write, rechecking the row after
// the declaration's commit, finds the fence gone and changes nothing. A
// store that has not joined (name '') writes as before.
std::string fenced_write(const std::string& statement, int name, int fence) {
    return fmt::format("WITH holder AS (SELECT 1 FROM masters WHERE name = ${0} AND fence = ${1} "
                       "AND status = 'joined' FOR SHARE) {2} AND (${0} = '' OR EXISTS (SELECT 1 FROM holder))",
                       name, fence, statement);
}

constexpr const char* build_columns =
    "id, request_id, builder, worker, state, result, exit_status, requested, properties, "
    "submitted_at, started_at, finished_at, current_step, retried_as, usage";

// The mutable columns, as $1..$14 of insert_build and update_build.
std::vector<std::string> build_params(const Build& b) {
    return {pg_param(b.request_id),
            b.builder,
            b.worker,
            std::string(to_string(b.state)),
            std::string(to_string(b.result)),
            std::to_string(b.exit_status),
            store_json::from_map(b.requested),
            store_json::from_map(b.properties),
            pg_param(b.submitted_at),
            pg_param(b.started_at),
            pg_param(b.finished_at),
            std::to_string(b.current_step),
            pg_param(b.retried_as),
            store_json::from_usage(b.usage)};
}

Build row_to_build(const PGresult* r, int i) {
    return pg_build_from_columns([&](int c) { return pg_text(r, i, c); });
}

}  // namespace

const char* pg_build_columns() { return build_columns; }
std::string pg_fenced_write(const std::string& statement, int name, int fence) {
    return fenced_write(statement, name, fence);
}
Build pg_row_to_build(const PGresult* r, int i) { return row_to_build(r, i); }
std::vector<Build> pg_rows_to_builds(const PGresult* r) {
    std::vector<Build> out;
    for (int i = 0; i < PQntuples(r); ++i) {
        out.push_back(row_to_build(r, i));
    }
    return out;
}
std::string pg_id_array(const std::vector<uint64_t>& ids) {
    std::string out = "{";
    for (uint64_t id : ids) {
        out += (out.size() > 1 ? "," : "") + pg_param(id);
    }
    return out + "}";
}
std::vector<std::string> pg_build_params(const Build& b) { return build_params(b); }

PgStore::PgStore(std::string uri, std::string password, std::chrono::milliseconds deadline)
    : db_(uri, std::move(password), deadline), uri_(std::move(uri)) {}

bool PgStore::failed(const std::string& what) {
    lost_hold_ = false;  // a failure of the database's, not a refusal
    unanswered_ = db_.unanswered();
    cause_ = db_.cause();
    error_ = what + ": " + cause_;
    return false;
}

PgResult PgStore::run(const char* what, const char* name, const std::vector<std::string>& params) {
    PgResult r = db_.run(name, params);
    if (!r) {
        failed(what);
    }
    return r;
}

bool PgStore::open() {
    if (!db_.connect()) {
        return failed("cannot connect to PostgreSQL at " + uri_);
    }
    if (!migrate()) {
        return false;
    }
    prepare_builds();
    prepare_mail();
    prepare_cluster();
    prepare_logs();
    // prepare() prepares on the open connection; a failure there dropped it.
    if (!db_.exec("SELECT 1")) {
        return failed("cannot prepare the statements in " + uri_);
    }
    return true;
}

void PgStore::prepare_builds() {
    // A new pending build wakes the masters that LISTEN (pg_listener.hpp)
    // when it commits. The payload (pg_notice.hpp) is this master's name
    // and the builder; on pending_row_channel, first, with the whole row
    // when that fits: the master that pulls it then claims it at once, with
    // no SELECT first. (The target list is evaluated in order.)
    db_.prepare("insert_build",
                std::string("WITH b AS (INSERT INTO builds (request_id, builder, worker, state, result, exit_status, "
                            "requested, properties, submitted_at, started_at, finished_at, current_step, retried_as, "
                            "usage) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING ") +
                    build_columns + "), n AS (SELECT id, state, $15 || chr(10) || builder AS head, json_build_array(" +
                    build_columns + ")::text AS row FROM b) SELECT id, CASE WHEN state = 'pending' AND octet_length(head) + 1 + "
                    "octet_length(row) <= " + std::to_string(pg_notify_payload_max) + " THEN pg_notify('" +
                    pending_row_channel + "', head || chr(10) || row) END, CASE WHEN state = 'pending' THEN pg_notify('" +
                    pending_channel + "', head) END FROM n");
    // A submission that a worker of this master takes at once
    // (record_started_submissions): inserted without waking the other
    // masters, then claimed, fenced, in the same transaction. lastval() is
    // the id the insert just took; in a sub-select it is evaluated once,
    // so that the row is found by its key (lastval() itself is volatile).
    // If the claim finds this master fenced, the build stays pending and is
    // announced (announce_pending) after.
    db_.prepare("insert_build_quiet",
                "INSERT INTO builds (request_id, builder, worker, state, result, exit_status, requested, "
                "properties, submitted_at, started_at, finished_at, current_step, retried_as, usage) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id");
    db_.prepare("claim_inserted",
                fenced_write("UPDATE builds SET state=$1, worker=$2, properties=$3, started_at=$4, current_step=$5, "
                             "master=$6, fence=$7 WHERE id=(SELECT lastval()) AND state='pending'",
                             6, 7));
    db_.prepare("announce_pending", "SELECT pg_notify('" + std::string(pending_channel) + "', $1 || chr(10) || $2)");
    // A build this master holds (or a pending one) that no one ended yet.
    db_.prepare("update_build",
                fenced_write("UPDATE builds SET request_id=$1, builder=$2, worker=$3, state=$4, result=$5, "
                             "exit_status=$6, requested=$7, properties=$8, submitted_at=$9, started_at=$10, "
                             "finished_at=$11, current_step=$12, retried_as=$13, usage=$14 WHERE id=$15 "
                             "AND state <> 'finished' AND (state = 'pending' OR master = $16 OR master = '')",
                             16, 17));
    // Only a pending build can be claimed; start_build() changes no other
    // column. A concurrent claim of the same row waits for the first one's
    // commit and then finds it no longer pending.
    // Or a build this master (joined, with this fence) claimed already: it
    // claims only what it holds pending, so that is a claim whose commit it
    // did not see (the connection was lost, or its deadline passed, while
    // the server committed). Claimed again, the build runs; without this,
    // its row would say running, here, while nothing ran it.
    db_.prepare("claim_build",
                fenced_write("UPDATE builds SET state=$2, worker=$3, properties=$4, started_at=$5, current_step=$6, "
                             "master=$7, fence=$8 WHERE id=$1 AND (state='pending' OR (state='running' AND "
                             "master=$7 AND fence=$8 AND $7 <> ''))",
                             7, 8));
    db_.prepare("request_cancel", "SELECT pg_notify('" + std::string(cancel_channel) + "', $1)");
    db_.prepare("announce_taken", "SELECT pg_notify('" + std::string(taken_channel) + "', $1)");
    // Why a fenced write changed nothing.
    db_.prepare("hold_of",
                "SELECT (SELECT state FROM builds WHERE id = $1), (SELECT master FROM builds WHERE id = $1), "
                "EXISTS (SELECT 1 FROM masters WHERE name = $2 AND fence = $3 AND status = 'joined')");
    db_.prepare("load_build", std::string("SELECT ") + build_columns + " FROM builds WHERE id=$1");
    // At start: every pending build, and the started ones this master held.
    db_.prepare("load_unfinished",
                std::string("SELECT ") + build_columns +
                    " FROM builds WHERE state <> 'finished' AND (state = 'pending' OR master = $1 OR master = '') "
                    "ORDER BY id");
    db_.prepare("load_pending",
                std::string("SELECT ") + build_columns +
                    " FROM builds WHERE state = 'pending' AND builder = $1 AND NOT (id = ANY($2::bigint[])) "
                    "ORDER BY CASE WHEN request_id = 0 THEN id ELSE request_id END, id LIMIT $3");
    db_.prepare("list_builds",
                "SELECT id, builder, worker, state, result FROM builds WHERE id < $1 ORDER BY id DESC LIMIT $2");
    // attached_to: set by the master it attaches to, cleared only by that
    // one ($8: this master's name).
    db_.prepare("save_worker",
                "INSERT INTO workers (name, paused, pause_reason, last_connected, last_disconnected, info, attached_to) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO UPDATE SET paused=$2, pause_reason=$3, "
                "last_connected=$4, last_disconnected=$5, info=$6, attached_to = CASE WHEN $7 <> '' THEN $7 "
                "WHEN workers.attached_to = $8 THEN '' ELSE workers.attached_to END");
    db_.prepare("load_presence", "SELECT name, attached_to, last_disconnected FROM workers ORDER BY name");
    db_.prepare("load_worker",
                "SELECT paused, pause_reason, last_connected, last_disconnected, info FROM workers WHERE name=$1");
}

std::vector<std::string> PgStore::insert_params(const Build& b) const {
    auto params = build_params(b);
    params.push_back(holder_);
    return params;
}

bool PgStore::record_submitted(Build& b) {
    PgResult r = run("cannot insert a build", "insert_build", insert_params(b));
    if (!r) {
        return false;
    }
    b.id = pg_u64(r.get(), 0, 0);
    return true;
}

std::vector<std::string> PgStore::update_params(const Build& b) const {
    auto params = build_params(b);
    params.push_back(pg_param(b.id));
    params.push_back(holder_);
    params.push_back(pg_param(holder_fence_));
    return params;
}

std::vector<std::string> PgStore::claim_inserted_params(const Build& b) const {
    return {std::string(to_string(b.state)), b.worker, store_json::from_map(b.properties), pg_param(b.started_at),
            std::to_string(b.current_step), holder_, pg_param(holder_fence_)};
}

std::vector<std::string> PgStore::claim_params(const Build& b) const {
    auto params = claim_inserted_params(b);
    params.insert(params.begin(), pg_param(b.id));
    return params;
}

bool PgStore::update_build(const Build& b) {
    PgResult r = run("cannot update a build", "update_build", update_params(b));
    if (!r) {
        return false;
    }
    if (std::string_view(PQcmdTuples(r.get())) == "1") {
        return true;
    }
    refused(b.id, "cannot record build");
    return false;
}

PgStore::Refusal PgStore::refused(uint64_t id, const char* what) {
    lost_hold_ = false;
    unanswered_ = false;
    PgResult r = run("cannot read who holds a build", "hold_of", {pg_param(id), holder_, pg_param(holder_fence_)});
    if (!r) {
        return Refusal::unknown;
    }
    const std::string state = pg_text(r.get(), 0, 0);
    const std::string master = pg_text(r.get(), 0, 1);
    Refusal why = Refusal::unknown;
    if (!holder_.empty() && pg_text(r.get(), 0, 2) != "t") {
        cause_ = fmt::format("this master ('{}', fence {}) was fenced", holder_, holder_fence_);
        why = Refusal::fenced;
    } else if (state.empty()) {
        cause_ = "there is no such build";
    } else if (state == "finished") {
        cause_ = "it has ended already";
        why = Refusal::taken;
    } else if (state != "pending") {
        cause_ = fmt::format("master '{}' holds it", master);
        why = Refusal::taken;
    } else {
        cause_ = "it is pending";
    }
    lost_hold_ = why != Refusal::unknown;
    error_ = fmt::format("{} {}: {}", what, id, cause_);
    return why;
}

std::optional<Build> PgStore::load_build(uint64_t id) {
    PgResult r = run("cannot load a build", "load_build", {pg_param(id)});
    if (!r || PQntuples(r.get()) == 0) {
        return std::nullopt;
    }
    return row_to_build(r.get(), 0);
}

std::vector<Build> PgStore::load_unfinished() {
    PgResult r = run("cannot load the unfinished builds", "load_unfinished", {holder_});
    return r ? pg_rows_to_builds(r.get()) : std::vector<Build>{};
}

std::optional<std::vector<Build>> PgStore::load_pending(const std::string& builder, const std::vector<uint64_t>& known,
                                                       uint64_t limit) {
    PgResult r = run("cannot load the pending builds", "load_pending", {builder, pg_id_array(known), pg_param(limit)});
    if (!r) {
        return std::nullopt;
    }
    return pg_rows_to_builds(r.get());
}

bool PgStore::announce_taken(const std::vector<uint64_t>& ids) {
    // A payload holds less than 8000 bytes.
    std::string payload;
    for (size_t i = 0; i < ids.size(); ++i) {
        payload += (payload.empty() ? "" : ",") + pg_param(ids[i]);
        if (payload.size() > 7000 || i + 1 == ids.size()) {
            if (!write("cannot tell the other masters which builds this one started", "announce_taken", {payload})) {
                return false;
            }
            payload.clear();
        }
    }
    return true;
}

std::vector<Build> PgStore::list_builds(uint64_t before, uint64_t limit) {
    constexpr auto most = static_cast<uint64_t>(INT64_MAX);
    std::vector<Build> out;
    PgResult r = run("cannot list builds", "list_builds",
                     {pg_param(before == 0 || before > most ? most : before), pg_param(std::min(limit, most))});
    for (int i = 0; r && i < PQntuples(r.get()); ++i) {
        Build b;
        b.id = pg_u64(r.get(), i, 0);
        b.builder = pg_text(r.get(), i, 1);
        b.worker = pg_text(r.get(), i, 2);
        b.state = parse_build_state(pg_text(r.get(), i, 3)).value_or(BuildState::finished);
        b.result = parse_result(pg_text(r.get(), i, 4)).value_or(Result::exception);
        out.push_back(std::move(b));
    }
    return out;
}

std::optional<WorkerRecord> PgStore::load_worker(const std::string& name) {
    PgResult r = run("cannot load a worker", "load_worker", {name});
    if (!r || PQntuples(r.get()) == 0) {
        return std::nullopt;
    }
    WorkerRecord w;
    w.name = name;
    w.paused = pg_text(r.get(), 0, 0) == "t";
    w.pause_reason = pg_text(r.get(), 0, 1);
    w.last_connected = pg_u64(r.get(), 0, 2);
    w.last_disconnected = pg_u64(r.get(), 0, 3);
    w.info = store_json::to_map(pg_text(r.get(), 0, 4));
    return w;
}

bool PgStore::save_worker(const WorkerRecord& w) {
    return write("cannot save a worker", "save_worker",
                 {w.name, w.paused ? "true" : "false", w.pause_reason, pg_param(w.last_connected),
                  pg_param(w.last_disconnected), store_json::from_map(w.info), w.attached_to, holder_});
}

std::optional<std::vector<SharedPresence>> PgStore::load_presence() {
    PgResult r = run("cannot read the workers' presence", "load_presence", {});
    if (!r) {
        return std::nullopt;
    }
    std::vector<SharedPresence> out;
    for (int i = 0; i < PQntuples(r.get()); ++i) {
        out.push_back({pg_text(r.get(), i, 0), pg_text(r.get(), i, 1), pg_u64(r.get(), i, 2)});
    }
    return out;
}

std::unique_ptr<Store> open_pg_store(const std::string& uri, const std::string& password, std::string& error,
                                     PgStore::Migrating migrating) {
    auto store = std::make_unique<PgStore>(uri, password);
    store->on_migrating(std::move(migrating));
    if (!store->open()) {
        error = store->error();
        return nullptr;
    }
    return store;
}

}  // namespace by::master
