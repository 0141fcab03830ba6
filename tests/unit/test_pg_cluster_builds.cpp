// Builds in a cluster's shared store, as two masters' stores see them:
// claims, the takeover of a dead master's builds, fencing of its late
// writes, recovery, builds started unseen, the announcement of a new
// pending build, and logs read from another master. Runs in the CTest test cluster.store_postgresql.
#include "master/pg_notice.hpp"
#include "pg_cluster_test_support.hpp"

using namespace pg_cluster_test;

// A build is claimed by one master only: the second claim finds it taken
// and leaves it, claiming the rest of its batch.
TEST_P(PgClusterTest, APendingBuildIsClaimedByOneMasterAndTheOtherClaimsTheRest) {
    auto a = store(), b = store();
    ASSERT_EQ(join(*a, "m1", 101), 1u);
    ASSERT_EQ(join(*b, "m2", 102), 1u);
    Build x, y;
    x.builder = y.builder = "hello";
    ASSERT_TRUE(a->record_submitted(x) && a->record_submitted(y)) << a->error();
    Build xa = x;
    ASSERT_EQ(start_build(xa, "w1", {}, 10), TransitionError::none);
    auto won = a->claim_available({xa});
    ASSERT_TRUE(won) << a->error();
    EXPECT_TRUE(won->empty());
    Build xb = x, yb = y;
    ASSERT_EQ(start_build(xb, "w2", {}, 11), TransitionError::none);
    ASSERT_EQ(start_build(yb, "w2", {}, 11), TransitionError::none);
    auto lost = b->claim_available({xb, yb});
    ASSERT_TRUE(lost) << b->error();
    EXPECT_EQ(*lost, std::vector<uint64_t>{x.id});
    EXPECT_EQ(b->load_build(x.id)->worker, "w1");
    EXPECT_EQ(b->load_build(y.id)->worker, "w2");
    EXPECT_EQ(db_.sql("SELECT master || ' ' || fence FROM builds WHERE id = " + std::to_string(x.id)), "m1 1");
    EXPECT_EQ(db_.sql("SELECT master || ' ' || fence FROM builds WHERE id = " + std::to_string(y.id)), "m2 1");
    // Neither master writes the other's build.
    Build yend = yb;
    ASSERT_EQ(finish_build(yend, Result::success, 0, 20), TransitionError::none);
    EXPECT_FALSE(a->record_ended(yend));
    EXPECT_TRUE(a->lost_hold());
    EXPECT_NE(a->error().find("master 'm2' holds it"), std::string::npos) << a->error();
    EXPECT_TRUE(b->record_ended(yend)) << b->error();
}

