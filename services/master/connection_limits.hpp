// How many remote connections the master takes, from the file descriptors
// it may open, and who gets one. Pure, so the rules are unit-tested; the
// listener (remote.cpp) applies them.
#pragma once

#include <cstddef>
#include <cstdint>

namespace by::master {

struct ConnectionLimits {
    // Never more connections than this, however many descriptors there are.
    static constexpr size_t max_connections = 16384;
    // Descriptors kept for everything but remote connections: the bus, the
    // loop, the store (SQLite and its WAL), the journal, mail, ReadLog.
    static constexpr uint64_t reserve = 256;
    // Connections from one peer address that have not authenticated yet.
    static constexpr size_t max_unauthenticated_per_address = 256;

    // Descriptors one connection may hold: its TCP socket, both ends of the
    // TLS tunnel's socket pair, and the log of a build it runs.
    static constexpr uint64_t descriptors_per_connection = 4;

    // The connection limit for RLIMIT_NOFILE `nofile`: a quarter of what the
    // reserve leaves (descriptors_per_connection); at most max_connections.
    static size_t for_descriptors(uint64_t nofile);

    enum class Verdict { accept, full, address_full };
    // A new connection from an address that has `unauthenticated_from_address`
    // connections still before authentication, with `open` connections in all.
    static Verdict admit(size_t open, size_t limit, size_t unauthenticated_from_address);
};

}  // namespace by::master
