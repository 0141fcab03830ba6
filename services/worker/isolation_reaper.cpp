// Without a systemd manager: the worker is a child subreaper, so orphans of
// its steps (daemons that setsid() away included) become its children
// instead of init's and can be reaped; a build's processes are found by the
// BUILDYARD_WORKER and BUILDYARD_BUILD_ID in their environment. A process
// that clears its environment and leaves its step's process group escapes
// this; a cgroup does not let it (isolation_systemd.cpp).
//
// The ids of the running builds are recorded in STATE_DIRECTORY/running-builds,
// so that a worker that was killed finds its predecessor's processes when it
// starts again (they are init's children by then).
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <fmt/ranges.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.hpp"
#include "common/raii.hpp"
#include "worker/isolation.hpp"
#include "worker/sweep_rounds.hpp"

namespace by::worker {

namespace {

constexpr uint64_t poll_usec = 10'000;
// Listings of our descendants in one round, at most (see kill_marked()).
constexpr unsigned max_list_passes = 4;
// Processes sent SIGKILL are gone in milliseconds unless stuck in the kernel;
// give up waiting (with a warning) after this long.
constexpr unsigned max_polls = 1000;

// Whether NUL-separated `environ` holds `entry` as a whole item.
bool has_entry(const std::string& environ, const std::string& entry) {
    size_t at = 0;
    while (at < environ.size()) {
        size_t end = environ.find('\0', at);
        if (end == std::string::npos) end = environ.size();
        if (environ.compare(at, end - at, entry) == 0) {
            return true;
        }
        at = end + 1;
    }
    return false;
}

struct Proc {
    pid_t pid;
    pid_t ppid;
    bool zombie;
    bool exiting;  // PF_EXITING: on its way out, its memory (and environment) maybe gone
};

constexpr unsigned long pf_exiting = 0x4;  // include/linux/sched.h

bool read_stat(pid_t pid, Proc& p) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(in, line)) return false;
    // The command sits in parentheses and may hold anything: parse after the last ')'.
    size_t close = line.rfind(')');
    if (close == std::string::npos || close + 4 > line.size()) return false;
    char state = line[close + 2];
    p.pid = pid;
    p.zombie = state == 'Z' || state == 'X';
    // After the state: ppid pgrp session tty_nr tpgid flags.
    const char* at = line.c_str() + close + 4;
    char* end = nullptr;
    p.ppid = static_cast<pid_t>(std::strtol(at, &end, 10));
    for (int field = 0; field < 4 && end && *end; ++field) {
        std::strtol(end, &end, 10);
    }
    p.exiting = end && (std::strtoul(end, nullptr, 10) & pf_exiting) != 0;
    return true;
}

// Whether a process of another live worker's tree is `pid`: one of its
// ancestors is a buildyard-workerd other than us. An earlier run's
// leftovers hang from init (or a subreaper above us), never from a live
// worker; a worker of the same name under another master on this machine
// has builds with the same ids, and they are not ours to kill.
bool under_another_worker(pid_t pid, pid_t self) {
    Proc p{};
    for (unsigned depth = 0; depth < 64 && read_stat(pid, p) && p.ppid > 1; ++depth) {
        pid = p.ppid;
        std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
        std::string comm;
        std::getline(in, comm);
        // The kernel cuts comm at 15 characters.
        if (pid != self && comm.rfind("buildyard-worke", 0) == 0) {
            return true;
        }
    }
    return false;
}

