// BuildRunner with a real sd-event loop and real /bin/sh steps in a
// temporary base directory. Each test runs the loop until the build's done
// callback fires; a generous deadline turns a hang into a failure.

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include "common/raii.hpp"
#include "temp_dir.hpp"
#include "worker/build_runner.hpp"

namespace fs = std::filesystem;
using by::worker::BuildRunner;

namespace {

constexpr uint64_t deadline_usec = 60 * 1000000ull;
constexpr int timed_out = 99;

struct Outcome {
    int loop = -1;  // sd_event_loop's result: 0 when done fired, timed_out otherwise
    std::string output;
    std::vector<unsigned> steps;
    std::string result;
    int exit_status = -2;
};

class BuildRunnerTest : public ::testing::Test {
protected:
    void SetUp() override {
        // sd_event_add_child needs SIGCHLD blocked, as the daemon's main() does.
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        ASSERT_EQ(sigprocmask(SIG_BLOCK, &mask, nullptr), 0);
        // Orphaned step processes become our children, so a test can reap
        // them and see them gone (kill(pid, 0) == ESRCH).
        ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);

        basedir_ = tmp_ / "base";

        sd_event* e = nullptr;
        ASSERT_GE(sd_event_new(&e), 0);
        event_.reset(e);
    }

    BuildRunner::Spec spec(std::vector<std::string> steps, std::string builder = "hello") {
        BuildRunner::Spec s;
        s.basedir = basedir_.string();
        s.builder = std::move(builder);
        s.steps = std::move(steps);
        s.kill_timeout = 10;
        return s;
    }

    // Runs one build to its end. on_output sees the output so far and may
    // cancel the runner. The runner is destroyed from inside `done`, which
    // its contract allows.
    Outcome run(BuildRunner::Spec s, std::function<void(BuildRunner&, const std::string&)> on_output = {}) {
        Outcome out;
        // A loop that has exited cannot run again: one loop per build.
        sd_event* e = nullptr;
        EXPECT_GE(sd_event_new(&e), 0);
        event_.reset(e);
        std::unique_ptr<BuildRunner> runner;
        BuildRunner::Callbacks cb;
        cb.output = [&](std::string_view data) {
            out.output.append(data);
            if (on_output) {
                on_output(*runner, out.output);
            }
        };
        cb.step_started = [&](unsigned step) { out.steps.push_back(step); };
        cb.done = [&](const std::string& result, int exit_status) {
            out.result = result;
            out.exit_status = exit_status;
            runner.reset();
            sd_event_exit(event_.get(), 0);
        };
        runner = std::make_unique<BuildRunner>(event_.get(), std::move(s), std::move(cb));
        EXPECT_EQ(runner->start(), 0);
        sd_event_source* t = nullptr;
        EXPECT_GE(sd_event_add_time_relative(
                      event_.get(), &t, CLOCK_MONOTONIC, deadline_usec, 0,
                      [](sd_event_source* src, uint64_t, void*) {
                          return sd_event_exit(sd_event_source_get_event(src), timed_out);
                      },
                      nullptr),
                  0);
        by::SourcePtr deadline(t);
        out.loop = sd_event_loop(event_.get());
        return out;
    }

    fs::path cwd(const std::string& builder = "hello") const { return basedir_ / builder; }

    pid_t read_pid(const fs::path& file) const {
        std::ifstream in(file);
        pid_t pid = -1;
        in >> pid;
        return pid;
    }

    TempDir dir_{"buildyard-runner"};
    const fs::path tmp_{dir_.path()};
    fs::path basedir_;
    by::EventPtr event_;
};

// glibc 2.36's <sys/pidfd.h> lacks extern "C", so call the kernel directly.
int open_pidfd(pid_t pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }

// Waits (at most 10 s) for `pid` to exit, reaps it (it is our child now that
// its shell is gone), and tells whether it is gone for good.
bool gone_after_reaping(pid_t pid, int pidfd) {
    pollfd p{pidfd, POLLIN, 0};
    if (poll(&p, 1, 10000) != 1) {
        return false;  // still running: nobody killed it
    }
    waitpid(pid, nullptr, 0);
    return kill(pid, 0) < 0 && errno == ESRCH;
}

