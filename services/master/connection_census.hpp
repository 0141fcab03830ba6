// How many remote connections are in which phase, kept up to date as phases
// change, so that an accept (the per-address cap) or a detach (anyone
// waiting on that worker?) costs the same however many connections are
// open. Pure: Remote (remote.cpp) reports the changes and acts on the
// answers.
#pragma once

#include <cstddef>
#include <string>
#include <unordered_map>

namespace by::master {

// Where a remote connection is (Remote::Connection::Phase).
enum class ConnectionPhase {
    fresh,        // connected; Hello expected
    challenged,   // Hello answered; Authenticate expected
    arbitrating,  // proof good, waiting for the worker's old link to answer a ping
    attached,
    closed,       // also: not yet made, and gone
};

class ConnectionCensus {
public:
    // Handshakes that make a storm worth trimming the heap after.
    static constexpr size_t storm = 64;

    // A connection from `address` went from `from` to `to`. True when this
    // ended a storm: no connection is mid-handshake any more, and at least
    // `storm` handshakes ended since storm_handled().
    bool changed(const std::string& address, ConnectionPhase from, ConnectionPhase to);
    void storm_handled() { handshakes_ended_ = 0; }

    // Connections from `address` that have not authenticated yet.
    size_t unauthenticated_from(const std::string& address) const;
    bool any_unauthenticated() const { return !unauthenticated_.empty(); }
    size_t arbitrating() const { return arbitrating_; }

private:
    std::unordered_map<std::string, size_t> unauthenticated_;  // per address
    size_t arbitrating_ = 0;
    size_t handshakes_ended_ = 0;
};

}  // namespace by::master
