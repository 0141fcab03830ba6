// A running build's log: state_directory/logs/ID (build_log_path.hpp),
// written as its output comes, secrets masked (SecretMask). Output that
// cannot be written (a full disk) is counted, logged once, and noted in the
// log when writes work again.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "common/log.hpp"
#include "master/build_queue.hpp"

namespace by::master {

// Logs `msg` with the build's journal fields (BUILDYARD_BUILD, _BUILDER, _WORKER).
void log_build(log::Level level, const Build& b, const std::string& msg, std::string_view message_id = {});

// Opens the log of a build that starts; false (errno set) if it cannot.
bool open_log(ActiveBuild& ab, const std::string& state_directory);
void append_log(ActiveBuild& ab, const void* data, size_t size);
// Writes what the mask held back and closes the file.
void close_log(ActiveBuild& ab);

}  // namespace by::master