// A master declared dead: its running builds end retry and are queued
// again in the same commit, once; nothing it writes afterwards lands,
// until it joins again, and then not for the builds taken from it.
TEST_P(PgClusterTest, ADeadMastersBuildsAreRerunOnceAndItsLateWritesAreRefused) {
    auto a = store(), b = store();
    ASSERT_EQ(join(*a, "m1", 101), 1u);
    ASSERT_EQ(join(*b, "m2", 102), 1u);
    Build run, wait;
    run.builder = wait.builder = "hello";
    run.requested = {{"k", "v"}};
    ASSERT_TRUE(a->record_submitted(run) && a->record_submitted(wait)) << a->error();
    ASSERT_EQ(start_build(run, "w1", {}, 10), TransitionError::none);
    ASSERT_TRUE(a->claim_builds({run})) << a->error();
    db_.sql("UPDATE masters SET heartbeat_at = now() - interval '1 minute' WHERE name = 'm1'");
    const MemberRow seen = row_of(*b, "m1");
    ASSERT_EQ(b->members()->declare_dead(seen, "m2", 500, taken), std::optional<bool>(true)) << b->error();
    ASSERT_EQ(taken.size(), 1u);
    EXPECT_EQ(taken[0].old.id, run.id);
    EXPECT_EQ(taken[0].old.result, Result::retry);
    EXPECT_EQ(taken[0].next.state, BuildState::pending);
    EXPECT_EQ(taken[0].next.requested, run.requested);
    const auto old = b->load_build(run.id);
    EXPECT_EQ(old->state, BuildState::finished);
    EXPECT_EQ(old->result, Result::retry);
    EXPECT_EQ(old->retried_as, taken[0].next.id);
    EXPECT_EQ(old->finished_at, 500u);
    EXPECT_EQ(b->load_build(taken[0].next.id)->request_id, run.id);
    std::vector<Retry> again;
    EXPECT_EQ(b->members()->declare_dead(seen, "m2", 600, again), std::optional<bool>(false));
    EXPECT_TRUE(again.empty()) << "once";

    // m1 comes back: its end of the build and its claim are refused.
    Build late = run;
    ASSERT_EQ(finish_build(late, Result::success, 0, 700), TransitionError::none);
    EXPECT_FALSE(a->record_ended(late));
    EXPECT_TRUE(a->lost_hold());
    EXPECT_NE(a->error().find("this master ('m1', fence 1) was fenced"), std::string::npos) << a->error();
    Build w = wait;
    ASSERT_EQ(start_build(w, "w1", {}, 710), TransitionError::none);
    EXPECT_FALSE(a->claim_available({w})) << "a fenced master claims nothing";
    EXPECT_EQ(b->load_build(wait.id)->state, BuildState::pending);
    EXPECT_EQ(b->load_build(run.id)->result, Result::retry) << "the late end changed nothing";

    // Joined again, with a new fence: it claims, but the old build stays ended.
    EXPECT_EQ(join(*a, "m1", 101), 3u);
    EXPECT_FALSE(a->record_ended(late));
    EXPECT_NE(a->error().find("it has ended already"), std::string::npos) << a->error();
    auto lost = a->claim_available({w});
    ASSERT_TRUE(lost) << a->error();
    EXPECT_TRUE(lost->empty());
    EXPECT_EQ(db_.sql("SELECT master || ' ' || fence FROM builds WHERE id = " + std::to_string(wait.id)), "m1 3");
}

// A master fenced since it planned the start of a new build: the build is
// recorded pending (for any master to run), not started, and the master
// is told that it lost its hold.
TEST_P(PgClusterTest, AFencedMastersSubmissionStartedAtOnceIsRecordedPending) {
    auto a = store(), b = store();
    ASSERT_EQ(join(*a, "m1", 101), 1u);
    ASSERT_EQ(join(*b, "m2", 102), 1u);
    std::vector<Build> builds(2);
    builds[0].builder = builds[1].builder = "hello";
    std::vector<std::optional<Build>> starts(2);
    for (size_t i = 0; i < 2; ++i) {
        starts[i] = builds[i];
        ASSERT_EQ(start_build(*starts[i], "w1", {}, 10), TransitionError::none);
    }
    // Joined: recorded started, by m1 under its fence.
    auto ok = a->record_started_submissions(builds, starts);
    ASSERT_TRUE(ok) << a->error();
    EXPECT_EQ(*ok, (std::vector<bool>{true, true}));
    EXPECT_FALSE(a->lost_hold());
    EXPECT_EQ(db_.sql("SELECT state || ' ' || master || ' ' || fence FROM builds WHERE id = " +
                      std::to_string(builds[1].id)),
              "running m1 1");

    db_.sql("UPDATE masters SET heartbeat_at = now() - interval '1 minute' WHERE name = 'm1'");
    ASSERT_EQ(b->members()->declare_dead(row_of(*b, "m1"), "m2", 500, taken), std::optional<bool>(true));
    std::vector<Build> late(1);
    late[0].builder = "hello";
    std::vector<std::optional<Build>> late_start{late[0]};
    ASSERT_EQ(start_build(*late_start[0], "w1", {}, 600), TransitionError::none);
    auto fenced = a->record_started_submissions(late, late_start);
    ASSERT_TRUE(fenced) << "what was submitted is recorded: " << a->error();
    EXPECT_EQ(*fenced, std::vector<bool>{false});
    EXPECT_TRUE(a->lost_hold());
    EXPECT_NE(a->error().find("this master ('m1', fence 1) was fenced"), std::string::npos) << a->error();
    ASSERT_GT(late[0].id, builds[1].id);
    EXPECT_EQ(db_.sql("SELECT state || ' ' || worker || ' ' || master FROM builds WHERE id = " +
                      std::to_string(late[0].id)),
              "pending  ");
    auto lost = b->claim_available({*late_start[0]});
    ASSERT_TRUE(lost) << "another master runs it: " << b->error();
    EXPECT_TRUE(lost->empty());
}

