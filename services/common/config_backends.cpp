#include "common/config_backends.hpp"

#include "common/config.hpp"

namespace by::config {

bool known_backend(const std::string& backend) {
    return backend == "libvirt" || backend == "docker" || backend == "ec2" || backend == "openstack";
}

std::optional<std::string> check_backend_key(const std::string& backend, const std::string& key,
                                             const std::string& value) {
    if (backend == "libvirt") {
        return detail::check_libvirt_key(key, value);
    }
    if (backend == "docker") {
        return detail::check_docker_key(key, value);
    }
    if (backend == "ec2") {
        return detail::check_ec2_key(key, value);
    }
    if (backend == "openstack") {
        return detail::check_openstack_key(key, value);
    }
    return "unknown backend '" + backend + "'";
}

std::vector<std::pair<std::string, std::string>> check_backend_section(
    const std::string& backend, const std::map<std::string, std::string>& options) {
    if (backend == "libvirt") {
        return detail::check_libvirt_section(options);
    }
    if (backend == "docker") {
        return detail::check_docker_section(options);
    }
    if (backend == "ec2") {
        return detail::check_ec2_section(options);
    }
    if (backend == "openstack") {
        return detail::check_openstack_section(options);
    }
    return {};
}

int64_t default_build_wait_timeout(const std::string& backend) {
    // One fresh container per build, as Docker users expect; still configurable.
    return backend == "docker" ? 0 : 600;
}

std::optional<std::string> default_master_address_problem(const std::string& backend,
                                                          const std::map<std::string, std::string>& options,
                                                          const std::string& listen, const std::string& address) {
    const auto at = parse_host_port(listen);
    if (!at) {
        return std::nullopt;  // no default is made: that is an error of its own
    }
    const std::string port = std::to_string(at->port);
    const bool loopback_listen = at->host == "localhost" || at->host == "::1" || at->host.starts_with("127.");
    const auto network = options.find("network");
    const bool host_network = backend == "docker" && (network == options.end() || network->second == "host");
    if (host_network && !loopback_listen) {
        return std::nullopt;  // the container shares this host's names and addresses
    }
    std::string hint;
    if (backend == "libvirt") {
        hint = "a guest on libvirt's user networking reaches this host at 10.0.2.2:" + port;
    } else if (host_network) {
        hint = "[master] listen = " + listen + " takes connections from this host only; a container on the "
               "host's network reaches it at 127.0.0.1:" + port;
    } else if (backend == "docker") {
        hint = "an address that the container's network reaches";
    } else {
        hint = "a name or address that the instance reaches, such as this host's public name";
    }
    return "not set, so the " + backend + " machine dials " + address +
           " (this host's name), which works only if the machine resolves that name to this host: set "
           "master_address = HOST:PORT (" + hint + ")";
}

}  // namespace by::config
