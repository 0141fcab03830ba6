// Build logs: where they live, appending a running build's output, and
// ReadLog.
#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.hpp"
#include "master/build_log_path.hpp"
#include "master/build_logs.hpp"
#include "master/build_lifecycle.hpp"

namespace by::master {

void log_build(log::Level level, const Build& b, const std::string& msg, std::string_view message_id) {
    if (message_id.empty()) {
        log::write(level, msg,
                   {{"BUILDYARD_BUILD", std::to_string(b.id)}, {"BUILDYARD_BUILDER", b.builder},
                    {"BUILDYARD_WORKER", b.worker}});
    } else {
        log::write(level, msg,
                   {{"BUILDYARD_BUILD", std::to_string(b.id)}, {"BUILDYARD_BUILDER", b.builder},
                    {"BUILDYARD_WORKER", b.worker}, {"MESSAGE_ID", std::string(message_id)}});
    }
}

namespace {

bool write_log(ActiveBuild& ab, const void* data, size_t size) {
    auto* p = static_cast<const char*>(data);
    while (ab.log && size > 0) {
        ssize_t n = ::write(ab.log.get(), p, size);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return false;
        }
        p += n;
        size -= static_cast<size_t>(n);
    }
    return true;
}

void store_output(ActiveBuild& ab, const void* data, size_t size) {
    if (ab.log_lost > 0) {
        // Output was lost (a full disk): say so in the log, where it was.
        ab.log_lost += size;
        const std::string note = fmt::format("\n[buildyard-masterd: {} bytes of output lost: {}]\n",
                                             ab.log_lost - size, ab.log_lost_error);
        if (!write_log(ab, note.data(), note.size())) {
            return;
        }
        log_build(log::Level::notice, ab.build,
                  fmt::format("the log of build {} takes writes again; {} bytes were lost", ab.build.id,
                              ab.log_lost - size));
        ab.log_lost = 0;
    }
    if (!write_log(ab, data, size)) {
        if (ab.log_lost == 0) {
            ab.log_lost_error = std::strerror(errno);
            log_build(log::Level::err, ab.build,
                      fmt::format("cannot write the log of build {}: {}; output is lost until it can", ab.build.id,
                                  ab.log_lost_error));
        }
        ab.log_lost += size;
    }
}

}  // namespace

bool open_log(ActiveBuild& ab, const std::string& state_directory) {
    ab.log.reset(::open(build_log_path(state_directory, ab.build.id).c_str(),
                        O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640));
    return static_cast<bool>(ab.log);
}

void append_log(ActiveBuild& ab, const void* data, size_t size) {
    // Secrets never reach the file, even cut across two Output calls.
    const std::string masked = ab.mask.feed(std::string_view(static_cast<const char*>(data), size));
    store_output(ab, masked.data(), masked.size());
}

void close_log(ActiveBuild& ab) {
    const std::string tail = ab.mask.finish();
    store_output(ab, tail.data(), tail.size());
    ab.log.reset();
}

void BuildLifecycle::share_log(uint64_t id) {
    // What a database row should hold: a longer log is cut, and says so.
    constexpr size_t most = 64u << 20;
    Fd fd(::open(build_log_path(state_directory_, id).c_str(), O_RDONLY | O_CLOEXEC));
    std::string text;
    char buf[65536];
    ssize_t n = 0;
    while (fd && text.size() < most && (n = ::read(fd.get(), buf, sizeof buf)) > 0) {
        text.append(buf, static_cast<size_t>(n));
    }
    if (text.size() >= most) {
        text.resize(most);
        text += "\n[buildyard-masterd: the rest of this log is on the master that ran the build]\n";
    }
    logs_to_share_.emplace_back(id, std::move(text));
}

void BuildLifecycle::save_shared_logs() {
    if (logs_to_share_.empty()) {
        return;
    }
    if (store_->save_logs(logs_to_share_)) {
        sharing_logs_failed_ = false;
    } else if (!sharing_logs_failed_) {
        sharing_logs_failed_ = true;
        log::warning("{}; the logs of builds {} to {} stay readable on this master only", store_->error(),
                     logs_to_share_.front().first, logs_to_share_.back().first);
    }
    logs_to_share_.clear();
}

Status BuildLifecycle::read_log(uint64_t id, uint64_t offset, uint64_t max, std::string& data) {
    const Build* b = find(id);
    if (!b) {
        return Status::fail(bus::error::NoSuchBuild, "no build " + std::to_string(id));
    }
    const bool mine = builds_.active(id) != nullptr;
    Fd fd(::open(build_log_path(state_directory_, id).c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd && !mine && store_->members() && b->state == BuildState::finished && b->started_at != 0) {
        // Another master ran it (the store is shared).
        auto shared = store_->load_log(id, offset, std::min(max, read_log_max));
        if (!shared && !store_->error().empty()) {
            return Status::fail(bus::error::Internal, "cannot read the log: " + store_->error());
        }
        data = shared.value_or(std::string());
        return Status::ok();
    }
    struct stat st {};
    if (fd && fstat(fd.get(), &st) < 0) {
        return Status::fail(bus::error::Internal, std::string("cannot read the log: ") + std::strerror(errno));
    }
    if (!fd || offset >= static_cast<uint64_t>(st.st_size)) {
        data.clear();  // not started yet, no output at all, or the end of the log (also any offset past it)
        return Status::ok();
    }
    // What is there, not what was asked for: a huge `max` on a small log
    // allocates the log's size only, and one reply stays well under the
    // bus's message size limit.
    const uint64_t size = std::min({max, read_log_max, static_cast<uint64_t>(st.st_size) - offset});
    data.resize(size);
    ssize_t n = pread(fd.get(), data.data(), size, static_cast<off_t>(offset));
    if (n < 0) {
        return Status::fail(bus::error::Internal, std::string("cannot read the log: ") + std::strerror(errno));
    }
    data.resize(static_cast<size_t>(n));
    return Status::ok();
}

}  // namespace by::master