// The ends of a master's builds and the claims of its next ones, in one
// commit: a claim another master won is returned and the rest commits;
// an end of a build this master no longer holds, or a fenced master,
// commits nothing of it.
TEST_P(PgClusterTest, EndsAndClaimsCommitTogetherOrNotAtAll) {
    auto a = store(), b = store();
    ASSERT_EQ(join(*a, "m1", 101), 1u);
    ASSERT_EQ(join(*b, "m2", 102), 1u);
    Build run1, run2, next1, next2, theirs;
    for (Build* x : {&run1, &run2, &next1, &next2, &theirs}) {
        x->builder = "hello";
        ASSERT_TRUE(a->record_submitted(*x)) << a->error();
    }
    ASSERT_EQ(start_build(run1, "w1", {}, 10), TransitionError::none);
    ASSERT_EQ(start_build(run2, "w1", {}, 10), TransitionError::none);
    ASSERT_TRUE(a->claim_builds({run1, run2})) << a->error();
    Build taken = theirs;
    ASSERT_EQ(start_build(taken, "w9", {}, 15), TransitionError::none);
    ASSERT_TRUE(b->claim_builds({taken})) << b->error();

    std::vector<BuildEnd> ends{{run1, std::nullopt}, {run2, std::nullopt}};
    for (BuildEnd& e : ends) {
        ASSERT_EQ(finish_build(e.ended, Result::success, 0, 20), TransitionError::none);
    }
    std::vector<Build> claims{next1, theirs};
    for (Build& c : claims) {
        ASSERT_EQ(start_build(c, "w1", {}, 20), TransitionError::none);
    }
    const auto lost = a->record_ends_claiming(ends, claims);
    ASSERT_TRUE(lost) << a->error();
    EXPECT_EQ(*lost, std::vector<uint64_t>{theirs.id});
    EXPECT_FALSE(a->lost_hold()) << "losing a claim is no loss of hold";
    EXPECT_EQ(db_.sql("SELECT string_agg(id || ' ' || state || ' ' || worker, ',' ORDER BY id) FROM builds"),
              std::to_string(run1.id) + " finished w1," + std::to_string(run2.id) + " finished w1," +
                  std::to_string(next1.id) + " running w1," + std::to_string(next2.id) + " pending ," +
                  std::to_string(theirs.id) + " running w9");

    // m2's build among the ends: nothing of the commit lands.
    Build their_end = taken, c2 = next2;
    ASSERT_EQ(finish_build(their_end, Result::success, 0, 30), TransitionError::none);
    ASSERT_EQ(start_build(c2, "w1", {}, 30), TransitionError::none);
    Build mine = next1;
    ASSERT_EQ(start_build(mine, "w1", {}, 20), TransitionError::none);
    ASSERT_EQ(finish_build(mine, Result::success, 0, 30), TransitionError::none);
    std::vector<BuildEnd> mixed{{mine, std::nullopt}, {their_end, std::nullopt}};
    EXPECT_FALSE(a->record_ends_claiming(mixed, {c2}));
    EXPECT_TRUE(a->lost_hold());
    EXPECT_NE(a->error().find("master 'm2' holds it"), std::string::npos) << a->error();
    EXPECT_EQ(db_.sql("SELECT state FROM builds WHERE id = " + std::to_string(next1.id)), "running");
    EXPECT_EQ(db_.sql("SELECT state FROM builds WHERE id = " + std::to_string(next2.id)), "pending");

    // Fenced: nothing lands either, and the connection takes the next write.
    db_.sql("UPDATE masters SET heartbeat_at = now() - interval '1 minute' WHERE name = 'm1'");
    ASSERT_EQ(b->members()->declare_dead(row_of(*b, "m1"), "m2", 500, taken_over), std::optional<bool>(true));
    std::vector<BuildEnd> late{{mine, std::nullopt}};
    EXPECT_FALSE(a->record_ends_claiming(late, {c2}));
    EXPECT_TRUE(a->lost_hold());
    EXPECT_EQ(db_.sql("SELECT state FROM builds WHERE id = " + std::to_string(next2.id)), "pending");
    Build after;
    after.builder = "hello";
    EXPECT_TRUE(a->record_submitted(after)) << a->error();
    EXPECT_EQ(db_.sql("SELECT state FROM builds WHERE id = " + std::to_string(after.id)), "pending");
}

