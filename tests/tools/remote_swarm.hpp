// remote-client's swarm mode: many remote workers in one process.
#pragma once

#include <string>

namespace remote_client {

// Holds N workers PREFIX1..PREFIXN attached until SIGTERM (remote_client.cpp
// says what it prints and which variables change what it does).
int swarm(const std::string& hostport, int n, const std::string& prefix, const std::string& password);

}  // namespace remote_client