TEST(SafePathComponent, AcceptsOneComponentOnly) {
    EXPECT_TRUE(by::worker::safe_path_component("hello"));
    EXPECT_TRUE(by::worker::safe_path_component("a.b-c_d"));
    EXPECT_TRUE(by::worker::safe_path_component("..."));
    EXPECT_FALSE(by::worker::safe_path_component(""));
    EXPECT_FALSE(by::worker::safe_path_component("."));
    EXPECT_FALSE(by::worker::safe_path_component(".."));
    EXPECT_FALSE(by::worker::safe_path_component("a/b"));
    EXPECT_FALSE(by::worker::safe_path_component("/abs"));
    EXPECT_FALSE(by::worker::safe_path_component(std::string("a\0b", 3)));
}

TEST_F(BuildRunnerTest, StepsRunInOrderAndOutputArrivesInOrder) {
    auto out = run(spec({"echo one", "echo two >&2", "printf three"}));
    ASSERT_EQ(out.loop, 0);
    EXPECT_EQ(out.result, "success");
    EXPECT_EQ(out.exit_status, 0);
    EXPECT_EQ(out.output, "one\ntwo\nthree");
    EXPECT_EQ(out.steps, (std::vector<unsigned>{1, 2, 3}));
}

TEST_F(BuildRunnerTest, StepsSeeTheEnvironment) {
    auto s = spec({"echo \"$BUILDYARD_BUILD_ID|$BUILDYARD_BUILDER|$BUILDYARD_WORKER|$BUILDYARD_PROP_branch\""});
    s.environment = {{"BUILDYARD_BUILD_ID", "42"},
                     {"BUILDYARD_BUILDER", "hello"},
                     {"BUILDYARD_WORKER", "bot1"},
                     {"BUILDYARD_PROP_branch", "main with spaces"}};
    auto out = run(std::move(s));
    ASSERT_EQ(out.loop, 0);
    EXPECT_EQ(out.result, "success");
    EXPECT_EQ(out.output, "42|hello|bot1|main with spaces\n");
}

TEST_F(BuildRunnerTest, StepsRunInACreatedBuilderDirectory) {
    basedir_ = tmp_ / "does" / "not" / "exist";
    ASSERT_FALSE(fs::exists(basedir_));
    auto out = run(spec({"pwd -P", "touch created-here"}, "hello"));
    ASSERT_EQ(out.loop, 0);
    EXPECT_EQ(out.result, "success");
    EXPECT_EQ(out.output, fs::canonical(cwd("hello")).string() + "\n");
    EXPECT_TRUE(fs::is_directory(cwd("hello")));
    EXPECT_TRUE(fs::exists(cwd("hello") / "created-here"));
}

TEST_F(BuildRunnerTest, FirstFailingStepEndsTheBuild) {
    auto out = run(spec({"echo first", "echo failing; exit 3", "touch marker"}));
    ASSERT_EQ(out.loop, 0);
    EXPECT_EQ(out.result, "failure");
    EXPECT_EQ(out.exit_status, 3);
    EXPECT_EQ(out.output, "first\nfailing\n");
    EXPECT_EQ(out.steps, (std::vector<unsigned>{1, 2}));
    EXPECT_FALSE(fs::exists(cwd() / "marker"));
}

TEST_F(BuildRunnerTest, StepKilledBySignalFailsWith128PlusSignal) {
    auto out = run(spec({"kill -KILL $$", "touch marker"}));
    ASSERT_EQ(out.loop, 0);
    EXPECT_EQ(out.result, "failure");
    EXPECT_EQ(out.exit_status, 128 + SIGKILL);
    EXPECT_FALSE(fs::exists(cwd() / "marker"));
}

