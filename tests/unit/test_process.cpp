// Steps run through /bin/sh -c; plain commands are exec'd by the shell.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/process.hpp"

using namespace by;

namespace {

// Runs `command` with spawn_shell; returns its output and sets `status`
// (the wait status) and `pid` (the spawned pid). Bounded to 10 s.
std::string run(const std::string& command, int& status, pid_t& pid) {
    process::Spawned s;
    EXPECT_EQ(process::spawn_shell(command, "/", {{"BUILDYARD_TEST", "yes"}}, s), 0);
    pid = s.pid;
    std::string out;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
        pollfd p{s.output.get(), POLLIN, 0};
        poll(&p, 1, 100);
        char buf[4096];
        ssize_t n = read(s.output.get(), buf, sizeof buf);
        if (n == 0) {
            break;
        }
        if (n > 0) {
            out.append(buf, static_cast<size_t>(n));
        }
    }
    EXPECT_EQ(waitpid(s.pid, &status, 0), s.pid);
    return out;
}

}  // namespace

TEST(ShellCommand, PlainProgramCommandsAreExeced) {
    EXPECT_EQ(process::shell_command("/usr/bin/make -j2 all"), "exec /usr/bin/make -j2 all");
    EXPECT_EQ(process::shell_command("make CC=gcc"), "exec make CC=gcc");
    EXPECT_EQ(process::shell_command("./configure --prefix=/usr"), "exec ./configure --prefix=/usr");
}

TEST(ShellCommand, AnythingTheShellInterpretsIsLeftAlone) {
    for (const char* c : {"make && make check", "echo $HOME", "ls *.c", "cat < in", "a | b", "a; b", "a\nb",
                          "echo 'x'", "echo \"x\"", "cd /tmp", "exit 3", "true", "set -e", "FOO=1 make",
                          "if", "time make", "~/bin/x", "a\tb", "x #comment", "echo `date`", "", "   "}) {
        EXPECT_EQ(process::shell_command(c), c) << c;
    }
}

TEST(ShellCommand, AnExecedStepIsTheSpawnedProcess) {
    int status = 0;
    pid_t pid = -1;
    std::string out = run("/bin/cat /proc/self/stat", status, pid);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
    // Field 1 of /proc/self/stat is cat's pid: no shell in between.
    EXPECT_EQ(out.substr(0, out.find(' ')), std::to_string(pid));
}

TEST(ShellCommand, ExitStatusAndEnvironmentAreKept) {
    int status = 0;
    pid_t pid = -1;
    EXPECT_EQ(run("/usr/bin/printenv BUILDYARD_TEST", status, pid), "yes\n");
    EXPECT_EQ(WEXITSTATUS(status), 0);
    run("/bin/false", status, pid);
    EXPECT_EQ(WEXITSTATUS(status), 1);
    std::string out = run("no-such-program-here --flag", status, pid);
    EXPECT_EQ(WEXITSTATUS(status), 127);
    EXPECT_NE(out.find("not found"), std::string::npos) << out;
    run("exit 3", status, pid);
    EXPECT_EQ(WEXITSTATUS(status), 3);
}
