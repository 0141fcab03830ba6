// Change notification names exactly the properties whose values changed.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "master/shown.hpp"

using namespace by::master;

namespace {
std::vector<std::string> names(const std::vector<const char*>& v) { return {v.begin(), v.end()}; }
}  // namespace

TEST(Shown, SameWorkerValuesNameNothing) {
    WorkerShown a;
    a.state = "idle";
    a.info = {{"os", "debian"}};
    EXPECT_TRUE(changed_properties(a, a).empty());
}

TEST(Shown, AStartedBuildChangesStateAndRunningBuildsOnly) {
    WorkerShown before;
    before.type = "local";
    before.state = "idle";
    before.connected = true;
    before.max_builds = 2;
    WorkerShown after = before;
    after.state = "building";
    after.running_builds = 1;
    EXPECT_EQ(names(changed_properties(before, after)), (std::vector<std::string>{"State", "RunningBuilds"}));
}

TEST(Shown, EveryWorkerFieldIsCompared) {
    WorkerShown a;
    WorkerShown b;
    b.type = "latent";
    b.state = "offline";
    b.connected = true;
    b.paused = true;
    b.pause_reason = "disk";
    b.max_builds = 3;
    b.running_builds = 1;
    b.properties = {{"os", "x"}};
    b.info = {{"arch", "y"}};
    b.keepalive_interval = 1;
    b.missing_timeout = 1;
    b.notify_on_missing = {"a@example.org"};
    b.last_connected = 1;
    b.last_disconnected = 1;
    b.configured = false;
    b.missing_since = 1;
    b.missing_notified = true;
    b.build_wait_timeout = -1;
    b.backend = "libvirt";
    b.instance_start = "s";
    b.instance = "i";
    b.start_failures = 1;
    b.quarantined_until = 1;
    b.last_start_error = "e";
    EXPECT_EQ(names(changed_properties(a, b)),
              (std::vector<std::string>{"Type", "State", "Connected", "Paused", "PauseReason", "MaxBuilds",
                                        "RunningBuilds", "Properties", "Info", "KeepaliveInterval", "MissingTimeout",
                                        "NotifyOnMissing", "LastConnected", "LastDisconnected", "Configured",
                                        "MissingSince", "MissingNotified", "BuildWaitTimeout", "Backend",
                                        "InstanceStart", "Instance", "StartFailures", "QuarantinedUntil",
                                        "LastStartError"}));
}

TEST(Shown, BuildTransitionsNameWhatTheyChange) {
    Build b;
    b.id = 7;
    b.builder = "hello";
    b.requested = {{"branch", "main"}};
    b.properties = b.requested;
    b.submitted_at = 10;
    Build shown = b;

    ASSERT_EQ(start_build(b, "bot1", {{"os", "debian"}}, 20), TransitionError::none);
    EXPECT_EQ(names(changed_properties(shown, b)),
              (std::vector<std::string>{"Worker", "State", "Properties", "StartedAt"}));
    shown = b;

    b.current_step = 1;
    EXPECT_EQ(names(changed_properties(shown, b)), (std::vector<std::string>{"CurrentStep"}));
    shown = b;

    ASSERT_EQ(finish_build(b, Result::failure, 3, 30), TransitionError::none);
    EXPECT_EQ(names(changed_properties(shown, b)),
              (std::vector<std::string>{"State", "Result", "ExitStatus", "FinishedAt"}));
}

TEST(Shown, ARetryNamesRetriedAs) {
    Build b;
    b.id = 7;
    b.builder = "hello";
    ASSERT_EQ(start_build(b, "bot1", {}, 20), TransitionError::none);
    Build shown = b;
    auto next = retry_build(b, 30);
    ASSERT_TRUE(next.has_value());
    b.retried_as = 8;
    EXPECT_EQ(names(changed_properties(shown, b)),
              (std::vector<std::string>{"State", "Result", "FinishedAt", "RetriedAs"}));
}
