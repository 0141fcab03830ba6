#include "master/store_batches.hpp"

#include <algorithm>

namespace by::master {

bool BatchStore::each_in_transaction(const std::vector<Build>& builds, bool (BatchStore::*write)(const Build&),
                                     const char* what) {
    if (builds.size() == 1) {
        return (this->*write)(builds.front());  // one statement is one commit
    }
    return builds.empty() || in_transaction(
                                 [&] {
                                     for (const Build& b : builds) {
                                         if (!(this->*write)(b)) {
                                             return false;
                                         }
                                     }
                                     return true;
                                 },
                                 what);
}

bool BatchStore::record_submissions(std::vector<Build>& builds) {
    if (builds.size() == 1) {
        return record_submitted(builds.front());  // one statement is one commit
    }
    if (builds.empty() || in_transaction(
                              [&] {
                                  for (Build& b : builds) {
                                      if (!record_submitted(b)) {
                                          return false;
                                      }
                                  }
                                  return true;
                              },
                              "cannot commit the submitted builds")) {
        return true;
    }
    for (Build& b : builds) {
        b.id = 0;  // none was committed
    }
    return false;
}

std::optional<std::vector<bool>> BatchStore::record_started_submissions(std::vector<Build>& builds,
                                                                        std::vector<std::optional<Build>>& starts) {
    std::vector<bool> started(builds.size(), false);
    const bool any = std::any_of(starts.begin(), starts.end(), [](const auto& s) { return s.has_value(); });
    if (!any || starts.size() != builds.size()) {
        return record_submissions(builds) ? std::optional(started) : std::nullopt;
    }
    const bool done = in_transaction(
        [&] {
            for (size_t i = 0; i < builds.size(); ++i) {
                if (!record_submitted(builds[i])) {
                    return false;
                }
                if (starts[i]) {
                    starts[i]->id = builds[i].id;
                    // Not pending can only mean fenced: the row is this
                    // transaction's own.
                    if (claim_build(*starts[i]) != Claim::claimed) {
                        return false;
                    }
                    started[i] = true;
                }
            }
            return true;
        },
        "cannot commit the submitted builds");
    if (done) {
        return started;
    }
    for (Build& b : builds) {
        b.id = 0;  // none was committed
    }
    // A fenced master still records what was submitted to it, pending.
    if (lost_hold()) {
        if (record_submissions(builds)) {
            return std::vector<bool>(builds.size(), false);
        }
    }
    return std::nullopt;
}

bool BatchStore::claim_builds(const std::vector<Build>& started) {
    const auto claim = [this](const Build& b) { return claim_build(b) == Claim::claimed; };
    if (started.size() == 1) {
        return claim(started.front());  // one statement is one commit
    }
    return started.empty() || in_transaction(
                                  [&] {
                                      for (const Build& b : started) {
                                          if (!claim(b)) {
                                              return false;
                                          }
                                      }
                                      return true;
                                  },
                                  "cannot commit the start of builds");
}

bool BatchStore::claim_each(const std::vector<Build>& started, std::vector<uint64_t>& lost) {
    for (const Build& b : started) {
        switch (claim_build(b)) {
        case Claim::claimed: break;
        case Claim::not_pending: lost.push_back(b.id); break;
        case Claim::failed: return false;
        }
    }
    return true;
}

std::optional<std::vector<uint64_t>> BatchStore::claim_available(const std::vector<Build>& started) {
    std::vector<uint64_t> lost;
    const auto claim_each = [&] { return this->claim_each(started, lost); };
    // One statement is one commit; a claim that took nothing commits nothing.
    const bool done = started.size() <= 1 ? claim_each()
                                          : in_transaction(claim_each, "cannot commit the start of builds");
    if (!done) {
        return std::nullopt;
    }
    return lost;
}

bool BatchStore::record_cleanups(const std::vector<Build>& builds) {
    return each_in_transaction(builds, &BatchStore::update_build, "cannot commit the builds waiting for cleanup");
}

bool BatchStore::insert_retry(Build& old, Build& next) {
    if (!record_submitted(next)) {
        return false;
    }
    old.retried_as = next.id;
    return update_build(old);
}

bool BatchStore::record_retry(Build& old, Build& next) {
    const uint64_t was = old.retried_as;
    if (in_transaction([&] { return insert_retry(old, next); }, "cannot commit a retry")) {
        return true;
    }
    // Nothing of it happened: no id handed out, no RetriedAs.
    old.retried_as = was;
    next.id = 0;
    return false;
}

bool BatchStore::record_ends(std::vector<BuildEnd>& ends) {
    return ends.empty() || record_ends_claiming(ends, {}).has_value();
}

std::optional<std::vector<uint64_t>> BatchStore::record_ends_claiming(std::vector<BuildEnd>& ends,
                                                                      const std::vector<Build>& started) {
    std::vector<uint64_t> was;
    was.reserve(ends.size());
    for (const BuildEnd& e : ends) {
        was.push_back(e.ended.retried_as);
    }
    std::vector<uint64_t> lost;
    if (in_transaction(
            [&] {
                for (BuildEnd& e : ends) {
                    if (!(e.rerun ? insert_retry(e.ended, *e.rerun) : update_build(e.ended))) {
                        return false;
                    }
                }
                return claim_each(started, lost);
            },
            started.empty() ? "cannot commit the ends of builds" : "cannot commit the ends and starts of builds")) {
        return lost;
    }
    for (size_t i = 0; i < ends.size(); ++i) {
        ends[i].ended.retried_as = was[i];
        if (ends[i].rerun) {
            ends[i].rerun->id = 0;
        }
    }
    return std::nullopt;
}

bool BatchStore::record_retries(std::vector<Retry>& retries) {
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
