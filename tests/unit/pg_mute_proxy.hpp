// A network fault between a store and the test's PostgreSQL server: a
// Unix-socket relay, named as libpq names a server's socket
// (DIR/.s.PGSQL.PORT), that passes every byte both ways until it is
// muted; muted, it still passes what the client sends, so the server runs
// it, but drops what the server answers. That is a reply lost after the
// server committed: the client waits until its deadline, then hangs up.
#pragma once

#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "temp_dir.hpp"

class PgMuteProxy {
public:
    // `server_socket`: the path of the server's socket.
    PgMuteProxy(std::string server_socket, const std::string& port) : server_(std::move(server_socket)) {
        listener_ = listen_at(dir_.path() + "/.s.PGSQL." + port);
        stop_ = eventfd(0, EFD_CLOEXEC);
        relay_ = std::thread([this] { run(); });
    }
    ~PgMuteProxy() {
        const uint64_t one = 1;
        EXPECT_EQ(write(stop_, &one, sizeof one), static_cast<ssize_t>(sizeof one));
        relay_.join();
        for (auto [client, server] : pairs_) {
            close(client);
            close(server);
        }
        close(listener_);
        close(stop_);
    }
    PgMuteProxy(const PgMuteProxy&) = delete;
    PgMuteProxy& operator=(const PgMuteProxy&) = delete;

    // The directory to give libpq as host=.
    std::string directory() const { return dir_.path(); }
    void mute(bool on) { muted_ = on; }

private:
    static int unix_socket(const std::string& path, bool listen_here) {
        const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        EXPECT_LT(path.size(), sizeof a.sun_path) << path;
        path.copy(a.sun_path, sizeof a.sun_path - 1);
        const auto* sa = reinterpret_cast<const sockaddr*>(&a);
        const bool ok = listen_here ? bind(fd, sa, sizeof a) == 0 && listen(fd, 8) == 0
                                    : connect(fd, sa, sizeof a) == 0;
        EXPECT_TRUE(ok) << path << ": " << std::strerror(errno);
        return fd;
    }
    static int listen_at(const std::string& path) { return unix_socket(path, true); }

    // Passes what `from` has to `to` (or drops it); false at the end of the stream.
    static bool pass(int from, int to, bool drop) {
        char buf[65536];
        const ssize_t n = read(from, buf, sizeof buf);
        if (n <= 0) {
            return false;
        }
        for (ssize_t done = 0; !drop && done < n;) {
            const ssize_t w = write(to, buf + done, static_cast<size_t>(n - done));
            if (w <= 0) {
                return false;
            }
            done += w;
        }
        return true;
    }

    void run() {
        for (;;) {
            const size_t polled = pairs_.size();
            std::vector<pollfd> fds{{stop_, POLLIN, 0}, {listener_, POLLIN, 0}};
            for (auto [client, server] : pairs_) {
                fds.push_back({client, POLLIN, 0});
                fds.push_back({server, POLLIN, 0});
            }
            if (poll(fds.data(), fds.size(), 10'000) <= 0 || fds[0].revents) {
                return;  // stopped (or nothing for 10 s: a test that hangs ends)
            }
            if (fds[1].revents) {
                const int client = accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
                pairs_.emplace_back(client, unix_socket(server_, false));
            }
            for (size_t i = 0; i < polled; ++i) {
                const auto [client, server] = pairs_[i];
                const short from_client = fds[2 + 2 * i].revents, from_server = fds[3 + 2 * i].revents;
                const bool open = (!from_client || pass(client, server, false)) &&
                                  (!from_server || pass(server, client, muted_));
                if (!open) {
                    close(client);
                    close(server);
                    pairs_[i] = {-1, -1};
                }
            }
            std::erase(pairs_, std::pair<int, int>{-1, -1});
        }
    }

    TempDir dir_;
    std::string server_;
    int listener_ = -1;
    int stop_ = -1;
    std::atomic<bool> muted_{false};
    std::vector<std::pair<int, int>> pairs_;  // touched by the relay only, until it stops
    std::thread relay_;
};