TEST_F(BuildRunnerTest, CancelKillsTheWholeProcessGroup) {
    pid_t background = -1;
    by::Fd pidfd;
    auto out = run(spec({"sleep 1000 & echo $! > bg.pid; echo started; sleep 1000; wait", "touch marker"}),
                   [&](BuildRunner& runner, const std::string& output) {
                       if (output.find("started\n") != std::string::npos && !runner.cancelled()) {
                           background = read_pid(cwd() / "bg.pid");
                           pidfd.reset(open_pidfd(background));
                           runner.cancel();
                       }
                   });
    ASSERT_EQ(out.loop, 0);
    EXPECT_EQ(out.result, "cancelled");
    EXPECT_EQ(out.steps, (std::vector<unsigned>{1}));
    EXPECT_FALSE(fs::exists(cwd() / "marker"));
    ASSERT_GT(background, 0);
    ASSERT_TRUE(pidfd);
    EXPECT_TRUE(gone_after_reaping(background, pidfd.get()));
}

TEST_F(BuildRunnerTest, StepIgnoringSigtermIsKilledAfterKillTimeout) {
    auto s = spec({"trap '' TERM; echo started; sleep 1000"});
    s.kill_timeout = 1;
    auto cancelled_at = std::chrono::steady_clock::time_point{};
    auto out = run(std::move(s), [&](BuildRunner& runner, const std::string& output) {
        if (output == "started\n" && !runner.cancelled()) {
            cancelled_at = std::chrono::steady_clock::now();
            runner.cancel();
        }
    });
    auto elapsed = std::chrono::steady_clock::now() - cancelled_at;
    ASSERT_EQ(out.loop, 0);
    EXPECT_EQ(out.result, "cancelled");
    // SIGTERM was ignored, so only the SIGKILL after kill_timeout ended it.
    EXPECT_EQ(out.exit_status, 128 + SIGKILL);
    EXPECT_GE(elapsed, std::chrono::milliseconds(900));
}

TEST_F(BuildRunnerTest, CancelBeforeTheFirstStepRunsNothing) {
    std::string result;
    bool step_started = false;
    BuildRunner::Callbacks cb;
    cb.step_started = [&](unsigned) { step_started = true; };
    cb.done = [&](const std::string& r, int) {
        result = r;
        sd_event_exit(event_.get(), 0);
    };
    BuildRunner runner(event_.get(), spec({"touch marker"}), std::move(cb));
    ASSERT_EQ(runner.start(), 0);
    runner.cancel();
    ASSERT_EQ(sd_event_loop(event_.get()), 0);
    EXPECT_EQ(result, "cancelled");
    EXPECT_FALSE(step_started);
    EXPECT_FALSE(fs::exists(cwd() / "marker"));
}

TEST_F(BuildRunnerTest, LargeOutputArrivesComplete) {
    auto out = run(spec({"head -c 5000000 /dev/zero | tr '\\0' x", "echo end"}));
    ASSERT_EQ(out.loop, 0);
    EXPECT_EQ(out.result, "success");
    ASSERT_EQ(out.output.size(), 5000000u + 4u);
    EXPECT_EQ(out.output.find_first_not_of('x'), 5000000u);
    EXPECT_EQ(out.output.substr(5000000), "end\n");
}

TEST_F(BuildRunnerTest, OutputComesInChunksOfAtMostMaxChunk) {
    size_t largest = 0;
    size_t seen = 0;
    auto out = run(spec({"head -c 3000000 /dev/zero | tr '\\0' y"}), [&](BuildRunner&, const std::string& so_far) {
        largest = std::max(largest, so_far.size() - seen);
        seen = so_far.size();
    });
    ASSERT_EQ(out.output.size(), 3000000u);
    EXPECT_EQ(out.output.find_first_not_of('y'), std::string::npos);
    EXPECT_GT(largest, 0u);
    EXPECT_LE(largest, BuildRunner::max_chunk);
}

TEST_F(BuildRunnerTest, OutputIsIntactAfterTheSharedBufferIsReleased) {
    EXPECT_EQ(run(spec({"echo first"})).output, "first\n");
    BuildRunner::release_buffer();
    auto out = run(spec({"head -c 1000000 /dev/zero | tr '\\0' z"}));
    ASSERT_EQ(out.output.size(), 1000000u);
    EXPECT_EQ(out.output.find_first_not_of('z'), std::string::npos);
}

