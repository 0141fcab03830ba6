// The store's writes of several builds in one commit, through the Store
// interface: claiming pending builds for their workers, the retries of
// start-up, a lost worker's builds waiting for cleanup, and several ends.
// Each is all or none.
#include <gtest/gtest.h>

#include "store_test_support.hpp"

using namespace by::master;

namespace {

class StoreBatchTest : public ::testing::TestWithParam<std::string> {
protected:
    TestDatabase db_{GetParam()};

    Build submit(Store& s, const std::string& builder) {
        Build b;
        b.builder = builder;
        b.requested = {{"k", builder}};
        b.properties = b.requested;
        EXPECT_TRUE(s.record_submitted(b)) << s.error();
        return b;
    }

    // `b` as started on `worker` at `at`, not yet stored.
    static Build started(Build b, const std::string& worker, uint64_t at) {
        EXPECT_EQ(start_build(b, worker, {{"os", "debian"}}, at), TransitionError::none);
        return b;
    }

    void refuse_writes_to(uint64_t id) { db_.refuse_writes_to(id); }
    void accept_writes() { db_.accept_writes(); }
};

}  // namespace

// SubmitBuild calls read together are recorded in one commit: each gets
// its id; when the database refuses one of them, none is stored and no
// id is handed out.
TEST_P(StoreBatchTest, SubmissionsAreOneCommit) {
    auto s = db_.open();
    ASSERT_TRUE(s);
    Build first = submit(*s, "zero");
    std::vector<Build> builds(3);
    for (size_t i = 0; i < builds.size(); ++i) {
        builds[i].builder = "b" + std::to_string(i);
        builds[i].requested = {{"n", std::to_string(i)}};
        builds[i].submitted_at = 7;
    }
    refuse_writes_to(first.id + 2);
    std::vector<Build> refused = builds;
    EXPECT_FALSE(s->record_submissions(refused));
    EXPECT_NE(s->error().find("disk trouble"), std::string::npos) << s->error();
    for (const Build& b : refused) {
        EXPECT_EQ(b.id, 0u);
    }
    EXPECT_EQ(s->load_unfinished().size(), 1u) << "nothing of the refused batch";
    accept_writes();
    ASSERT_TRUE(s->record_submissions(builds)) << s->error();
    auto unfinished = s->load_unfinished();
    ASSERT_EQ(unfinished.size(), 4u);
    for (size_t i = 0; i < builds.size(); ++i) {
        EXPECT_GT(builds[i].id, first.id);
        EXPECT_EQ(unfinished[i + 1].id, builds[i].id);
        EXPECT_EQ(unfinished[i + 1].builder, "b" + std::to_string(i));
        EXPECT_EQ(unfinished[i + 1].requested, builds[i].requested);
        EXPECT_EQ(unfinished[i + 1].state, BuildState::pending);
    }
    std::vector<Build> none;
    EXPECT_TRUE(s->record_submissions(none)) << "nothing to record is no failure";
}

// Submissions that workers take at once are recorded started in the same
// commit; the others pending. Refused, none of it is stored.
TEST_P(StoreBatchTest, SubmissionsStartedAtOnceAreRecordedStartedInTheSameCommit) {
    uint64_t first_id = 0;
    std::vector<Build> builds(3);
    {
        auto s = db_.open();
        ASSERT_TRUE(s);
        first_id = submit(*s, "zero").id;
        for (size_t i = 0; i < builds.size(); ++i) {
            builds[i].builder = "b" + std::to_string(i);
            builds[i].requested = {{"n", std::to_string(i)}};
            builds[i].properties = builds[i].requested;
        }
        std::vector<std::optional<Build>> starts{started(builds[0], "w1", 50), std::nullopt,
                                                 started(builds[2], "w2", 50)};
        refuse_writes_to(first_id + 3);
        std::vector<Build> refused = builds;
        auto refused_starts = starts;
        EXPECT_FALSE(s->record_started_submissions(refused, refused_starts));
        EXPECT_NE(s->error().find("disk trouble"), std::string::npos) << s->error();
        for (const Build& b : refused) {
            EXPECT_EQ(b.id, 0u);
        }
        EXPECT_EQ(s->load_unfinished().size(), 1u) << "nothing of the refused batch";
        accept_writes();
        const auto recorded = s->record_started_submissions(builds, starts);
        ASSERT_TRUE(recorded) << s->error();
        EXPECT_EQ(*recorded, (std::vector<bool>{true, false, true}));
        EXPECT_EQ(starts[0]->id, builds[0].id);
        EXPECT_EQ(starts[2]->id, builds[2].id);
    }
    // Committed: a new connection (a restarted master) sees them so.
    auto s = db_.open();
    ASSERT_TRUE(s);
    auto unfinished = s->load_unfinished();
    ASSERT_EQ(unfinished.size(), 4u);
    for (size_t i = 0; i < builds.size(); ++i) {
        EXPECT_GT(builds[i].id, first_id);
        EXPECT_EQ(unfinished[i + 1].id, builds[i].id);
        EXPECT_EQ(unfinished[i + 1].requested, builds[i].requested);
    }
    EXPECT_EQ(unfinished[1].state, BuildState::running);
    EXPECT_EQ(unfinished[1].worker, "w1");
    EXPECT_EQ(unfinished[1].started_at, 50u);
    EXPECT_EQ(unfinished[1].properties,
              (std::map<std::string, std::string>{{"n", "0"}, {"os", "debian"}, {"workername", "w1"}}));
    EXPECT_EQ(unfinished[2].state, BuildState::pending);
    EXPECT_EQ(unfinished[2].worker, "");
    EXPECT_EQ(unfinished[3].state, BuildState::running);
    EXPECT_EQ(unfinished[3].worker, "w2");
    // Without a start, it is record_submissions.
    std::vector<Build> plain(1);
    plain[0].builder = "p";
    std::vector<std::optional<Build>> no_starts(1);
    const auto recorded = s->record_started_submissions(plain, no_starts);
    ASSERT_TRUE(recorded) << s->error();
    EXPECT_EQ(*recorded, std::vector<bool>{false});
    EXPECT_EQ(s->load_build(plain[0].id)->state, BuildState::pending);
}