// At start a master loads every pending build and only the started ones
// it holds itself; another master's running build is not rerun.
TEST_P(PgClusterTest, AMasterRecoversOnlyItsOwnStartedBuilds) {
    auto a = store(), b = store();
    ASSERT_EQ(join(*a, "m1", 101), 1u);
    ASSERT_EQ(join(*b, "m2", 102), 1u);
    Build mine, theirs, pending;
    mine.builder = theirs.builder = pending.builder = "hello";
    ASSERT_TRUE(a->record_submitted(mine) && a->record_submitted(theirs) && a->record_submitted(pending));
    ASSERT_EQ(start_build(mine, "w1", {}, 10), TransitionError::none);
    ASSERT_EQ(start_build(theirs, "w2", {}, 10), TransitionError::none);
    ASSERT_TRUE(a->claim_builds({mine})) << a->error();
    ASSERT_TRUE(b->claim_builds({theirs})) << b->error();
    std::vector<uint64_t> ids;
    for (const Build& x : a->load_unfinished()) {
        ids.push_back(x.id);
    }
    EXPECT_EQ(ids, (std::vector<uint64_t>{mine.id, pending.id}));
    auto more = b->load_pending("hello", {}, 10);
    ASSERT_TRUE(more);
    ASSERT_EQ(more->size(), 1u);
    EXPECT_EQ(more->front().id, pending.id);
    EXPECT_TRUE(b->load_pending("hello", {pending.id}, 10)->empty()) << "the known ones are left out";
}

