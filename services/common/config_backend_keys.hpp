// Checkers that more than one latent backend's keys share (ec2.*,
// openstack.*): each returns a problem to report, or nothing and the value.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace by::config::detail {

std::string quoted(const std::string& v);

// A size in GiB from 1 to max_gib (a volume to boot from).
std::optional<std::string> parse_size_gib(const std::string& v, uint64_t max_gib, uint64_t& out);

// The name of a systemd credential that holds a backend's secret.
std::optional<std::string> parse_credential_name(const std::string& v, std::string& out);

}  // namespace by::config::detail
