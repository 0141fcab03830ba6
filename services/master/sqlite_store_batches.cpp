// The SQLite store's writes of several builds in one commit: claiming
// pending builds for their workers, retries, a lost worker's builds
// waiting for cleanup, and ends.
#include <string>

#include <nlohmann/json.hpp>

#include "common/text.hpp"
#include "master/sqlite_store.hpp"

namespace by::master {

template <class Writes>
bool SqliteStore::in_transaction(Writes writes, const char* what) {
    if (!check(db_.exec("BEGIN IMMEDIATE"), "cannot begin a transaction")) {
        return false;
    }
    if (writes() && check(db_.exec("COMMIT"), what)) {
        return true;
    }
    // No transaction left open for the next write to join (a failed
    // COMMIT, e.g. on a full disk, may leave it open).
    rollback();
    return false;
}

bool SqliteStore::claim_build(const Build& b) {
    claim_build_.reset();
    claim_build_.bind(1, static_cast<int64_t>(b.id))
        .bind(2, to_string(b.state))
        .bind(3, b.worker)
        .bind(4, text::json_dump(nlohmann::json(b.properties)))
        .bind(5, static_cast<int64_t>(b.started_at))
        .bind(6, static_cast<int64_t>(b.current_step));
    if (!check(claim_build_.step(), "cannot record the start of a build")) {
        return false;
    }
    if (sqlite3_changes(db_.get()) != 1) {
        cause_ = "build " + std::to_string(b.id) + " is not pending";
        error_ = "cannot claim build " + std::to_string(b.id) + ": " + cause_;
        return false;
    }
    return true;
}

bool SqliteStore::claim_builds(const std::vector<Build>& started) {
    if (started.size() == 1) {
        return claim_build(started.front());  // one statement is one commit
    }
    return started.empty() || in_transaction(
                                  [&] {
                                      for (const Build& b : started) {
                                          if (!claim_build(b)) {
                                              return false;
                                          }
                                      }
                                      return true;
                                  },
                                  "cannot commit the start of builds");
}

bool SqliteStore::insert_retry(Build& old, Build& next) {
    if (!record_submitted(next)) {
        return false;
    }
    old.retried_as = next.id;
    return update_build(old);
}

bool SqliteStore::record_retry(Build& old, Build& next) {
    const uint64_t was = old.retried_as;
    if (in_transaction([&] { return insert_retry(old, next); }, "cannot commit a retry")) {
        return true;
    }
    // Nothing of it happened: no id handed out, no RetriedAs.
    old.retried_as = was;
    next.id = 0;
    return false;
}

bool SqliteStore::record_cleanups(const std::vector<Build>& builds) {
    if (builds.size() == 1) {
        return update_build(builds.front());  // one statement is one commit
    }
    return builds.empty() || in_transaction(
                                 [&] {
                                     for (const Build& b : builds) {
                                         if (!update_build(b)) {
                                             return false;
                                         }
                                     }
                                     return true;
                                 },
                                 "cannot commit the builds waiting for cleanup");
}

bool SqliteStore::record_ends(std::vector<BuildEnd>& ends) {
    std::vector<uint64_t> was;
    was.reserve(ends.size());
    for (const BuildEnd& e : ends) {
        was.push_back(e.ended.retried_as);
    }
    if (ends.empty() || in_transaction(
                            [&] {
                                for (BuildEnd& e : ends) {
                                    if (!(e.rerun ? insert_retry(e.ended, *e.rerun) : update_build(e.ended))) {
                                        return false;
                                    }
                                }
                                return true;
                            },
                            "cannot commit the ends of builds")) {
        return true;
    }
    for (size_t i = 0; i < ends.size(); ++i) {
        ends[i].ended.retried_as = was[i];
        if (ends[i].rerun) {
            ends[i].rerun->id = 0;
        }
    }
    return false;
}

bool SqliteStore::record_retries(std::vector<Retry>& retries) {
    std::vector<uint64_t> was;
    was.reserve(retries.size());
    for (const Retry& r : retries) {
        was.push_back(r.old.retried_as);
    }
    if (retries.empty() || in_transaction(
                               [&] {
                                   for (Retry& r : retries) {
                                       if (!insert_retry(r.old, r.next)) {
                                           return false;
                                       }
                                   }
                                   return true;
                               },
                               "cannot commit the retries")) {
        return true;
    }
    for (size_t i = 0; i < retries.size(); ++i) {
        retries[i].old.retried_as = was[i];
        retries[i].next.id = 0;
    }
    return false;
}

}  // namespace by::master
