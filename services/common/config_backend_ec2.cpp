// ec2.* keys of a latent worker; see buildyard.ini(5). One parser per key,
// used both to check the key at load time and to convert it for the backend.
#include <set>

#include "common/config_backend_keys.hpp"
#include "common/config_backends.hpp"
#include "common/config_ec2.hpp"
#include "common/config_values.hpp"

namespace by::config {

namespace {

using detail::quoted;
using detail::split_list;
using Problem = std::optional<std::string>;

constexpr uint64_t max_volume_gib = 16384;  // EBS's largest gp3 volume

bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool is_hex(char c) { return (c >= 'a' && c <= 'f') || (c >= '0' && c <= '9'); }

bool all_of(const std::string& s, bool (*pred)(char), const std::string& extra = "") {
    for (char c : s) {
        if (!pred(c) && extra.find(c) == std::string::npos) {
            return false;
        }
    }
    return true;
}

// PREFIX- then 8 or 17 lowercase hex digits, as EC2 names its resources.
bool resource_id(const std::string& v, const std::string& prefix) {
    if (!v.starts_with(prefix + "-")) {
        return false;
    }
    const std::string hex = v.substr(prefix.size() + 1);
    return (hex.size() == 8 || hex.size() == 17) && all_of(hex, is_hex);
}

Problem parse_region(const std::string& v, std::string& out) {
    // us-east-1, eu-central-2, us-gov-west-1; other clouds name theirs as they like.
    if (v.empty() || v.size() > 64 || !is_lower_alnum(v.front()) || !all_of(v, is_lower_alnum, "-")) {
        return "invalid region " + quoted(v) + ": expected a region name such as eu-west-1";
    }
    out = v;
    return std::nullopt;
}

Problem parse_endpoint(const std::string& v, std::string& out) {
    const bool https = v.starts_with("https://");
    if (!https && !v.starts_with("http://")) {
        return "invalid endpoint " + quoted(v) + ": expected an http:// or https:// URL";
    }
    const std::string rest = v.substr(https ? 8 : 7);
    const std::string host = rest.substr(0, rest.find('/'));
    if (host.empty() || host.front() == ':') {
        return "invalid endpoint " + quoted(v) + ": the URL has no host";
    }
    for (char c : v) {
        if (static_cast<unsigned char>(c) <= ' ' || c == '?' || c == '#' || c == 0x7f) {
            return "invalid endpoint " + quoted(v) + ": no blanks, query or fragment in the URL";
        }
    }
    out = v;
    return std::nullopt;
}

Problem parse_ami(const std::string& v, std::string& out) {
    if (!resource_id(v, "ami")) {
        return "invalid AMI " + quoted(v) + ": expected an image id such as ami-0123456789abcdef0";
    }
    out = v;
    return std::nullopt;
}

Problem parse_instance_type(const std::string& v, std::string& out) {
    const auto dot = v.find('.');
    if (v.size() > 64 || dot == std::string::npos || dot == 0 || dot + 1 == v.size() ||
        !all_of(v, is_lower_alnum, "-.")) {
        return "invalid instance type " + quoted(v) + ": expected a type such as t3.micro or c6i.2xlarge";
    }
    out = v;
    return std::nullopt;
}

Problem parse_subnet(const std::string& v, std::string& out) {
    if (!resource_id(v, "subnet")) {
        return "invalid subnet " + quoted(v) + ": expected a subnet id such as subnet-0123456789abcdef0";
    }
    out = v;
    return std::nullopt;
}

Problem parse_security_groups(const std::string& v, std::vector<std::string>& out) {
    std::vector<std::string> groups;
    std::set<std::string> seen;
    for (const auto& g : split_list(v)) {
        if (!resource_id(g, "sg")) {
            return "invalid security group " + quoted(g) + ": expected ids such as sg-0123456789abcdef0";
        }
        if (!seen.insert(g).second) {
            return "security group " + quoted(g) + " is named twice";
        }
        groups.push_back(g);
    }
    if (groups.empty()) {
        return std::string("empty list: leave the key out for the default security group");
    }
    out = std::move(groups);
    return std::nullopt;
}

Problem parse_key_name(const std::string& v, std::string& out) {
    if (v.empty() || v.size() > 255) {
        return "invalid key pair name " + quoted(v) + ": 1 to 255 characters";
    }
    for (char c : v) {
        if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) {
            return "invalid key pair name " + quoted(v) + ": printable ASCII only";
        }
    }
    out = v;
    return std::nullopt;
}

Problem parse_tags(const std::string& v, std::vector<std::pair<std::string, std::string>>& out) {
    std::vector<std::pair<std::string, std::string>> tags;
    if (auto problem = detail::parse_key_values(v, "tag", 128, 256, {"aws:", ec2_tag_prefix},
                                                "keys starting with aws: are AWS's and buildyard: are the backend's own",
                                                tags)) {
        return problem;
    }
    if (tags.size() > ec2_max_extra_tags) {
        return "too many tags: at most 46 (EC2 allows 50 and the backend sets buildyard:owner, buildyard:worker, buildyard:start and Name)";
    }
    out = std::move(tags);
    return std::nullopt;
}

Problem parse_spot(const std::string& v, Ec2Spot& out) {
    if (v == "no") {
        out = Ec2Spot::no;
    } else if (v == "yes") {
        out = Ec2Spot::yes;
    } else if (v == "fallback") {
        out = Ec2Spot::fallback;
    } else {
        return "invalid value " + quoted(v) + ": expected no, yes or fallback";
    }
    return std::nullopt;
}

// "0.05", "1", "0.0035": dollars per hour, as MaxPrice takes it.
Problem parse_max_price(const std::string& v, std::string& out) {
    const auto dot = v.find('.');
    const std::string whole = v.substr(0, dot);
    const std::string fraction = dot == std::string::npos ? "" : v.substr(dot + 1);
    const bool digits = !whole.empty() && all_of(whole, [](char c) { return c >= '0' && c <= '9'; }) &&
                        all_of(fraction, [](char c) { return c >= '0' && c <= '9'; });
    if (!digits || whole.size() > 6 || fraction.size() > 6 || (dot != std::string::npos && fraction.empty()) ||
        v.find_first_not_of("0.") == std::string::npos) {
        return "invalid price " + quoted(v) + ": expected US dollars per hour, more than 0, such as 0.05";
    }
    out = v;
    return std::nullopt;
}

Problem parse_key(const std::string& key, const std::string& value, Ec2Options& o) {
    if (key == "region") return parse_region(value, o.region);
    if (key == "endpoint") return parse_endpoint(value, o.endpoint);
    if (key == "ami") return parse_ami(value, o.ami);
    if (key == "instance_type") return parse_instance_type(value, o.instance_type);
    if (key == "subnet") return parse_subnet(value, o.subnet);
    if (key == "security_groups") return parse_security_groups(value, o.security_groups);
    if (key == "key_name") return parse_key_name(value, o.key_name);
    if (key == "volume_size") return detail::parse_size_gib(value, max_volume_gib, o.volume_size_gib);
    if (key == "tags") return parse_tags(value, o.tags);
    if (key == "spot") return parse_spot(value, o.spot);
    if (key == "max_price") return parse_max_price(value, o.max_price);
    if (key == "credential") return detail::parse_credential_name(value, o.credential);
    return std::string("unknown key (ec2 keys: region, endpoint, ami, instance_type, subnet, security_groups, "
                       "key_name, volume_size, tags, spot, max_price, credential)");
}

}  // namespace