TEST_P(StoreBatchTest, ClaimStartsSeveralBuildsInOneCommit) {
    uint64_t a = 0, b = 0, c = 0;
    {
        auto s = db_.open();
        ASSERT_TRUE(s);
        Build ba = submit(*s, "one"), bb = submit(*s, "two"), bc = submit(*s, "three");
        a = ba.id, b = bb.id, c = bc.id;
        ASSERT_TRUE(s->claim_builds({started(ba, "w1", 50), started(bb, "w2", 50)})) << s->error();
        ASSERT_TRUE(s->claim_builds({})) << "nothing to claim is no failure";
    }
    // Committed: a new connection (a restarted master) sees both started.
    auto s = db_.open();
    ASSERT_TRUE(s);
    auto unfinished = s->load_unfinished();
    ASSERT_EQ(unfinished.size(), 3u);
    EXPECT_EQ(unfinished[0].id, a);
    EXPECT_EQ(unfinished[0].state, BuildState::running);
    EXPECT_EQ(unfinished[0].worker, "w1");
    EXPECT_EQ(unfinished[0].started_at, 50u);
    EXPECT_EQ(unfinished[0].properties,
              (std::map<std::string, std::string>{{"k", "one"}, {"os", "debian"}, {"workername", "w1"}}));
    EXPECT_EQ(unfinished[0].requested, (std::map<std::string, std::string>{{"k", "one"}}));
    EXPECT_EQ(unfinished[1].id, b);
    EXPECT_EQ(unfinished[1].state, BuildState::running);
    EXPECT_EQ(unfinished[1].worker, "w2");
    EXPECT_EQ(unfinished[2].id, c);
    EXPECT_EQ(unfinished[2].state, BuildState::pending);
    EXPECT_EQ(unfinished[2].worker, "");
}

// A build that is no longer pending (another master took it, or it was
// cancelled) fails the whole claim: no build starts twice, and the others
// of the claim stay pending.
TEST_P(StoreBatchTest, AClaimOfABuildNoLongerPendingTakesNone) {
    auto s = db_.open();
    ASSERT_TRUE(s);
    Build a = submit(*s, "one"), b = submit(*s, "two"), c = submit(*s, "three");
    ASSERT_TRUE(s->claim_builds({started(b, "w9", 10)}));
    EXPECT_FALSE(s->claim_builds({started(a, "w1", 20), started(b, "w2", 20)}));
    EXPECT_NE(s->error().find("build " + std::to_string(b.id) + " is not pending"), std::string::npos) << s->error();
    EXPECT_FALSE(s->claim_builds({started(b, "w2", 20)})) << "one build alone is claimed once, too";
    EXPECT_EQ(s->load_build(a.id)->state, BuildState::pending);
    EXPECT_EQ(s->load_build(a.id)->worker, "");
    EXPECT_EQ(s->load_build(b.id)->worker, "w9");
    EXPECT_EQ(s->load_build(b.id)->started_at, 10u);
    Build ended = started(c, "w3", 30);
    ASSERT_EQ(finish_build(ended, Result::success, 0, 40), TransitionError::none);
    ASSERT_TRUE(s->record_ended(ended));
    EXPECT_FALSE(s->claim_builds({started(c, "w3", 50)})) << "a finished build cannot be claimed";
    EXPECT_EQ(s->load_build(c.id)->state, BuildState::finished);
    // The store still takes writes: the failed claims left no transaction open.
    ASSERT_TRUE(s->claim_builds({started(a, "w1", 60)})) << s->error();
    EXPECT_EQ(s->load_build(a.id)->worker, "w1");
}

