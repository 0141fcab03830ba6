// Logging: to the journal with structured fields when stderr is connected to
// it (JOURNAL_STREAM), else to stderr with a level prefix.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace by::log {

enum class Level { err = 3, warning = 4, notice = 5, info = 6, debug = 7 };

struct Field {
    std::string_view key;  // journal field name, e.g. "BUILDYARD_WORKER"
    std::string value;
};

// Catalogue ids for the events an admin searches for (journalctl MESSAGE_ID=).
namespace id {
inline constexpr std::string_view worker_attached = "6f0b3c1e5a7d4e2b9c8a1d2e3f405161";
inline constexpr std::string_view worker_detached = "6f0b3c1e5a7d4e2b9c8a1d2e3f405162";
inline constexpr std::string_view worker_missing = "6f0b3c1e5a7d4e2b9c8a1d2e3f405163";
inline constexpr std::string_view auth_failed = "6f0b3c1e5a7d4e2b9c8a1d2e3f405164";
inline constexpr std::string_view build_finished = "6f0b3c1e5a7d4e2b9c8a1d2e3f405165";
inline constexpr std::string_view leak_reaped = "6f0b3c1e5a7d4e2b9c8a1d2e3f405166";
inline constexpr std::string_view instance_started = "6f0b3c1e5a7d4e2b9c8a1d2e3f405167";
inline constexpr std::string_view instance_stopped = "6f0b3c1e5a7d4e2b9c8a1d2e3f405168";
}  // namespace id

// Call once from main. Decides between journal and stderr.
void init(std::string_view identifier);
void set_max_level(Level level);

void write(Level level, std::string_view message, std::initializer_list<Field> fields = {});

template <class... Args>
void error(fmt::format_string<Args...> f, Args&&... args) {
    write(Level::err, fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void warning(fmt::format_string<Args...> f, Args&&... args) {
    write(Level::warning, fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void notice(fmt::format_string<Args...> f, Args&&... args) {
    write(Level::notice, fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void info(fmt::format_string<Args...> f, Args&&... args) {
    write(Level::info, fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void debug(fmt::format_string<Args...> f, Args&&... args) {
    write(Level::debug, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace by::log