class Subreaper : public Isolation {
public:
    Subreaper(sd_event* event, std::string worker, std::string state_directory)
        : event_(event), worker_(std::move(worker)),
          record_(state_directory.empty() ? std::string() : state_directory + "/running-builds") {
        if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
            log::warning("cannot become a child subreaper: {}", std::strerror(errno));
        }
    }

    const char* kind() const override { return "subreaper"; }
    bool gates_steps() const override { return false; }

    int clean_leftovers(std::function<void()> done) override {
        std::ifstream in(record_);
        std::set<uint64_t> ids;
        for (uint64_t id = 0; in >> id;) ids.insert(id);
        if (ids.empty()) {
            return 1;
        }
        log::notice("killing what the builds {} of an earlier run of this worker left", fmt::join(ids, ", "));
        if (kill_marked(ids, true).alive == 0) {
            save_record();
            return 1;
        }
        Sweep& s = sweeps_[0];
        s.ids = ids;
        s.leftovers = std::move(done);
        arm(0);
        return 0;
    }

    int adopt(uint64_t id, pid_t pid, const config::BuildLimits&, unsigned, Done) override {
        shells_[pid] = id;
        if (running_.insert(id).second) {
            save_record();
        }
        return 1;
    }

    void release(uint64_t id, Released released) override {
        std::erase_if(shells_, [id](const auto& kv) { return kv.second == id; });
        Sweep& s = sweeps_[id];
        s.ids = {id};
        s.released = std::move(released);
        sweep(id);
    }

    void abandon(uint64_t id) override {
        std::erase_if(shells_, [id](const auto& kv) { return kv.second == id; });
        kill_marked({id}, false);
        sweeps_.erase(id);
        forget(id);
    }

