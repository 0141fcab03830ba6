#include "master/connection_census.hpp"

namespace by::master {

namespace {

bool unauthenticated(ConnectionPhase p) { return p == ConnectionPhase::fresh || p == ConnectionPhase::challenged; }

}  // namespace

bool ConnectionCensus::changed(const std::string& address, ConnectionPhase from, ConnectionPhase to) {
    arbitrating_ += to == ConnectionPhase::arbitrating;
    arbitrating_ -= from == ConnectionPhase::arbitrating;
    if (unauthenticated(to) && !unauthenticated(from)) {
        ++unauthenticated_[address];
        return false;
    }
    if (!unauthenticated(from) || unauthenticated(to)) {
        return false;
    }
    if (auto it = unauthenticated_.find(address); it != unauthenticated_.end() && --it->second == 0) {
        unauthenticated_.erase(it);
    }
    return ++handshakes_ended_ >= storm && unauthenticated_.empty();
}

size_t ConnectionCensus::unauthenticated_from(const std::string& address) const {
    auto it = unauthenticated_.find(address);
    return it == unauthenticated_.end() ? 0 : it->second;
}

}  // namespace by::master
