// How the stores (SQLite and PostgreSQL) write a build's maps and a mail's
// recipients into a column: JSON text, read back leniently (a value of
// the wrong type is left out, never thrown on).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/build_limits.hpp"

namespace by::master::store_json {

std::string from_map(const std::map<std::string, std::string>& m);
std::map<std::string, std::string> to_map(const std::string& s);
std::string from_list(const std::vector<std::string>& v);
std::vector<std::string> to_list(const std::string& s);
std::string from_usage(const BuildUsage& u);
BuildUsage to_usage(const std::string& s);

}  // namespace by::master::store_json
