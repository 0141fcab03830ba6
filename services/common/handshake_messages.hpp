// The messages of org.buildyard.Handshake1 (dbus/org.buildyard.Handshake1.xml,
// buildyard-protocol(7)) read into plain values: the master's side reads the
// worker's calls, the worker's side the master's replies. No I/O and no
// state, whatever carries the messages (tests/fuzz/fuzz_handshake.cpp feeds
// them arbitrary ones); the decisions are in master/handshake.hpp.
#pragma once

#include <cstdint>
#include <string>

#include <systemd/sd-bus.h>

#include "common/bus.hpp"
#include "common/crypto.hpp"

namespace by::handshake {

inline constexpr const char* interface = "org.buildyard.Handshake1";

// Hello(s name, ay worker_nonce, ay channel_binding).
struct Hello {
    std::string name;
    crypto::Bytes worker_nonce;
    crypto::Bytes channel_binding;  // the TLS session's tls-exporter as the worker sees it
};
// Authenticate(ay worker_proof, a{ss} info).
struct Authenticate {
    crypto::Bytes proof;
    bus::StringMap info;
};
// Authenticate's reply: (ay master_proof, o worker, a{ss} settings).
struct Accepted {
    crypto::Bytes master_proof;
    std::string worker_path;
    uint64_t keepalive_interval = 0;  // seconds; 0: none
};

// Each returns a negative errno when the message cannot be read as that
// call or reply, or 0 with `error` set when it can but a value is wrong
// (the master answers InvalidArgument with it), or 1.
int read_hello(sd_bus_message* m, Hello& out, std::string& error);
int read_authenticate(sd_bus_message* m, Authenticate& out, std::string& error);
int read_hello_reply(sd_bus_message* m, crypto::Bytes& master_nonce, std::string& error);
int read_accepted(sd_bus_message* m, Accepted& out, std::string& error);

}  // namespace by::handshake