// The database refuses a write in the middle of a claim: the claim's
// earlier writes are not committed either, and once the database takes
// writes again the same claim goes through.
TEST_P(StoreBatchTest, AClaimTheDatabaseRefusesChangesNothing) {
    auto s = db_.open();
    ASSERT_TRUE(s);
    Build a = submit(*s, "one"), b = submit(*s, "two");
    const std::vector<Build> claim{started(a, "w1", 20), started(b, "w2", 20)};
    refuse_writes_to(b.id);
    EXPECT_FALSE(s->claim_builds(claim));
    EXPECT_NE(s->error().find("disk trouble"), std::string::npos) << s->error();
    EXPECT_EQ(s->cause(), "disk trouble");
    for (const Build& was : {a, b}) {
        auto now = s->load_build(was.id);
        ASSERT_TRUE(now);
        EXPECT_EQ(now->state, BuildState::pending) << was.id;
        EXPECT_EQ(now->worker, "") << was.id;
        EXPECT_EQ(now->started_at, 0u) << was.id;
    }
    accept_writes();
    ASSERT_TRUE(s->claim_builds(claim)) << s->error();
    EXPECT_EQ(s->load_build(b.id)->worker, "w2");
}

TEST_P(StoreBatchTest, RetriesAreOneCommit) {
    auto s = db_.open();
    ASSERT_TRUE(s);
    Build a = started(submit(*s, "one"), "w1", 10), b = started(submit(*s, "two"), "w2", 10);
    ASSERT_TRUE(s->claim_builds({a, b}));
    std::vector<Retry> retries;
    for (const Build& was : {a, b}) {
        Retry r{was, {}};
        r.next = *retry_build(r.old, 20);
        retries.push_back(std::move(r));
    }

    // Refused at the second rerun's insert: nothing of either retry happened.
    refuse_writes_to(b.id + 1);
    EXPECT_FALSE(s->record_retries(retries));
    for (const Retry& r : retries) {
        EXPECT_EQ(r.next.id, 0u) << "no id handed out";
        EXPECT_EQ(r.old.retried_as, 0u);
    }
    auto unfinished = s->load_unfinished();
    ASSERT_EQ(unfinished.size(), 2u);
    EXPECT_EQ(unfinished[0].state, BuildState::running);
    EXPECT_EQ(unfinished[1].state, BuildState::running);
    EXPECT_EQ(s->list_builds(0, 10).size(), 2u);

    accept_writes();
    ASSERT_TRUE(s->record_retries(retries)) << s->error();
    for (const Retry& r : retries) {
        ASSERT_NE(r.next.id, 0u);
        EXPECT_EQ(r.old.retried_as, r.next.id);
        auto old = s->load_build(r.old.id);
        ASSERT_TRUE(old);
        EXPECT_EQ(old->result, Result::retry);
        EXPECT_EQ(old->retried_as, r.next.id);
        auto next = s->load_build(r.next.id);
        ASSERT_TRUE(next);
        EXPECT_EQ(next->state, BuildState::pending);
        EXPECT_EQ(next->request_id, r.old.id);
    }
    EXPECT_EQ(s->load_unfinished().size(), 2u);
    std::vector<Retry> none;
    EXPECT_TRUE(s->record_retries(none));
}

TEST_P(StoreBatchTest, ALostWorkersBuildsWaitForCleanupInOneCommit) {
    auto s = db_.open();
    ASSERT_TRUE(s);
    Build a = started(submit(*s, "one"), "w1", 10), b = started(submit(*s, "two"), "w1", 10);
    ASSERT_TRUE(s->claim_builds({a, b}));
    ASSERT_EQ(await_cleanup(a), TransitionError::none);
    ASSERT_EQ(await_cleanup(b), TransitionError::none);

    // Refused at the second: the first is not recorded either.
    refuse_writes_to(b.id);
    EXPECT_FALSE(s->record_cleanups({a, b}));
    for (const Build& stored : s->load_unfinished()) {
        EXPECT_EQ(stored.state, BuildState::running) << stored.id;
    }

    accept_writes();
    ASSERT_TRUE(s->record_cleanups({a, b})) << s->error();
    ASSERT_TRUE(s->record_cleanups({})) << "nothing to record is no failure";
    auto unfinished = s->load_unfinished();
    ASSERT_EQ(unfinished.size(), 2u);
    EXPECT_EQ(unfinished[0].state, BuildState::cleanup);
    EXPECT_EQ(unfinished[1].state, BuildState::cleanup);
}

