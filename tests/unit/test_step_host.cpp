// The step host of sandboxed builds (worker/step_host.hpp), driven over a
// real socket pair from a forked child, as systemd would start it: the
// worker's side of the protocol, real steps, signals and the end of file.
#include <cerrno>
#include <csignal>
#include <string>

#include <gtest/gtest.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/raii.hpp"
#include "temp_dir.hpp"
#include "worker/step_host.hpp"

namespace sh = by::worker::step_host;

namespace {

class StepHostTest : public ::testing::Test {
protected:
    void SetUp() override {
        // Steps the host's group kill orphans become ours, so that a test
        // can reap them and see them gone.
        ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
        int pair[2];
        ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
        worker_.reset(pair[0]);
        host_ = fork();
        ASSERT_GE(host_, 0);
        if (host_ == 0) {
            ::close(pair[0]);
            _exit(sh::run_host(pair[1]));
        }
        ::close(pair[1]);
        timeval timeout{10, 0};
        setsockopt(worker_.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    }

    void TearDown() override {
        if (host_ > 0) {
            kill(host_, SIGKILL);
            waitpid(host_, nullptr, 0);
        }
    }

    sh::Header receive() {
        sh::Header h{};
        size_t got = 0;
        while (got < sizeof h) {
            ssize_t n = ::read(worker_.get(), reinterpret_cast<char*>(&h) + got, sizeof h - got);
            if (n <= 0) {
                ADD_FAILURE() << "the host sent nothing (" << n << ")";
                return {};
            }
            got += static_cast<size_t>(n);
        }
        return h;
    }

    // Sends a run; returns the read end of its output pipe.
    by::Fd run(const std::string& cwd, const std::string& command, std::vector<std::string> env = {"PATH=/usr/bin:/bin"}) {
        int p[2];
        EXPECT_EQ(pipe2(p, O_CLOEXEC), 0);
        by::Fd read_end(p[0]), write_end(p[1]);
        EXPECT_EQ(sh::send_message(worker_.get(), sh::Kind::run, 0, 0, sh::encode_run({cwd, command, env}),
                                   write_end.get()),
                  0);
        return read_end;
    }

    static std::string read_all(int fd) {
        std::string out;
        char buf[4096];
        ssize_t n;
        while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
        return out;
    }

    static std::string read_line(int fd) {
        std::string out;
        char c;
        while (::read(fd, &c, 1) == 1 && c != '\n') out.push_back(c);
        return out;
    }

    int host_exit() {
        int status = -1;
        EXPECT_EQ(waitpid(host_, &status, 0), host_);
        host_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }

    by::Fd worker_;
    pid_t host_ = -1;
    TempDir dir_{"buildyard-step-host"};
};

TEST_F(StepHostTest, SaysWhoItIsThenRunsStepsInOrder) {
    auto hello = receive();
    EXPECT_EQ(hello.kind, static_cast<uint32_t>(sh::Kind::hello));
    EXPECT_EQ(hello.a, static_cast<int32_t>(getuid()));
    EXPECT_EQ(hello.b, static_cast<int32_t>(getgid()));

    auto out = run(dir_.path(), "echo out; echo err >&2; pwd; echo \"$FOO\"; exit 3",
                   {"PATH=/usr/bin:/bin", "FOO=bar baz"});
    EXPECT_EQ(read_all(out.get()), "out\nerr\n" + dir_.path() + "\nbar baz\n");
    auto done = receive();
    EXPECT_EQ(done.kind, static_cast<uint32_t>(sh::Kind::exited));
    EXPECT_EQ(done.a, 3);

    out = run(dir_.path(), "test -f ./left || echo first > left; cat left");
    EXPECT_EQ(read_all(out.get()), "first\n");
    EXPECT_EQ(receive().a, 0);

    worker_.reset();  // the worker is gone: so is the host, cleanly
    EXPECT_EQ(host_exit(), 0);
}

TEST_F(StepHostTest, ASignalReachesTheStepsGroupAndNothingOutlivesTheStep) {
    receive();
    auto out = run(dir_.path(), "sleep 300 & echo $!; wait");
    const pid_t daemon = std::stoi(read_line(out.get()));
    ASSERT_GT(daemon, 0);
    ASSERT_EQ(sh::send_message(worker_.get(), sh::Kind::signal, SIGTERM, 0), 0);
    auto done = receive();
    EXPECT_EQ(done.kind, static_cast<uint32_t>(sh::Kind::exited));
    EXPECT_EQ(done.a, 128 + SIGTERM);
    // The background sleep was killed with its group and is ours to reap.
    bool gone = false;
    for (int i = 0; i < 100 && !gone; ++i) {
        waitpid(daemon, nullptr, WNOHANG);
        gone = kill(daemon, 0) < 0 && errno == ESRCH;
        if (!gone) usleep(50000);
    }
    EXPECT_TRUE(gone) << "pid " << daemon << " outlived its step";
}

TEST_F(StepHostTest, AStepThatCannotStartIsReportedWithItsErrno) {
    receive();
    auto out = run(dir_.path("missing"), "true");
    auto failed = receive();
    EXPECT_EQ(failed.kind, static_cast<uint32_t>(sh::Kind::failed));
    EXPECT_EQ(failed.a, ENOENT);
    // The host serves the next step.
    out = run(dir_.path(), "echo again");
    EXPECT_EQ(read_all(out.get()), "again\n");
    EXPECT_EQ(receive().a, 0);
}

TEST_F(StepHostTest, AMessageItDoesNotKnowEndsItAndItsStep) {
    receive();
    auto out = run(dir_.path(), "exec sleep 300");
    ASSERT_EQ(sh::send_message(worker_.get(), static_cast<sh::Kind>(99), 0, 0), 0);
    EXPECT_EQ(host_exit(), 2);
    // Its step went with it: the pipe's writer is gone.
    pollfd p{out.get(), POLLIN, 0};
    ASSERT_EQ(poll(&p, 1, 10000), 1);
    EXPECT_EQ(read_all(out.get()), "");
}

TEST(StepHostProtocol, RunsRoundTripAndMalformedOnesAreRefused) {
    sh::Run run{"/srv/b", "make -j2", {"A=1", "B=x=y", "EMPTY="}};
    auto back = sh::decode_run(sh::encode_run(run));
    ASSERT_TRUE(back);
    EXPECT_EQ(back->cwd, run.cwd);
    EXPECT_EQ(back->command, run.command);
    EXPECT_EQ(back->environment, run.environment);
    EXPECT_FALSE(sh::decode_run(""));
    EXPECT_FALSE(sh::decode_run(std::string("/srv\0", 5)));                    // no command
    EXPECT_FALSE(sh::decode_run(std::string("/srv\0true", 9)));                // unterminated
    EXPECT_FALSE(sh::decode_run(std::string("/srv\0true\0NOEQUALS\0", 19)));   // not KEY=VALUE
}

}  // namespace
