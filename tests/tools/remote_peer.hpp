// What remote-client's modes share: the way to the master's TCP port (with
// TLS unless BUILDYARD_TLS=no) and an sd-bus on the far end of the tunnel.
#pragma once

#include <functional>
#include <string>

#include "common/raii.hpp"
#include "common/reactor.hpp"
#include "common/tls.hpp"

namespace remote_client {

inline constexpr const char* hs = "org.buildyard.Handshake1";

// The TLS context every connection shares; null with BUILDYARD_TLS=no.
const by::tls::SharedCtx& client_context();

// A connected TCP socket to HOST:PORT, non-blocking. Where from:
// REMOTE_CLIENT_BIND=ADDRESS, or REMOTE_CLIENT_SOURCES=N for 127.0.0.1 to
// 127.0.0.N in turn.
int tcp_connect(const std::string& hostport, by::Fd& out);

// sd-bus on the end of a tunnel, driven by `driver` from `reactor` when
// given (else by whoever calls it synchronously).
int open_bus(by::Fd bus_fd, by::PeerBusPtr& out, by::Reactor* reactor = nullptr, by::ReactorBus* driver = nullptr,
             std::function<void(int)> failed = nullptr);

// CLOCK_MONOTONIC, in seconds.
double now_s();

}  // namespace remote_client