TEST_P(StoreBatchTest, EndsAndRetriesOfSeveralBuildsAreOneCommit) {
    auto s = db_.open();
    ASSERT_TRUE(s);
    Build a = started(submit(*s, "one"), "w1", 10), b = started(submit(*s, "two"), "w1", 10);
    ASSERT_TRUE(s->claim_builds({a, b}));
    std::vector<BuildEnd> ends{{a, std::nullopt}, {b, std::nullopt}};
    ASSERT_EQ(finish_build(ends[0].ended, Result::success, 0, 20), TransitionError::none);
    ends[1].rerun = retry_build(ends[1].ended, 20);
    ASSERT_TRUE(ends[1].rerun);

    // Refused at the retry: the first build's end is not recorded either.
    refuse_writes_to(b.id);
    EXPECT_FALSE(s->record_ends(ends));
    EXPECT_EQ(ends[1].rerun->id, 0u) << "no id handed out";
    EXPECT_EQ(ends[1].ended.retried_as, 0u);
    auto unfinished = s->load_unfinished();
    ASSERT_EQ(unfinished.size(), 2u);
    EXPECT_EQ(unfinished[0].state, BuildState::running);
    EXPECT_EQ(unfinished[1].state, BuildState::running);

    accept_writes();
    ASSERT_TRUE(s->record_ends(ends)) << s->error();
    ASSERT_NE(ends[1].rerun->id, 0u);
    EXPECT_EQ(s->load_build(a.id)->result, Result::success);
    EXPECT_EQ(s->load_build(b.id)->result, Result::retry);
    EXPECT_EQ(s->load_build(b.id)->retried_as, ends[1].rerun->id);
    unfinished = s->load_unfinished();
    ASSERT_EQ(unfinished.size(), 1u);
    EXPECT_EQ(unfinished[0].id, ends[1].rerun->id);
    EXPECT_EQ(unfinished[0].state, BuildState::pending);
}

// The ends of some builds and the claim of the next ones for the freed
// workers go in one commit: refused, neither is recorded; a next build no
// longer pending (taken, cancelled) is returned and the rest are claimed.
TEST_P(StoreBatchTest, EndsAndTheNextClaimsAreOneCommit) {
    auto s = db_.open();
    ASSERT_TRUE(s);
    Build a = started(submit(*s, "one"), "w1", 10);
    ASSERT_TRUE(s->claim_builds({a}));
    Build next = submit(*s, "two"), gone = submit(*s, "three");
    std::vector<BuildEnd> ends{{a, std::nullopt}};
    ASSERT_EQ(finish_build(ends[0].ended, Result::success, 0, 20), TransitionError::none);
    const std::vector<Build> claims{started(next, "w1", 20), started(gone, "w1", 20)};

    refuse_writes_to(next.id);
    EXPECT_FALSE(s->record_ends_claiming(ends, claims));
    EXPECT_NE(s->error().find("disk trouble"), std::string::npos) << s->error();
    // Read through another connection: what is committed, not what one
    // transaction sees.
    auto other = db_.open();
    ASSERT_TRUE(other);
    EXPECT_EQ(other->load_build(a.id)->state, BuildState::running) << "the end is not recorded without the claims";
    EXPECT_EQ(other->load_build(next.id)->state, BuildState::pending);

    accept_writes();
    Build cancelled = gone;
    ASSERT_EQ(cancel_pending(cancelled, 15), TransitionError::none);
    ASSERT_TRUE(s->record_ended(cancelled)) << s->error();
    const auto lost = s->record_ends_claiming(ends, claims);
    ASSERT_TRUE(lost) << s->error();
    EXPECT_EQ(*lost, std::vector<uint64_t>{gone.id});
    EXPECT_EQ(other->load_build(a.id)->result, Result::success);
    EXPECT_EQ(other->load_build(next.id)->state, BuildState::running);
    EXPECT_EQ(other->load_build(next.id)->worker, "w1");
    EXPECT_EQ(other->load_build(gone.id)->state, BuildState::finished);
    EXPECT_EQ(other->load_build(gone.id)->worker, "");
    // No transaction left open: the next write commits on its own.
    Build later = submit(*s, "four");
    EXPECT_EQ(other->load_build(later.id)->state, BuildState::pending);
}

INSTANTIATE_TEST_SUITE_P(Engines, StoreBatchTest, ::testing::ValuesIn(store_engines()), engine_name);
