#include "common/config_backends.hpp"

namespace by::config {

bool known_backend(const std::string& backend) { return backend == "libvirt" || backend == "docker" || backend == "ec2";
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
    return {};
}

int64_t default_build_wait_timeout(const std::string& backend) {
    // One fresh container per build, as Docker users expect; still configurable.
    return backend == "docker" ? 0 : 600;
}

}  // namespace by::config
