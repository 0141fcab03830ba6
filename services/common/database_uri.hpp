// `[master] database`: what a value may be, checked when the config loads.
// libpq parses the URI itself when the master connects; this only refuses
// what must never be in master.ini (a password) and what is not a URI.
#pragma once

#include <optional>
#include <string>

namespace by::config {

// Why `value` is not a database (nullopt: it is). Accepted: "sqlite", and
// a libpq connection URI (postgresql:// or postgres://) without a password
// in its user part or its parameters.
std::optional<std::string> database_uri_problem(const std::string& value);

}  // namespace by::config
