// libvirt.* keys of a latent worker; see buildyard.ini(5).
#include "common/config_backends.hpp"
#include "common/config_values.hpp"

namespace by::config::detail {

namespace {

bool absolute_path(const std::string& v) { return !v.empty() && v.front() == '/'; }

}  // namespace

std::optional<std::string> check_libvirt_key(const std::string& key, const std::string& value) {
    const std::string quoted = "'" + value + "'";
    if (key == "uri") {
        // libvirt parses it when it connects; catch the obvious slip here.
        if (value.empty() || value.find(':') == std::string::npos) {
            return "invalid URI " + quoted + ": expected a libvirt URI such as qemu:///system";
        }
    } else if (key == "xml" || key == "base_image" || key == "overlay_dir") {
        if (!absolute_path(value)) {
            return "invalid path " + quoted + ": expected an absolute path";
        }
    } else if (key == "memory") {
        if (!parse_uint(value, 16 * 1024 * 1024).value_or(0)) {
            return "invalid value " + quoted + ": expected MiB, a positive number";
        }
    } else if (key == "cpus") {
        if (!parse_uint(value, 1024).value_or(0)) {
            return "invalid value " + quoted + ": expected a number of CPUs from 1 to 1024";
        }
    } else if (key == "shutdown_timeout") {
        if (!parse_uint(value, 3600)) {
            return "invalid value " + quoted + ": expected seconds from 0 to 3600 (0: destroy at once)";
        }
    } else {
        return std::string("unknown key (libvirt keys: uri, xml, base_image, memory, cpus, overlay_dir, "
                           "shutdown_timeout)");
    }
    return std::nullopt;
}

std::vector<std::pair<std::string, std::string>> check_libvirt_section(
    const std::map<std::string, std::string>& options) {
    std::vector<std::pair<std::string, std::string>> out;
    if (!options.contains("uri")) {
        out.emplace_back("", "libvirt workers need libvirt.uri");
    }
    if (!options.contains("xml")) {
        out.emplace_back("", "libvirt workers need libvirt.xml, a domain template");
    }
    return out;
}

}  // namespace by::config::detail
