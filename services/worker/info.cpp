#include "worker/info.hpp"

#include <fstream>

#include <limits.h>
#include <sched.h>
#include <unistd.h>

#include "version.hpp"

namespace by::worker {

namespace {

// An os-release value: unquoted, or in single or double quotes; inside
// double quotes (and unquoted) a backslash escapes the next character.
std::string unquote(std::string_view v) {
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t' || v.back() == '\r')) {
        v.remove_suffix(1);
    }
    std::string out;
    char quote = 0;
    for (size_t i = 0; i < v.size(); ++i) {
        char c = v[i];
        if (quote == 0 && (c == '"' || c == '\'')) {
            quote = c;
        } else if (quote != 0 && c == quote) {
            quote = 0;
        } else if (c == '\\' && quote != '\'' && i + 1 < v.size()) {
            out += v[++i];
        } else {
            out += c;
        }
    }
    return out;
}

}  // namespace

std::optional<std::string> read_pretty_name(const std::filesystem::path& os_release) {
    std::ifstream in(os_release);
    if (!in) {
        return std::nullopt;
    }
    std::optional<std::string> found;
    std::string line;
    while (std::getline(in, line)) {
        std::string_view l = line;
        while (!l.empty() && (l.front() == ' ' || l.front() == '\t')) {
            l.remove_prefix(1);
        }
        if (l.empty() || l.front() == '#') {
            continue;
        }
        size_t eq = l.find('=');
        if (eq == std::string_view::npos || l.substr(0, eq) != "PRETTY_NAME") {
            continue;
        }
        found = unquote(l.substr(eq + 1));  // a later assignment wins, as in the shell
    }
    return found;
}

std::string os_pretty_name() {
    for (const char* file : {"/etc/os-release", "/usr/lib/os-release"}) {
        if (auto name = read_pretty_name(file); name && !name->empty()) {
            return *name;
        }
    }
    return "Linux";
}

unsigned cpu_count() {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) {
            return static_cast<unsigned>(n);
        }
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? static_cast<unsigned>(n) : 1u;
}

bus::StringMap host_info(const config::WorkerSelf& self) {
    char host[HOST_NAME_MAX + 1] = {};
    if (gethostname(host, sizeof host - 1) < 0) {
        host[0] = '\0';
    }
    return {
        {"host", host},
        {"os", os_pretty_name()},
        {"cpus", std::to_string(cpu_count())},
        {"version", BUILDYARD_VERSION},
        {"admin", self.admin},
        {"basedir", self.basedir},
    };
}

}  // namespace by::worker
