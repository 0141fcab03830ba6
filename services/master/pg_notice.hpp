// What a master hears on pending_channel and pending_row_channel
// (pg_store.hpp) when another master queues a build: that master's name,
// the builder, and, on pending_row_channel, the build's whole row (when it
// fits in a NOTIFY: PostgreSQL takes less than 8000 bytes), so that the
// master that pulls it needs no SELECT before its claim.
// Pure: no I/O, for unit tests.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "master/build.hpp"

namespace by::master {

// The longest NOTIFY payload, in bytes (PostgreSQL takes less than 8000).
inline constexpr size_t pg_notify_payload_max = 7999;

struct PendingNotice {
    std::string master;          // the master that queued it
    std::string builder;
    std::optional<Build> build;  // its row, pending, if the payload held it
};

// "MASTER\nBUILDER" or "MASTER\nBUILDER\nROW", ROW being the JSON array
// of the builds table's columns in pg_build_columns() order, as
// insert_build sends it. nullopt for a payload without a builder; a ROW
// that is not a pending build of BUILDER with an id, or whose columns are
// not of their types (a number, or a text), is left out.
std::optional<PendingNotice> parse_pending_notice(std::string_view payload);

// A Build from the text of the builds table's columns, in
// pg_build_columns() order, as libpq returns them (column(i) for i in
// 0..14).
Build pg_build_from_columns(const std::function<std::string(int)>& column);

}  // namespace by::master