private:
    struct Sweep {
        std::set<uint64_t> ids;
        Released released;
        std::function<void()> leftovers;
        SourcePtr timer;
        unsigned polls = 0;
        SweepProgress progress;
    };

    // Every process to look at: all of them for an earlier run's leftovers
    // (init has them by now), else our descendants, which as the subreaper
    // include every orphan of our steps.
    std::vector<pid_t> candidates(bool everywhere) const {
        std::vector<pid_t> out;
        if (everywhere) {
            for (const auto& e : std::filesystem::directory_iterator("/proc", std::filesystem::directory_options::skip_permission_denied)) {
                const std::string name = e.path().filename();
                if (name.find_first_not_of("0123456789") == std::string::npos) out.push_back(std::stoi(name));
            }
            return out;
        }
        std::vector<pid_t> queue{getpid()};
        while (!queue.empty()) {
            const pid_t parent = queue.back();
            queue.pop_back();
            std::error_code ec;
            for (const auto& t : std::filesystem::directory_iterator("/proc/" + std::to_string(parent) + "/task", ec)) {
                std::ifstream in(t.path() / "children");
                for (pid_t child = 0; in >> child;) {
                    out.push_back(child);
                    queue.push_back(child);
                }
            }
        }
        return out;
    }

    // SIGKILL to every process of `ids`; what the round found
    // (sweep_rounds.hpp): a step's `setsid sleep` in the middle of execve()
    // read as unsure. Our descendants are listed again until the list holds
    // nothing new: when a process exits, the kernel moves its children to
    // us, the subreaper, and a list read before that and its own list read
    // after it both miss them (test_orphans once saw a setsid daemon live
    // on so).
    SweepRound kill_marked(const std::set<uint64_t>& ids, bool everywhere) {
        SweepRound round;
        std::set<pid_t> seen;
        for (unsigned pass = 0; pass < max_list_passes; ++pass) {
            bool fresh = false;
            for (pid_t pid : candidates(everywhere)) {
                if (seen.insert(pid).second) {
                    fresh = true;
                    look_at(pid, ids, everywhere, round);
                }
            }
            if (!fresh || everywhere) break;
        }
        return round;
    }

    void look_at(pid_t pid, const std::set<uint64_t>& ids, bool everywhere, SweepRound& round) {
        const pid_t self = getpid();
        if (pid <= 1 || pid == self) return;
        Proc p{};
        if (!read_stat(pid, p)) return;
        if (p.zombie) {
            // Ours to reap unless a runner's child source owns it.
            if (p.ppid == self && !shells_.count(pid)) waitpid(pid, nullptr, WNOHANG);
            return;
        }
        std::ifstream in("/proc/" + std::to_string(pid) + "/environ", std::ios::binary);
        std::string env((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        if (env.empty()) {
            if (!everywhere) {  // everywhere: kernel threads have none
                ++(p.exiting ? round.exiting : round.unsure);
            }
            return;
        }
        if (!has_entry(env, "BUILDYARD_WORKER=" + worker_)) return;
        if (everywhere && under_another_worker(pid, self)) return;
        for (uint64_t id : ids) {
            if (has_entry(env, "BUILDYARD_BUILD_ID=" + std::to_string(id))) {
                ::kill(pid, SIGKILL);
                ++round.alive;
                return;
            }
        }
    }

    // Polls the sweep `key` again soon.
    void arm(uint64_t key) {
        Sweep& s = sweeps_[key];
        ++s.polls;
        if (s.timer) {
            uint64_t now = 0;
            sd_event_now(event_, CLOCK_MONOTONIC, &now);
            sd_event_source_set_time(s.timer.get(), now + poll_usec);
            sd_event_source_set_enabled(s.timer.get(), SD_EVENT_ONESHOT);
            return;
        }
        sd_event_source* t = nullptr;
        if (sd_event_add_time_relative(event_, &t, CLOCK_MONOTONIC, poll_usec, 0, on_poll, this) < 0) {
            s.polls = max_polls;  // no timer: the next round is the last
            return;
        }
        s.timer.reset(t);
        timer_keys_[t] = key;
    }

    // One round: kill and reap; once nothing is left (or after max_polls),
    // the sweep ends and its callback runs.
    void sweep(uint64_t key) {
        Sweep& s = sweeps_[key];
        const SweepRound round = kill_marked(s.ids, key == 0);
        if (sweep_again(s.progress, round) && s.polls < max_polls) {
            arm(key);
            return;
        }
        if (round.alive > 0) {
            log::warning("{} process(es) of build(s) {} would not die", round.alive, fmt::join(s.ids, ", "));
        }
        Sweep done = std::move(s);
        if (done.timer) timer_keys_.erase(done.timer.get());
        sweeps_.erase(key);
        for (uint64_t id : done.ids) forget(id);
        if (done.leftovers) save_record();  // the earlier run's record goes
        if (done.released) done.released(BuildUsage{});
        if (done.leftovers) done.leftovers();
    }

    static int on_poll(sd_event_source* s, uint64_t, void* userdata) {
        auto* self = static_cast<Subreaper*>(userdata);
        auto it = self->timer_keys_.find(s);
        if (it != self->timer_keys_.end()) {
            self->sweep(it->second);
        }
        return 0;
    }

    void forget(uint64_t id) {
        if (running_.erase(id)) {
            save_record();
        }
    }

    // Rewritten whole and renamed into place: a crash leaves the old or the new.
    void save_record() {
        if (record_.empty()) return;
        if (running_.empty()) {
            std::filesystem::remove(record_);
            return;
        }
        const std::string tmp = record_ + ".new";
        {
            std::ofstream out(tmp, std::ios::trunc);
            for (uint64_t id : running_) out << id << "\n";
            if (!out.flush()) {
                log::warning("cannot write {}", tmp);
                return;
            }
        }
        std::error_code ec;
        std::filesystem::rename(tmp, record_, ec);
        if (ec) log::warning("cannot write {}: {}", record_, ec.message());
    }

    sd_event* event_;
    std::string worker_;
    std::string record_;
    std::set<uint64_t> running_;
    std::map<pid_t, uint64_t> shells_;   // step shells a runner reaps itself
    std::map<uint64_t, Sweep> sweeps_;   // key 0: the leftovers of an earlier run
    std::map<sd_event_source*, uint64_t> timer_keys_;
};

}  // namespace

std::unique_ptr<Isolation> make_subreaper(sd_event* event, const std::string& worker,
                                          const std::string& state_directory) {
    return std::make_unique<Subreaper>(event, worker, state_directory);
}

}  // namespace by::worker
