// openstack.* keys of a latent worker; see buildyard.ini(5). One parser per
// key, used both to check the key at load time and to convert it for the
// backend.
#include <set>

#include "common/config_backend_keys.hpp"
#include "common/config_backends.hpp"
#include "common/config_openstack.hpp"
#include "common/config_values.hpp"

namespace by::config {

namespace {

using detail::quoted;
using detail::split_list;
using Problem = std::optional<std::string>;

constexpr uint64_t max_volume_gib = 65536;

bool printable(const std::string& v) {
    for (char c : v) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
            return false;
        }
    }
    return true;
}

// A name or ID as Nova, Glance and Neutron take them: 1 to 255 printable
// characters (Nova's limit for names).
Problem parse_name(const std::string& v, const std::string& what, std::string& out) {
    if (v.empty() || v.size() > 255 || !printable(v)) {
        return "invalid " + what + " " + quoted(v) + ": expected a name or ID of 1 to 255 printable characters";
    }
    out = v;
    return std::nullopt;
}

Problem parse_cloud(const std::string& v, std::string& out) {
    if (v.empty() || v.size() > 255 || !printable(v)) {
        return "invalid cloud " + quoted(v) + ": expected the name of an entry under clouds: in clouds.yaml";
    }
    out = v;
    return std::nullopt;
}

Problem parse_clouds_file(const std::string& v, std::string& out) {
    if (!v.starts_with("/") || !printable(v)) {
        return "invalid path " + quoted(v) + ": expected an absolute path to a clouds.yaml";
    }
    out = v;
    return std::nullopt;
}

Problem parse_security_groups(const std::string& v, std::vector<std::string>& out) {
    std::vector<std::string> groups;
    std::set<std::string> seen;
    for (const auto& g : split_list(v)) {
        std::string name;
        if (auto problem = parse_name(g, "security group", name)) {
            return problem;
        }
        if (!seen.insert(g).second) {
            return "security group " + quoted(g) + " is named twice";
        }
        groups.push_back(g);
    }
    if (groups.empty()) {
        return std::string("empty list: leave the key out for the project's default security group");
    }
    out = std::move(groups);
    return std::nullopt;
}

Problem parse_metadata(const std::string& v, std::vector<std::pair<std::string, std::string>>& out) {
    std::vector<std::pair<std::string, std::string>> items;
    if (auto problem = detail::parse_key_values(v, "item", 255, 255, {openstack_metadata_prefix},
                                                "keys starting with buildyard: are the backend's own", items)) {
        return problem;
    }
    for (const auto& [key, value] : items) {
        if (!printable(key) || !printable(value)) {
            return "invalid item '" + key + "=" + value + "': no control characters";
        }
    }
    if (items.size() > openstack_max_extra_metadata) {
        return std::string("too many items: at most 125 (Nova's default quota is 128 and the backend sets "
                           "buildyard:owner, buildyard:worker and buildyard:start)");
    }
    out = std::move(items);
    return std::nullopt;
}

Problem parse_yes_no(const std::string& v, bool& out) {
    if (v == "yes") {
        out = true;
    } else if (v == "no") {
        out = false;
    } else {
        return "invalid value " + quoted(v) + ": expected yes or no";
    }
    return std::nullopt;
}

Problem parse_key(const std::string& key, const std::string& value, OpenStackOptions& o) {
    if (key == "cloud") return parse_cloud(value, o.cloud);
    if (key == "clouds_file") return parse_clouds_file(value, o.clouds_file);
    if (key == "credential") return detail::parse_credential_name(value, o.credential);
    if (key == "flavor") return parse_name(value, "flavor", o.flavor);
    if (key == "image") return parse_name(value, "image", o.image);
    if (key == "network") return parse_name(value, "network", o.network);
    if (key == "availability_zone") return parse_name(value, "availability zone", o.availability_zone);
    if (key == "key_name") return parse_name(value, "key pair name", o.key_name);
    if (key == "security_groups") return parse_security_groups(value, o.security_groups);
    if (key == "volume_size") return detail::parse_size_gib(value, max_volume_gib, o.volume_size_gib);
    if (key == "metadata") return parse_metadata(value, o.metadata);
    if (key == "config_drive") return parse_yes_no(value, o.config_drive);
    return std::string("unknown key (openstack keys: cloud, clouds_file, credential, flavor, image, network, "
                       "availability_zone, key_name, security_groups, volume_size, metadata, config_drive)");
}

constexpr const char* required[] = {"cloud", "flavor", "image"};

}  // namespace

std::optional<OpenStackOptions> openstack_options(const std::map<std::string, std::string>& backend_options,
                                                  std::string& error) {
    OpenStackOptions o;
    std::set<std::string> seen;
    for (const auto& [key, value] : backend_options) {
        if (!key.starts_with("openstack.")) {
            continue;
        }
        if (auto problem = parse_key(key.substr(10), value, o)) {
            error = key + ": " + *problem;
            return std::nullopt;
        }
        seen.insert(key.substr(10));
    }
    for (const char* key : required) {
        if (!seen.contains(key)) {
            error = std::string("openstack.") + key + " is not set";
            return std::nullopt;
        }
    }
    return o;
}

namespace detail {

std::optional<std::string> check_openstack_key(const std::string& key, const std::string& value) {
    OpenStackOptions scratch;
    return parse_key(key, value, scratch);
}

std::vector<std::pair<std::string, std::string>> check_openstack_section(
    const std::map<std::string, std::string>& options) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const char* key : required) {
        if (!options.contains(key)) {
            out.emplace_back("", std::string("openstack workers need openstack.") + key);
        }
    }
    return out;
}

}  // namespace detail

}  // namespace by::config
