// The PostgreSQL store's part in the cluster: the table `masters`, every
// time in it from the database's clock (now()), read as microseconds since
// the epoch.
#include "master/pg_store.hpp"

namespace by::master {

namespace {

// A timestamptz column as microseconds since the epoch (numeric, exact).
#define BY_USEC(col) "(extract(epoch from " col ") * 1000000)::bigint"

constexpr const char* member_columns =
    "name, status, fence, " BY_USEC("heartbeat_at") ", " BY_USEC("started_at")
    ", host, address, pid, declared_dead_by";

MemberRow row_to_member(const PGresult* r, int i, int first) {
    MemberRow m;
    m.name = pg_text(r, i, first);
    m.status = pg_text(r, i, first + 1);
    m.fence = pg_u64(r, i, first + 2);
    m.heartbeat_at = pg_u64(r, i, first + 3);
    m.started_at = pg_u64(r, i, first + 4);
    m.host = pg_text(r, i, first + 5);
    m.address = pg_text(r, i, first + 6);
    m.pid = static_cast<uint32_t>(pg_u64(r, i, first + 7));
    m.declared_dead_by = pg_text(r, i, first + 8);
    return m;
}

}  // namespace

void PgStore::prepare_cluster() {
    db_.prepare("member_placeholder", "INSERT INTO masters (name) VALUES ($1) ON CONFLICT (name) DO NOTHING");
    db_.prepare("member_lock", std::string("SELECT " BY_USEC("now()") ", ") + member_columns +
                                   " FROM masters WHERE name = $1 FOR UPDATE");
    db_.prepare("member_join",
                "UPDATE masters SET status = 'joined', fence = fence + 1, heartbeat_at = now(), started_at = now(), "
                "host = $2, address = $3, pid = $4, declared_dead_by = '' WHERE name = $1 RETURNING fence");
    // `old` is the row as it was before this statement: the previous heartbeat.
    db_.prepare("member_heartbeat",
                "UPDATE masters m SET heartbeat_at = now() FROM masters old "
                "WHERE m.name = $1 AND old.name = $1 AND m.fence = $2 AND m.status = 'joined' "
                "RETURNING " BY_USEC("now()") " - " BY_USEC("old.heartbeat_at"));
    // One row even without members, for the time.
    db_.prepare("member_list", std::string("SELECT " BY_USEC("n.t") ", ") + member_columns +
                                   " FROM (SELECT now() AS t) n LEFT JOIN masters ON true ORDER BY name");
    db_.prepare("member_declare_dead",
                "UPDATE masters SET status = 'dead', fence = fence + 1, declared_dead_by = $4 "
                "WHERE name = $1 AND fence = $2 AND " BY_USEC("heartbeat_at") " = $3 AND status = 'joined' "
                "RETURNING fence");
    // The builds a dead master held, locked for its takeover.
    db_.prepare("held_builds", std::string("SELECT ") + pg_build_columns() +
                                   " FROM builds WHERE master = $1 AND state IN ('running', 'cleanup') "
                                   "ORDER BY id FOR UPDATE");
    db_.prepare("take_over",
                "UPDATE builds SET state=$2, result=$3, finished_at=$4, retried_as=$5 WHERE id=$1 AND master=$6");
    // Its workers are attached nowhere since `now`.
    db_.prepare("release_workers",
                "UPDATE workers SET attached_to = '', last_disconnected = $2 WHERE attached_to = $1");
    // Started here in the store, but not held here (release_unheld): pending
    // again, as the submission left it.
    db_.prepare("release_unheld",
                pg_fenced_write("UPDATE builds SET state = 'pending', worker = '', properties = requested, "
                                "started_at = 0, current_step = 0, master = '', fence = 0 WHERE state = 'running' "
                                "AND master = $1 AND fence = $2 AND $1 <> '' AND NOT (id = ANY($3::bigint[]))",
                                1, 2) +
                    " RETURNING " + pg_build_columns() + ", pg_notify('" + pending_channel +
                    "', $1 || chr(10) || builder)");
    db_.prepare("member_leave",
                "UPDATE masters SET status = 'left' WHERE name = $1 AND fence = $2 AND status = 'joined'");
}

std::optional<std::vector<Build>> PgStore::release_unheld(const std::vector<uint64_t>& held) {
    PgResult r = run("cannot look for builds started here but not held", "release_unheld",
                     {holder_, pg_param(holder_fence_), pg_id_array(held)});
    if (!r) {
        return std::nullopt;
    }
    return pg_rows_to_builds(r.get());
}

std::optional<uint64_t> PgStore::join(const MemberIdentity& me,
                                      const std::function<bool(const MemberRow&, uint64_t now)>& decide) {
    std::optional<uint64_t> fence;
    bool refused = false;
    const bool done = in_transaction(
        [&] {
            if (!write("cannot join the cluster", "member_placeholder", {me.name})) {
                return false;
            }
            PgResult held = run("cannot join the cluster", "member_lock", {me.name});
            if (!held || PQntuples(held.get()) != 1) {
                return false;
            }
            if (!decide(row_to_member(held.get(), 0, 1), pg_u64(held.get(), 0, 0))) {
                refused = true;
                return false;
            }
            PgResult joined = run("cannot join the cluster", "member_join",
                                  {me.name, me.host, me.address, std::to_string(me.pid)});
            if (!joined || PQntuples(joined.get()) != 1) {
                return false;
            }
            fence = pg_u64(joined.get(), 0, 0);
            return true;
        },
        "cannot join the cluster");
    if (refused) {
        return 0;
    }
    if (!done) {
        return std::nullopt;
    }
    holder_ = me.name;
    holder_fence_ = *fence;
    return fence;
}

std::optional<HeartbeatRecord> PgStore::heartbeat(const std::string& name, uint64_t fence) {
    PgResult r = run("cannot record a heartbeat", "member_heartbeat", {name, pg_param(fence)});
    if (!r) {
        return std::nullopt;
    }
    if (PQntuples(r.get()) == 0) {
        return HeartbeatRecord{.kept = false, .gap = 0};
    }
    return HeartbeatRecord{.kept = true, .gap = pg_u64(r.get(), 0, 0)};
}

std::optional<MemberListing> PgStore::list_members() {
    PgResult r = run("cannot list the cluster's members", "member_list", {});
    if (!r || PQntuples(r.get()) == 0) {
        return std::nullopt;
    }
    MemberListing out;
    out.now = pg_u64(r.get(), 0, 0);
    for (int i = 0; i < PQntuples(r.get()); ++i) {
        if (!PQgetisnull(r.get(), i, 1)) {
            out.rows.push_back(row_to_member(r.get(), i, 1));
        }
    }
    return out;
}

std::optional<bool> PgStore::declare_dead(const MemberRow& row, const std::string& by, uint64_t now,
                                          std::vector<Retry>& taken) {
    std::vector<Retry> retries;
    bool declared = false;
    const bool done = in_transaction(
        [&] {
            PgResult r = run("cannot declare a master dead", "member_declare_dead",
                             {row.name, pg_param(row.fence), pg_param(row.heartbeat_at), by});
            if (!r) {
                return false;
            }
            if (PQntuples(r.get()) != 1) {
                return true;  // it changed: nothing to do, nothing written
            }
            declared = true;
            if (!write("cannot take over a dead master's workers", "release_workers", {row.name, pg_param(now)})) {
                return false;
            }
            PgResult held = run("cannot take over a dead master's builds", "held_builds", {row.name});
            if (!held) {
                return false;
            }
            for (int i = 0; i < PQntuples(held.get()); ++i) {
                Retry t{pg_row_to_build(held.get(), i), {}};
                auto next = retry_build(t.old, now);
                if (!next) {
                    continue;
                }
                t.next = std::move(*next);
                if (!record_submitted(t.next)) {
                    return false;
                }
                t.old.retried_as = t.next.id;
                if (!write("cannot take over a dead master's builds", "take_over",
                           {pg_param(t.old.id), std::string(to_string(t.old.state)),
                            std::string(to_string(t.old.result)), pg_param(t.old.finished_at),
                            pg_param(t.old.retried_as), row.name})) {
                    return false;
                }
                retries.push_back(std::move(t));
            }
            return true;
        },
        "cannot declare a master dead");
    if (!done) {
        return std::nullopt;
    }
    taken = std::move(retries);
    return declared;
}

bool PgStore::leave(const std::string& name, uint64_t fence) {
    return write("cannot leave the cluster", "member_leave", {name, pg_param(fence)});
}

}  // namespace by::master