std::optional<Ec2Options> ec2_options(const std::map<std::string, std::string>& backend_options, std::string& error) {
    Ec2Options o;
    for (const auto& [key, value] : backend_options) {
        if (!key.starts_with("ec2.")) {
            continue;
        }
        if (auto problem = parse_key(key.substr(4), value, o)) {
            error = key + ": " + *problem;
            return std::nullopt;
        }
    }
    for (const auto& [key, what] : {std::pair{"region", &o.region}, {"ami", &o.ami}, {"instance_type", &o.instance_type}}) {
        if (what->empty()) {
            error = std::string("ec2.") + key + " is not set";
            return std::nullopt;
        }
    }
    if (o.endpoint.empty()) {
        o.endpoint = "https://ec2." + o.region + ".amazonaws.com/";
    }
    return o;
}

namespace detail {

std::optional<std::string> check_ec2_key(const std::string& key, const std::string& value) {
    Ec2Options scratch;
    return parse_key(key, value, scratch);
}

std::vector<std::pair<std::string, std::string>> check_ec2_section(const std::map<std::string, std::string>& options) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const char* key : {"region", "ami", "instance_type"}) {
        if (!options.contains(key)) {
            out.emplace_back("", std::string("ec2 workers need ec2.") + key);
        }
    }
    const auto spot = options.find("spot");
    if (options.contains("max_price") && (spot == options.end() || spot->second == "no")) {
        out.emplace_back("max_price", "is a spot price: it needs ec2.spot = yes or fallback");
    }
    return out;
}

}  // namespace detail

}  // namespace by::config