// Builds recorded running under a master's name and fence that it does
// not hold (claims it never saw commit) go back to pending, as submitted,
// and are announced; the ones it holds, another master's, and any after
// it was fenced stay as they are.
TEST_P(PgClusterTest, StartedButNotHeldBuildsArePendingAgain) {
    auto a = joined("m1", 101), b = joined("m2", 102);
    Build held, unseen, theirs;
    held.builder = unseen.builder = theirs.builder = "hello";
    unseen.requested = {{"k", "v"}};
    for (Build* x : {&held, &unseen, &theirs}) {
        ASSERT_TRUE(a->record_submitted(*x)) << a->error();
        ASSERT_EQ(start_build(*x, "w1", {{"os", "debian"}}, 10), TransitionError::none);
    }
    ASSERT_TRUE(a->claim_builds({held, unseen})) << a->error();
    ASSERT_TRUE(b->claim_builds({theirs})) << b->error();
    PGconn* listener = PQconnectdb(std::getenv("BUILDYARD_TEST_PG_URI"));
    ASSERT_EQ(PQstatus(listener), CONNECTION_OK) << PQerrorMessage(listener);
    PQclear(PQexec(listener, "LISTEN buildyard_pending"));

    const auto released = a->release_unheld({held.id});
    ASSERT_TRUE(released) << a->error();
    ASSERT_EQ(released->size(), 1u);
    const Build& r = released->front();
    EXPECT_EQ(r.id, unseen.id);
    EXPECT_EQ(r.state, BuildState::pending);
    EXPECT_EQ(r.worker, "");
    EXPECT_EQ(r.started_at, 0u);
    EXPECT_EQ(r.properties, unseen.requested) << "as submitted: no worker's properties";
    EXPECT_EQ(db_.sql("SELECT state || ' ' || master || ' ' || fence FROM builds WHERE id = " +
                      std::to_string(unseen.id)),
              "pending  0");
    EXPECT_EQ(db_.sql("SELECT string_agg(id || ' ' || state || ' ' || master, ', ' ORDER BY id) FROM builds "
                      "WHERE id <> " + std::to_string(unseen.id)),
              std::to_string(held.id) + " running m1, " + std::to_string(theirs.id) + " running m2");
    auto more = b->load_pending("hello", {}, 10);
    ASSERT_TRUE(more);
    ASSERT_EQ(more->size(), 1u) << "any master may run it";
    EXPECT_EQ(more->front().id, unseen.id);
    const auto again = a->release_unheld({held.id});
    ASSERT_TRUE(again) << a->error();
    EXPECT_TRUE(again->empty()) << "once";
    PQclear(PQexec(listener, "SELECT 1"));  // reads what came before
    std::vector<std::string> heard;
    while (PGnotify* n = PQnotifies(listener)) {
        heard.push_back(n->extra);
        PQfreemem(n);
    }
    PQfinish(listener);
    EXPECT_EQ(heard, std::vector<std::string>{"m1\nhello"}) << "announced to the other masters, once";

    // A row of an earlier fence of the same name is not this master's to
    // release (the master that declared that one dead reruns it).
    ASSERT_TRUE(a->claim_builds({unseen})) << a->error();
    db_.sql("UPDATE builds SET fence = 0 WHERE id = " + std::to_string(unseen.id));
    const auto earlier = a->release_unheld({held.id});
    ASSERT_TRUE(earlier) << a->error();
    EXPECT_TRUE(earlier->empty());
    db_.sql("UPDATE builds SET fence = 1 WHERE id = " + std::to_string(unseen.id));

    // Fenced (declared dead): nothing of its rows changes.
    db_.sql("UPDATE masters SET status = 'dead', fence = fence + 1 WHERE name = 'm1'");
    const auto none = a->release_unheld({});
    ASSERT_TRUE(none) << a->error();
    EXPECT_TRUE(none->empty());
    EXPECT_EQ(db_.sql("SELECT COUNT(*) FROM builds WHERE state = 'running' AND master = 'm1'"), "2");
}

