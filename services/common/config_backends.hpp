// The keys of each latent backend (`libvirt.*`, `docker.*`, `ec2.*`,
// `openstack.*`), checked when the config is loaded so a mistake is a
// FILE:LINE error in the master, latentd and the generator alike. One file per backend: config_backend_NAME.cpp.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace by::config {

// Whether `backend` names a backend this version has.
bool known_backend(const std::string& backend);

// Checks one key of a latent worker, given without its "BACKEND." prefix
// ("uri" for "libvirt.uri"). Returns what is wrong, or nothing.
std::optional<std::string> check_backend_key(const std::string& backend, const std::string& key,
                                             const std::string& value);

// Checks the worker's backend keys as a whole (required keys, contradictions).
// `options` maps keys without the prefix to values. Returns one message per
// problem; each names the key it is about, if any, as {key, message}.
std::vector<std::pair<std::string, std::string>> check_backend_section(
    const std::string& backend, const std::map<std::string, std::string>& options);

// Backend defaults that differ from the general ones: Docker starts one fresh
// container per build, so its build_wait_timeout defaults to 0.
int64_t default_build_wait_timeout(const std::string& backend);

// Why the default master_address (`address`: this host's name and the port
// of [master] listen = `listen`) probably does not reach the master from the
// backend's machine, or nothing when it does (a container on the host's
// network). The loader turns this into a warning, not an error: a guest's
// DNS may know this host.
std::optional<std::string> default_master_address_problem(const std::string& backend,
                                                          const std::map<std::string, std::string>& options,
                                                          const std::string& listen, const std::string& address);

namespace detail {
std::optional<std::string> check_libvirt_key(const std::string& key, const std::string& value);
std::vector<std::pair<std::string, std::string>> check_libvirt_section(const std::map<std::string, std::string>& options);
std::optional<std::string> check_docker_key(const std::string& key, const std::string& value);
std::vector<std::pair<std::string, std::string>> check_docker_section(const std::map<std::string, std::string>& options);
std::optional<std::string> check_ec2_key(const std::string& key, const std::string& value);
std::vector<std::pair<std::string, std::string>> check_ec2_section(const std::map<std::string, std::string>& options);
std::optional<std::string> check_openstack_key(const std::string& key, const std::string& value);
std::vector<std::pair<std::string, std::string>> check_openstack_section(
    const std::map<std::string, std::string>& options);
}  // namespace detail

}  // namespace by::config
