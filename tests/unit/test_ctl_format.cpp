// buildyardctl's pure output code: tables, times, cells, JSON, exit codes
// and error messages.
#include <cerrno>
#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include "ctl/format.hpp"
#include "ctl/outcome.hpp"
#include "ctl/value.hpp"
#include "time_zone.hpp"

using namespace by::ctl;

namespace {

// Times are shown in local time; pin the zone so the expectations hold anywhere.
class CtlUtcZone : public TimeZoneTest {
protected:
    CtlUtcZone() : TimeZoneTest("UTC") {}
};

}  // namespace

TEST(CtlTable, AlignsColumnsAndLeavesNoTrailingBlanks) {
    Table t({"NAME", "STATE", "NOTE"});
    t.add_row({"bot-linux", "idle", "x"});
    t.add_row({"b", "building", "paused: disk full"});
    EXPECT_EQ(t.render(),
              "NAME       STATE     NOTE\n"
              "bot-linux  idle      x\n"
              "b          building  paused: disk full\n");
}

TEST(CtlTable, EmptyAndMissingCellsPrintAsDash) {
    Table t({"ID", "WORKER", "RESULT"});
    t.add_row({"1", ""});
    EXPECT_EQ(t.render(),
              "ID  WORKER  RESULT\n"
              "1   -       -\n");
}

TEST(CtlTable, HeaderOnlyWhenEmpty) {
    Table t(build_columns);
    EXPECT_EQ(t.rows(), 0u);
    EXPECT_EQ(t.render(), "ID  BUILDER  WORKER  STATE  RESULT  EXIT  DURATION\n");
}

TEST(CtlBuilds, ExitStatusAndDurationCells) {
    PropertyMap failed{{"State", std::string("finished")}, {"ExitStatus", int64_t{2}},
                       {"StartedAt", uint64_t{1'000'000}}, {"FinishedAt", uint64_t{3'500'000}}};
    EXPECT_EQ(build_exit_cell(failed), "2");
    EXPECT_EQ(build_duration_cell(failed, 99'000'000), "2.50 s");
    EXPECT_EQ(build_exit_json(failed), 2);
    EXPECT_EQ(build_duration_json(failed, 99'000'000), 2.5);

    PropertyMap running{{"State", std::string("running")}, {"ExitStatus", int64_t{-1}},
                        {"StartedAt", uint64_t{1'000'000}}, {"FinishedAt", uint64_t{0}}};
    EXPECT_EQ(build_exit_cell(running), "");
    EXPECT_EQ(build_duration_cell(running, 13'000'000), "12.0 s") << "running: up to now";
    EXPECT_TRUE(build_exit_json(running).is_null());

    PropertyMap pending{{"State", std::string("pending")}, {"ExitStatus", int64_t{-1}},
                        {"StartedAt", uint64_t{0}}, {"FinishedAt", uint64_t{0}}};
    EXPECT_EQ(build_duration_cell(pending, 5), "");
    EXPECT_TRUE(build_duration_json(pending, 5).is_null());
}

TEST(CtlTable, CountsUtf8CodePointsAsOneColumn) {
    EXPECT_EQ(display_width("héllo"), 5u);
    Table t({"A", "B"});
    t.add_row({"é", "x"});
    t.add_row({"ab", "y"});
    EXPECT_EQ(t.render(),
              "A   B\n"
              "é   x\n"
              "ab  y\n");
}