// A new pending build is announced with its row, first, on a channel of
// its own, when that fits in a NOTIFY (the master that pulls it claims it
// with no SELECT first), and then without it, as masters of earlier
// releases hear it. A row too long for a NOTIFY, in bytes (the server's
// limit), is left out, and the submission commits all the same.
TEST_P(PgClusterTest, ANewPendingBuildIsAnnouncedWithItsRowIfItFits) {
    auto a = joined("m1", 101);
    PGconn* listener = PQconnectdb(std::getenv("BUILDYARD_TEST_PG_URI"));
    ASSERT_EQ(PQstatus(listener), CONNECTION_OK) << PQerrorMessage(listener);
    PQclear(PQexec(listener, "LISTEN buildyard_pending; LISTEN buildyard_pending_row"));
    Build small, large;
    small.builder = large.builder = "hello";
    small.requested = small.properties = {{"k", "v\n\"w\" \u00e9"}};
    small.submitted_at = large.submitted_at = 1700000000000001;
    // Fewer characters than the limit, twice as many bytes.
    std::string wide;
    for (size_t i = 0; i < pg_notify_payload_max / 4; ++i) wide += "\u00e9";
    large.requested = large.properties = {{"k", wide}};
    ASSERT_TRUE(a->record_submitted(small)) << a->error();
    ASSERT_TRUE(a->record_submitted(large)) << a->error();
    PQclear(PQexec(listener, "SELECT 1"));  // reads what came before
    std::vector<std::string> heard;
    while (PGnotify* n = PQnotifies(listener)) {
        heard.push_back(std::string(n->relname) + ": " + n->extra);
        PQfreemem(n);
    }
    PQfinish(listener);
    ASSERT_EQ(heard.size(), 3u);
    const std::string row_prefix = "buildyard_pending_row: ";
    ASSERT_EQ(heard[0].rfind(row_prefix, 0), 0u) << heard[0];
    heard[0].erase(0, row_prefix.size());

    const auto one = parse_pending_notice(heard[0]);
    ASSERT_TRUE(one) << heard[0];
    EXPECT_EQ(one->master, "m1");
    EXPECT_EQ(one->builder, "hello");
    ASSERT_TRUE(one->build) << heard[0];
    const auto stored = a->load_build(small.id);
    ASSERT_TRUE(stored) << a->error();
    const Build& b = *one->build;
    EXPECT_EQ(b.id, stored->id);
    EXPECT_EQ(b.request_id, stored->request_id);
    EXPECT_EQ(b.builder, stored->builder);
    EXPECT_EQ(b.state, BuildState::pending);
    EXPECT_EQ(b.worker, "");
    EXPECT_EQ(b.exit_status, stored->exit_status);
    EXPECT_EQ(b.requested, small.requested);
    EXPECT_EQ(b.properties, small.properties);
    EXPECT_EQ(b.submitted_at, small.submitted_at);
    EXPECT_EQ(b.usage, stored->usage);

    EXPECT_EQ(heard[1], "buildyard_pending: m1\nhello") << "then as earlier releases hear it";
    EXPECT_EQ(heard[2], "buildyard_pending: m1\nhello") << "too long for a NOTIFY: without its row alone";
    ASSERT_TRUE(a->load_build(large.id)) << "submitted all the same";
    EXPECT_EQ(a->load_build(large.id)->requested, large.requested);
}

// The log of an ended build, saved by the master that ran it, reads the
// same from another master, bytes and all, from any offset; a master
// saves no log of a build it does not hold.
TEST_P(PgClusterTest, ALogSavedByTheMasterThatRanTheBuildIsReadFromAnother) {
    auto a = store(), b = store();
    ASSERT_EQ(join(*a, "m1", 101), 1u);
    ASSERT_EQ(join(*b, "m2", 102), 1u);
    Build x;
    x.builder = "hello";
    ASSERT_TRUE(a->record_submitted(x));
    ASSERT_EQ(start_build(x, "w1", {}, 10), TransitionError::none);
    ASSERT_TRUE(a->claim_builds({x})) << a->error();
    std::string text = "step 1\n";
    text += std::string("\0\xff\x80 binary\n", 11);
    ASSERT_TRUE(b->save_logs({{x.id, "not mine"}})) << b->error();
    EXPECT_FALSE(b->load_log(x.id, 0, 100)) << "m2 does not hold it: nothing saved";
    ASSERT_TRUE(a->save_logs({{x.id, text}})) << a->error();
    EXPECT_EQ(b->load_log(x.id, 0, 1000), text);
    EXPECT_EQ(b->load_log(x.id, 7, 3), text.substr(7, 3));
    EXPECT_EQ(b->load_log(x.id, 1000, 10), std::string()) << "past the end: nothing";
    EXPECT_FALSE(b->load_log(x.id + 1, 0, 10));
    EXPECT_TRUE(b->error().empty()) << b->error();
}

GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(PgClusterTest);
INSTANTIATE_TEST_SUITE_P(Engines, PgClusterTest, ::testing::ValuesIn(postgresql_only()), engine_name);
