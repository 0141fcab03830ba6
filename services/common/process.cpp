#include "common/process.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <string_view>
#include <vector>

#include <fcntl.h>
#include <spawn.h>
#include <unistd.h>

extern char** environ;

namespace by::process {

namespace {

// Where a gated shell finds its gate (spawn_shell).
constexpr int gate_child_fd = 3;

struct SpawnAttr {
    posix_spawnattr_t attr;
    SpawnAttr() { posix_spawnattr_init(&attr); }
    ~SpawnAttr() { posix_spawnattr_destroy(&attr); }
};

struct FileActions {
    posix_spawn_file_actions_t fa;
    FileActions() { posix_spawn_file_actions_init(&fa); }
    ~FileActions() { posix_spawn_file_actions_destroy(&fa); }
};

// dash's builtins and reserved words: `exec` would look for a program of
// that name instead.
bool shell_word(std::string_view w) {
    static constexpr std::string_view words[] = {
        "!",     ".",        ":",     "[",       "[[",     "]]",      "alias",  "bg",     "break",   "case",
        "cd",    "chdir",    "command", "continue", "do",  "done",    "echo",   "elif",   "else",    "esac",
        "eval",  "exec",     "exit",  "export",  "false",  "fc",      "fg",     "fi",     "for",     "function",
        "getopts", "hash",   "if",    "in",      "jobid",  "jobs",    "kill",   "local",  "printf",  "pwd",
        "read",  "readonly", "return", "select", "set",    "shift",   "source", "test",   "then",    "time",
        "times", "trap",     "true",  "type",    "ulimit", "umask",   "unalias", "unset", "until",   "wait",
        "while", "{",        "}",
    };
    return std::find(std::begin(words), std::end(words), w) != std::end(words);
}

}  // namespace

// spawn(), plus `gate_fd` as the child's fd 3 if not -1.
static int spawn(char* const argv[], int output_fd, int gate_fd, const SpawnOptions& options, pid_t& pid);

std::string shell_command(const std::string& command) {
    // Letters, digits, blanks and punctuation the shell gives no meaning to.
    const bool plain = !command.empty() && std::all_of(command.begin(), command.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || (c != '\0' && std::strchr(" _./:,+@%=-", c) != nullptr);
    });
    if (!plain) {
        return command;
    }
    const size_t start = command.find_first_not_of(' ');
    if (start == std::string::npos) {
        return command;
    }
    const size_t end = command.find(' ', start);
    std::string_view first(command.data() + start, (end == std::string::npos ? command.size() : end) - start);
    if (first.find('=') != std::string_view::npos || shell_word(first)) {
        return command;
    }
    return "exec " + command;
}

int spawn(char* const argv[], int output_fd, const SpawnOptions& options, pid_t& pid) {
    return spawn(argv, output_fd, -1, options, pid);
}

static int spawn(char* const argv[], int output_fd, int gate_fd, const SpawnOptions& options, pid_t& pid) {
    SpawnAttr attr;
    sigset_t empty;
    sigemptyset(&empty);
    sigset_t defaults;
    sigfillset(&defaults);
    sigdelset(&defaults, SIGKILL);
    sigdelset(&defaults, SIGSTOP);
    posix_spawnattr_setsigmask(&attr.attr, &empty);
    posix_spawnattr_setsigdefault(&attr.attr, &defaults);
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_USEVFORK;
    if (options.new_group) {
        posix_spawnattr_setpgroup(&attr.attr, 0);
        flags |= POSIX_SPAWN_SETPGROUP;
    }
    posix_spawnattr_setflags(&attr.attr, flags);

    FileActions fa;
    posix_spawn_file_actions_addopen(&fa.fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa.fa, output_fd, STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&fa.fa, output_fd, STDERR_FILENO);
    if (gate_fd >= 0) {
        posix_spawn_file_actions_adddup2(&fa.fa, gate_fd, gate_child_fd);
    }
    if (!options.cwd.empty()) {
        posix_spawn_file_actions_addchdir_np(&fa.fa, options.cwd.c_str());
    }
    char* const* envp = options.envp ? options.envp : environ;
    const int r = options.search_path ? posix_spawnp(&pid, argv[0], &fa.fa, &attr.attr, argv, envp)
                                      : posix_spawn(&pid, argv[0], &fa.fa, &attr.attr, argv, envp);
    return -r;
}

std::vector<std::string> environment_with(const std::map<std::string, std::string>& extra_env) {
    std::vector<std::string> env;
    for (char** e = environ; e && *e; ++e) {
        const char* eq = std::strchr(*e, '=');
        std::string key = eq ? std::string(*e, static_cast<size_t>(eq - *e)) : std::string(*e);
        if (!extra_env.count(key)) {
            env.emplace_back(*e);
        }
    }
    for (const auto& [k, v] : extra_env) {
        env.push_back(k + "=" + v);
    }
    return env;
}

int spawn_shell(const std::string& command, const std::string& cwd,
                const std::map<std::string, std::string>& extra_env, Spawned& out, bool gated) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) {
        return -errno;
    }
    Fd rd(fds[0]);
    Fd wr(fds[1]);
    Fd gate_rd, gate_wr;
    if (gated) {
        if (pipe2(fds, O_CLOEXEC) < 0) {
            return -errno;
        }
        gate_rd = Fd(fds[0]);
        gate_wr = Fd(fds[1]);
    }

    std::vector<std::string> env_store = environment_with(extra_env);
    std::vector<char*> envp;
    envp.reserve(env_store.size() + 1);
    for (auto& s : env_store) {
        envp.push_back(s.data());
    }
    envp.push_back(nullptr);

    std::string sh = "/bin/sh";
    std::string dash_c = "-c";
    // The gate is read by the shell itself: no extra process, and the step's
    // text follows on the same line, so its own line numbers stay.
    std::string cmd = gated ? "read _ <&3 || exit 125; exec 3<&-; " + shell_command(command) : shell_command(command);
    char* argv[] = {sh.data(), dash_c.data(), cmd.data(), nullptr};
    SpawnOptions options;
    options.cwd = cwd;
    options.new_group = true;
    options.envp = envp.data();
    pid_t pid = -1;
    if (int r = spawn(argv, wr.get(), gated ? gate_rd.get() : -1, options, pid); r < 0) {
        return r;
    }
    int flags = fcntl(rd.get(), F_GETFL);
    fcntl(rd.get(), F_SETFL, flags | O_NONBLOCK);
    out.pid = pid;
    out.output = std::move(rd);
    out.gate = std::move(gate_wr);
    return 0;
}

}  // namespace by::process
