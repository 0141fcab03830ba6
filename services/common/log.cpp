#include "common/log.hpp"

#include <cstdio>
#include <cstdlib>
#include <vector>

#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

namespace by::log {
namespace {

bool to_journal = false;
Level max_level = Level::info;
std::string ident = "buildyard";

// systemd sets JOURNAL_STREAM to "DEV:INO" of the stream it connected to
// stderr; only when stderr is still that stream are we talking to the journal.
bool stderr_is_journal() {
    const char* e = std::getenv("JOURNAL_STREAM");
    if (!e) {
        return false;
    }
    unsigned long long dev = 0, ino = 0;
    if (std::sscanf(e, "%llu:%llu", &dev, &ino) != 2) {
        return false;
    }
    struct stat st {};
    if (fstat(STDERR_FILENO, &st) < 0) {
        return false;
    }
    return st.st_dev == dev && st.st_ino == ino;
}

const char* prefix(Level l) {
    switch (l) {
    case Level::err: return "error";
    case Level::warning: return "warning";
    case Level::notice: return "notice";
    case Level::info: return "info";
    case Level::debug: return "debug";
    }
    return "?";
}

}  // namespace

void init(std::string_view identifier) {
    ident = identifier;
    to_journal = stderr_is_journal();
    if (const char* lvl = std::getenv("BUILDYARD_LOG_LEVEL")) {
        std::string_view v = lvl;
        if (v == "debug") max_level = Level::debug;
        else if (v == "notice") max_level = Level::notice;
        else if (v == "warning") max_level = Level::warning;
        else if (v == "err" || v == "error") max_level = Level::err;
    }
}

void set_max_level(Level level) { max_level = level; }

void write(Level level, std::string_view message, std::initializer_list<Field> fields) {
    if (static_cast<int>(level) > static_cast<int>(max_level)) {
        return;
    }
    if (!to_journal) {
        std::string line = fmt::format("{}[{}]: {}: {}\n", ident, getpid(), prefix(level), message);
        // A log line that cannot be written has nowhere else to go. Keep the
        // result: with _FORTIFY_SOURCE (Debian's build flags) write() is
        // warn_unused_result, and a cast to void does not silence that.
        [[maybe_unused]] ssize_t written = ::write(STDERR_FILENO, line.data(), line.size());
        return;
    }
    std::vector<std::string> owned;
    owned.reserve(fields.size() + 3);
    owned.push_back(fmt::format("MESSAGE={}", message));
    owned.push_back(fmt::format("PRIORITY={}", static_cast<int>(level)));
    owned.push_back(fmt::format("SYSLOG_IDENTIFIER={}", ident));
    for (const auto& f : fields) {
        owned.push_back(fmt::format("{}={}", f.key, f.value));
    }
    std::vector<iovec> iov;
    iov.reserve(owned.size());
    for (auto& s : owned) {
        iov.push_back(iovec{s.data(), s.size()});
    }
    sd_journal_sendv(iov.data(), static_cast<int>(iov.size()));
}

}  // namespace by::log
