// What a master hears on pending_channel (pg_store.hpp) when another master
// queues a build: that master's name, the builder, and, when it fits in a
// NOTIFY (PostgreSQL takes less than 8000 bytes), the build's whole row,
// so that the master that pulls it needs no SELECT before its claim.
// Pure: no I/O, for unit tests.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "master/build.hpp"

namespace by::master {

// A NOTIFY payload is less than this many bytes.
inline constexpr size_t pg_notify_payload_max = 7999;

struct PendingNotice {
    std::string master;          // the master that queued it
    std::string builder;
    std::optional<Build> build;  // its row, pending, if the payload held it
};

// "MASTER\nBUILDER" or "MASTER\nBUILDER\nROW", ROW being the JSON array
// of the builds table's columns in pg_build_columns() order, as
// insert_build sends it. nullopt for a payload without a builder; a ROW
// that is not a pending build of BUILDER with an id is left out.
std::optional<PendingNotice> parse_pending_notice(std::string_view payload);

// A Build from the text of the builds table's columns, in
// pg_build_columns() order, as libpq returns them (column(i) for i in
// 0..14).
Build pg_build_from_columns(const std::function<std::string(int)>& column);

}  // namespace by::master