TEST_F(CtlUtcZone, FormatsTimesAsLocalTime) {
    EXPECT_EQ(format_time(0), "-");
    // 2024-03-05 06:07:08 UTC, with microseconds that must be cut off.
    EXPECT_EQ(format_time(1709618828'123456ull), "2024-03-05 06:07:08");
}

TEST_F(CtlUtcZone, FollowsTheTimeZone) {
    set_time_zone("EST5");  // fixed UTC-5, no daylight saving
    EXPECT_EQ(format_time(1709618828'000000ull), "2024-03-05 01:07:08");
}

TEST_F(CtlUtcZone, WorkerNoteMissing) {
    EXPECT_EQ(worker_note(false, "", true, 1709618828'000000ull, false), "missing since 2024-03-05 06:07:08");
    EXPECT_EQ(worker_note(false, "", true, 1709618828'000000ull, true),
              "missing since 2024-03-05 06:07:08, mailed");
    EXPECT_EQ(worker_note(true, "x", true, 1709618828'000000ull, true),
              "paused: x; missing since 2024-03-05 06:07:08, mailed");
    EXPECT_EQ(worker_note(false, "", true, 0, true), "");
}

TEST(CtlCells, BuildSlots) {
    EXPECT_EQ(format_build_slots(2, 0), "2/-");
    EXPECT_EQ(format_build_slots(1, 4), "1/4");
    EXPECT_EQ(format_build_slots(0, 1), "0/1");
}

TEST(CtlCells, WorkerNote) {
    EXPECT_EQ(worker_note(false, "", true), "");
    EXPECT_EQ(worker_note(true, "", true), "paused");
    EXPECT_EQ(worker_note(true, "disk full", true), "paused: disk full");
    EXPECT_EQ(worker_note(false, "", false), "removed from config");
    EXPECT_EQ(worker_note(true, "x", false), "paused: x; removed from config");
}

TEST_F(CtlUtcZone, WorkerRowFromProperties) {
    PropertyMap w{
        {"Name", std::string("bot-linux")},
        {"Type", std::string("standard")},
        {"State", std::string("building")},
        {"Connected", true},
        {"Paused", false},
        {"PauseReason", std::string("")},
        {"MaxBuilds", uint64_t{2}},
        {"RunningBuilds", uint64_t{1}},
        {"Info", StringMap{{"host", "ci1.example.org"}, {"os", "Linux"}}},
        {"LastConnected", uint64_t{1709618828'000000ull}},
        {"Configured", true},
    };
    EXPECT_EQ(worker_row(w), (std::vector<std::string>{"bot-linux", "standard", "building", "1/2",
                                                       "2024-03-05 06:07:08",
                                                       "ci1.example.org", ""}));

    // Disconnected: no time even if it connected once; paused and unconfigured.
    w["Connected"] = false;
    w["Paused"] = true;
    w["PauseReason"] = std::string("maintenance");
    w["Configured"] = false;
    w["MaxBuilds"] = uint64_t{0};
    w["RunningBuilds"] = uint64_t{0};
    w["Info"] = StringMap{};
    auto row = worker_row(w);
    EXPECT_EQ(row[3], "0/-");
    EXPECT_EQ(row[4], "-");
    EXPECT_EQ(row[5], "");
    EXPECT_EQ(row[6], "paused: maintenance; removed from config");

    Table t(worker_columns);
    t.add_row(row);
    EXPECT_EQ(t.render(),
              "NAME       TYPE      STATE     BUILDS  CONNECTED  HOST  NOTE\n"
              "bot-linux  standard  building  0/-     -          -     "
              "paused: maintenance; removed from config\n");
}

TEST(CtlStatus, KeyValueLines) {
    MasterStatus s{"0.1.0", "ci-main", "sha256:" + std::string(64, 'a'), 3, 2, 1, 0};
    EXPECT_EQ(format_status(s),
              "version: 0.1.0\n"
              "name: ci-main\n"
              "tls fingerprint: sha256:" + std::string(64, 'a') + "\n"
              "workers: 3\n"
              "connected workers: 2\n"
              "running builds: 1\n"
              "pending builds: 0\n");
    EXPECT_EQ(format_status(MasterStatus{}).substr(0, 52),
              "version: -\nname: -\ntls fingerprint: none (tls = no)\n");
}

TEST(CtlValue, SnakeCase) {
    EXPECT_EQ(snake_case("Name"), "name");
    EXPECT_EQ(snake_case("MaxBuilds"), "max_builds");
    EXPECT_EQ(snake_case("LastConnected"), "last_connected");
    EXPECT_EQ(snake_case("KeepaliveInterval"), "keepalive_interval");
    EXPECT_EQ(snake_case("HTTPPort"), "http_port");
    EXPECT_EQ(snake_case("Id"), "id");
    EXPECT_EQ(snake_case("already_snake"), "already_snake");
}

TEST(CtlValue, TypedLookupsFallBack) {
    PropertyMap p{{"S", std::string("x")}, {"U", uint64_t{7}}, {"I", int64_t{-1}}, {"B", true}};
    EXPECT_EQ(prop_string(p, "S"), "x");
    EXPECT_EQ(prop_string(p, "U", "fb"), "fb");
    EXPECT_EQ(prop_string(p, "missing", "fb"), "fb");
    EXPECT_EQ(prop_uint(p, "U"), 7u);
    EXPECT_EQ(prop_uint(p, "I", 9), 9u);
    EXPECT_TRUE(prop_bool(p, "B"));
    EXPECT_TRUE(prop_bool(p, "missing", true));
    EXPECT_TRUE(prop_map(p, "S").empty());
}

TEST(CtlValue, PropertiesToJson) {
    PropertyMap p{
        {"Name", std::string("w")},
        {"MaxBuilds", uint64_t{2}},
        {"BuildWaitTimeout", int64_t{-1}},
        {"Connected", false},
        {"NotifyOnMissing", std::vector<std::string>{"a@x", "b@y"}},
        {"Info", StringMap{{"host", "h"}}},
        {"Unknown", std::monostate{}},
    };
    auto j = to_json(p);
    EXPECT_EQ(j["name"], "w");
    EXPECT_EQ(j["max_builds"], 2);
    EXPECT_EQ(j["build_wait_timeout"], -1);
    EXPECT_EQ(j["connected"], false);
    EXPECT_EQ(j["notify_on_missing"], nlohmann::json::array({"a@x", "b@y"}));
    EXPECT_EQ(j["info"]["host"], "h");
    EXPECT_FALSE(j.contains("unknown"));
    EXPECT_EQ(j.size(), 6u);
}

TEST(CtlValue, DumpReplacesInvalidUtf8) {
    nlohmann::json j = {{"reason", std::string("bad \xff byte")}};
    std::string out = dump_json(j);
    EXPECT_NE(out.find("bad \xEF\xBF\xBD byte"), std::string::npos);
    EXPECT_EQ(nlohmann::json::parse(out)["reason"], "bad \xEF\xBF\xBD byte");
}

TEST(CtlOutcome, ExitCodeForResult) {
    EXPECT_EQ(exit_code_for_result("success"), 0);
    EXPECT_EQ(exit_code_for_result("failure"), 1);
    EXPECT_EQ(exit_code_for_result("exception"), 3);
    EXPECT_EQ(exit_code_for_result("cancelled"), 4);
    EXPECT_EQ(exit_code_for_result("something-new"), 1);
    EXPECT_EQ(exit_code::usage, 2);
    EXPECT_EQ(exit_code::bus, 2);
}

TEST(CtlOutcome, MasterNotRunning) {
    const std::string msg =
        "buildyard-masterd is not running (nothing owns org.buildyard.Master1 on the system bus)";
    EXPECT_EQ(describe_bus_error("org.freedesktop.DBus.Error.ServiceUnknown",
                                 "The name org.buildyard.Master1 was not provided", 0),
              msg);
    EXPECT_EQ(describe_bus_error("org.freedesktop.DBus.Error.NameHasNoOwner", "x", 0), msg);
    EXPECT_EQ(bus_failure("org.freedesktop.DBus.Error.ServiceUnknown", "", 0).exit_code, 2);
}

TEST(CtlOutcome, PermissionDeniedSaysWhatIsNeededWithoutTheBusText) {
    const char* rejected = "Rejected send message, 2 matched rules; type=\"method_call\"";
    EXPECT_EQ(describe_bus_error("org.freedesktop.DBus.Error.AccessDenied", rejected, 0, "Pause"),
              "permission denied: changing Buildyard needs root or membership in group buildyard");
    EXPECT_EQ(describe_bus_error("org.freedesktop.DBus.Error.AccessDenied", rejected, 0, "ReadLog"),
              "permission denied: reading build logs needs root or membership in group buildyard");
    EXPECT_EQ(describe_bus_error("org.freedesktop.DBus.Error.AccessDenied", rejected, 0, "SubmitBuild"),
              "permission denied: submitting builds needs root or membership in group buildyard");
}

TEST(CtlOutcome, BuildyardErrorsGetASentence) {
    EXPECT_EQ(describe_bus_error("org.buildyard.Error.NoSuchWorker", "no worker 'x'", 0),
              "no such worker: no worker 'x'");
    EXPECT_EQ(describe_bus_error("org.buildyard.Error.NoSuchBuilder", "nope", 0),
              "no such builder: nope");
    EXPECT_EQ(describe_bus_error("org.buildyard.Error.NoSuchBuild", "42", 0), "no such build: 42");
    EXPECT_EQ(describe_bus_error("org.buildyard.Error.InvalidArgument", "bad", 0),
              "invalid argument: bad");
    EXPECT_EQ(describe_bus_error("org.buildyard.Error.AccessDenied", "uid 1000", 0),
              "access denied: uid 1000");
    // The master's message says it already: not "build already finished: build 3 has ...".
    EXPECT_EQ(describe_bus_error("org.buildyard.Error.AlreadyFinished", "build 3 has already finished", 0),
              "build 3 has already finished");
    EXPECT_EQ(describe_bus_error("org.buildyard.Error.AlreadyFinished", "", 0),
              "build already finished");
    EXPECT_EQ(describe_bus_error("org.buildyard.Error.SomethingNew", "m", 0), "SomethingNew: m");
}

TEST(CtlOutcome, ConfigInvalidKeepsTheFileLineErrorsAndExitsOne) {
    auto one = bus_failure("org.buildyard.Error.ConfigInvalid",
                           "/etc/buildyard/master.ini:3: [worker a] max_builds: not a number", 0);
    EXPECT_EQ(one.exit_code, 1);
    EXPECT_EQ(one.message,
              "the new configuration was rejected; the old one stays in force: "
              "/etc/buildyard/master.ini:3: [worker a] max_builds: not a number");
    auto two = bus_failure("org.buildyard.Error.ConfigInvalid", "a.ini:1: x\nb.ini:2: y", 0);
    EXPECT_EQ(two.message,
              "the new configuration was rejected; the old one stays in force:\n"
              "a.ini:1: x\nb.ini:2: y");
    EXPECT_EQ(bus_failure("org.buildyard.Error.NoSuchWorker", "", 0).exit_code, 2);
}

TEST(CtlOutcome, OtherErrors) {
    EXPECT_EQ(describe_bus_error("org.freedesktop.DBus.Error.NoReply", "timed out", 0),
              "timed out (org.freedesktop.DBus.Error.NoReply)");
    EXPECT_EQ(describe_bus_error("", "", ECONNRESET), std::strerror(ECONNRESET));
    EXPECT_EQ(connect_failure(ENOENT).message,
              std::string("cannot connect to the system bus at unix:path=/run/dbus/system_bus_socket: ") +
                  std::strerror(ENOENT) +
                  "\nIs dbus running (systemctl status dbus)? For a private bus, such as the one "
                  "`tests/quickstart.sh --keep` leaves running, set DBUS_SYSTEM_BUS_ADDRESS=unix:path=DIR/bus "
                  "as it prints.");
    EXPECT_EQ(connect_failure(ECONNREFUSED, "unix:path=/tmp/q/bus").message,
              std::string("cannot connect to the system bus at DBUS_SYSTEM_BUS_ADDRESS=unix:path=/tmp/q/bus: ") +
                  std::strerror(ECONNREFUSED) +
                  "\nThat bus is gone (was the quickstart stopped?); unset DBUS_SYSTEM_BUS_ADDRESS to use the "
                  "machine's system bus.");
    EXPECT_EQ(connect_failure(ENOENT).exit_code, 2);
}

TEST(CtlOutcome, ExpectedHoldsValueOrFailure) {
    Expected<int> v(5);
    ASSERT_TRUE(v);
    EXPECT_EQ(*v, 5);
    Expected<int> f(Failure{4, "x"});
    ASSERT_FALSE(f);
    EXPECT_EQ(f.error().exit_code, 4);
    EXPECT_EQ(f.error().message, "x");
    EXPECT_TRUE(ok_status().ok());
}

TEST_F(CtlUtcZone, LatentNote) {  // quarantined until: a local time
    const uint64_t t = 1709618828'000000ull;
    EXPECT_EQ(latent_note(0, 0, "", t), "");
    EXPECT_EQ(latent_note(t + 10'000000, 1, "its machine did not start: no such file", t),
              "1 failed start, quarantined until 2024-03-05 06:07:18: its machine did not start: no such file");
    EXPECT_EQ(latent_note(t - 1, 3, "x", t), "3 failed starts: x");
}

TEST(CtlStatus, ClusterMembersAsATable) {
    std::vector<ClusterMember> members(2);
    members[0] = {"m1", "live", 3, 400'000, 1, true, "h1", "0.0.0.0:9989", 1234};
    members[1] = {"m2", "dead", 2, 12'340'000, 0, false, "h2", "", 0};
    EXPECT_EQ(format_cluster(members),
              "cluster members: 2\n"
              "MASTER  STATE  HEARTBEAT   FENCE  HOST  PID   ADDRESS       NOTE\n"
              "m1      live   0.4 s ago   3      h1    1234  0.0.0.0:9989  this master\n"
              "m2      dead   12.3 s ago  2      h2    -     -             -\n");
}