TEST_F(BuildRunnerTest, NothingAStepStartedOutlivesIt) {
    // The background sleep keeps the output pipe open; the step must still
    // end when its shell does, and take the sleep with it.
    by::Fd pidfd;
    pid_t background = -1;
    auto out = run(spec({"sleep 1000 & echo $! > bg.pid; echo $!", "echo next"}),
                   [&](BuildRunner&, const std::string& output) {
                       if (background < 0 && output.find('\n') != std::string::npos) {
                           background = std::atoi(output.c_str());
                           pidfd.reset(open_pidfd(background));
                       }
                   });
    ASSERT_EQ(out.loop, 0);
    EXPECT_EQ(out.result, "success");
    EXPECT_EQ(out.steps, (std::vector<unsigned>{1, 2}));
    EXPECT_EQ(out.output, std::to_string(read_pid(cwd() / "bg.pid")) + "\nnext\n");
    ASSERT_GT(background, 0);
    ASSERT_TRUE(pidfd);
    EXPECT_TRUE(gone_after_reaping(background, pidfd.get()));
}

TEST_F(BuildRunnerTest, UnsafeBuilderNamesEndInException) {
    for (const char* builder : {"", ".", "..", "../escape", "a/b"}) {
        SCOPED_TRACE(builder);
        auto out = run(spec({"touch marker"}, builder));
        ASSERT_EQ(out.loop, 0);
        EXPECT_EQ(out.result, "exception");
        EXPECT_EQ(out.exit_status, -1);
        EXPECT_TRUE(out.steps.empty());
        EXPECT_NE(out.output.find("cannot be used as a directory name"), std::string::npos);
    }
    EXPECT_FALSE(fs::exists(tmp_ / "marker"));
    EXPECT_FALSE(fs::exists(tmp_ / "escape"));
    EXPECT_FALSE(fs::exists(basedir_));
}

TEST_F(BuildRunnerTest, ASandboxedBuildNeverRunsWithoutItsSandbox) {
    // No unit to carry the sandbox (no isolation, as without systemd): the
    // build ends exception before its step runs.
    for (auto level : {by::config::Sandbox::standard, by::config::Sandbox::strict}) {
        auto s = spec({"touch " + (tmp_ / "ran").string()});
        s.limits.sandbox = level;
        auto out = run(std::move(s));
        ASSERT_EQ(out.loop, 0);
        EXPECT_EQ(out.result, "exception");
        EXPECT_NE(out.output.find("needs a systemd manager"), std::string::npos) << out.output;
        EXPECT_FALSE(fs::exists(tmp_ / "ran"));
    }
}

TEST_F(BuildRunnerTest, UncreatableDirectoryEndsInException) {
    // A file where the base directory should be.
    std::ofstream(tmp_ / "file") << "x";
    basedir_ = tmp_ / "file";
    auto out = run(spec({"true"}));
    ASSERT_EQ(out.loop, 0);
    EXPECT_EQ(out.result, "exception");
    EXPECT_NE(out.output.find("cannot create build directory"), std::string::npos);
}

TEST_F(BuildRunnerTest, DestroyingTheRunnerKillsTheRunningStep) {
    pid_t shell = -1;
    {
        BuildRunner::Callbacks cb;
        std::string output;
        bool done = false;
        cb.output = [&](std::string_view data) {
            output.append(data);
            if (output == "started\n") {
                sd_event_exit(event_.get(), 0);
            }
        };
        cb.done = [&](const std::string&, int) { done = true; };
        BuildRunner runner(event_.get(), spec({"echo started; sleep 1000"}), std::move(cb));
        ASSERT_EQ(runner.start(), 0);
        ASSERT_EQ(sd_event_loop(event_.get()), 0);
        shell = runner.step_pid();
        ASSERT_GT(shell, 0);
        EXPECT_FALSE(done);
    }
    // The shell was our child; the runner killed and reaped it on the way out.
    EXPECT_EQ(kill(shell, 0), -1);
    EXPECT_EQ(errno, ESRCH);
}

}  // namespace
