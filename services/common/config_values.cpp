#include "common/config_values.hpp"

#include <cerrno>
#include <limits>
#include <set>
#include <system_error>

#include <arpa/inet.h>
#include <fcntl.h>
#include <pwd.h>
#include <unistd.h>

#include "common/config.hpp"
#include "common/raii.hpp"
#include "common/text.hpp"

namespace by::config {

namespace {

bool is_alnum(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

}  // namespace

std::string escape_unit_instance(const std::string& name) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    out.reserve(name.size());
    for (std::size_t i = 0; i < name.size(); ++i) {
        const char c = name[i];
        const bool keep = is_alnum(c) || c == ':' || c == '_' || (c == '.' && i > 0);
        if (c == '/') {
            out += '-';
        } else if (keep) {
            out += c;
        } else {
            const auto b = static_cast<unsigned char>(c);
            out += "\\x";
            out += hex[b >> 4];
            out += hex[b & 0xf];
        }
    }
    return out;
}

bool valid_worker_name(const std::string& name) {
    if (name.empty() || name.size() > 64 || name[0] == '.' || name[0] == '-') {
        return false;
    }
    for (char c : name) {
        if (!is_alnum(c) && c != '.' && c != '_' && c != '-') {
            return false;
        }
    }
    return true;
}

std::optional<std::string> parse_fingerprint(std::string_view text) {
    constexpr std::string_view prefix = "sha256:";
    if (text.size() < prefix.size()) {
        return std::nullopt;
    }
    for (size_t i = 0; i < prefix.size(); ++i) {
        if ((text[i] | 0x20) != prefix[i] && text[i] != prefix[i]) {
            return std::nullopt;
        }
    }
    std::string out(prefix);
    for (char c : text.substr(prefix.size())) {
        if (c == ':') {
            continue;
        }
        const char lower = (c >= 'A' && c <= 'F') ? static_cast<char>(c - 'A' + 'a') : c;
        if (!((lower >= '0' && lower <= '9') || (lower >= 'a' && lower <= 'f'))) {
            return std::nullopt;
        }
        out += lower;
    }
    if (out.size() != prefix.size() + 64) {
        return std::nullopt;
    }
    return out;
}

std::optional<HostPort> parse_host_port(std::string_view text) {
    std::string_view host;
    std::string_view port;
    if (!text.empty() && text[0] == '[') {
        // An IPv6 literal must be bracketed so its colons are not the port's.
        const auto close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
            return std::nullopt;
        }
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
        in6_addr addr{};
        if (inet_pton(AF_INET6, std::string(host).c_str(), &addr) != 1) {
            return std::nullopt;
        }
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string_view::npos) {
            return std::nullopt;
        }
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
        if (!detail::valid_host_name(host)) {
            return std::nullopt;
        }
    }
    const auto number = detail::parse_uint(port, 65535);
    if (!number || *number == 0) {
        return std::nullopt;
    }
    return HostPort{std::string(host), static_cast<uint16_t>(*number)};
}

}  // namespace by::config

namespace by::config::detail {

std::string_view trim(std::string_view s) {
    const auto first = s.find_first_not_of(" \t\r\n\f\v");
    if (first == std::string_view::npos) {
        return {};
    }
    const auto last = s.find_last_not_of(" \t\r\n\f\v");
    return s.substr(first, last - first + 1);
}

std::optional<uint64_t> parse_uint(std::string_view s, uint64_t max) {
    if (s.empty()) {
        return std::nullopt;
    }
    uint64_t value = 0;
    for (char c : s) {
        if (c < '0' || c > '9') {
            return std::nullopt;
        }
        const auto digit = static_cast<uint64_t>(c - '0');
        if (value > (max - digit) / 10) {
            return std::nullopt;
        }
        value = value * 10 + digit;
    }
    return value;
}

std::optional<int64_t> parse_int(std::string_view s, int64_t min, int64_t max) {
    const bool negative = !s.empty() && s[0] == '-';
    if (negative) {
        // -min fits in uint64 even for INT64_MIN.
        const auto magnitude = parse_uint(s.substr(1), 0 - static_cast<uint64_t>(min));
        if (!magnitude || min > 0) {
            return std::nullopt;
        }
        return static_cast<int64_t>(0 - *magnitude);
    }
    const auto value = parse_uint(s, max < 0 ? 0 : static_cast<uint64_t>(max));
    if (!value || max < 0 || static_cast<int64_t>(*value) < min) {
        return std::nullopt;
    }
    return static_cast<int64_t>(*value);
}

std::optional<std::string> parse_key_values(std::string_view v, const std::string& noun, std::size_t max_key,
                                            std::size_t max_value, const std::vector<std::string>& reserved,
                                            const std::string& reserved_why,
                                            std::vector<std::pair<std::string, std::string>>& out) {
    std::vector<std::pair<std::string, std::string>> items;
    std::set<std::string> keys;
    for (const auto& entry : split_list(v)) {
        const auto eq = entry.find('=');
        const std::string key = entry.substr(0, eq);
        const std::string value = eq == std::string::npos ? "" : entry.substr(eq + 1);
        if (eq == std::string::npos || key.empty() || key.size() > max_key || value.size() > max_value) {
            return "invalid " + noun + " '" + entry + "': expected KEY=VALUE (a key of 1-" + std::to_string(max_key) +
                   ", a value of 0-" + std::to_string(max_value) + " characters)";
        }
        for (const auto& prefix : reserved) {
            if (key.starts_with(prefix)) {
                return noun + " '" + key + "': " + reserved_why;
            }
        }
        if (!keys.insert(key).second) {
            return noun + " '" + key + "' is set twice";
        }
        items.emplace_back(key, value);
    }
    out = std::move(items);
    return std::nullopt;
}

std::optional<std::string> credential_name_problem(std::string_view v) {
    const bool ok = !v.empty() && v.size() <= 255 && v != "." && v != ".." &&
                    v.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") ==
                        std::string_view::npos;
    if (ok) {
        return std::nullopt;
    }
    return "invalid credential name '" + std::string(v) + "': use A-Z a-z 0-9 . _ - (a name from LoadCredential=)";
}

std::vector<std::string> split_list(std::string_view s) {
    std::vector<std::string> out;
    if (trim(s).empty()) {
        return out;
    }
    while (true) {
        const auto comma = s.find(',');
        out.emplace_back(trim(s.substr(0, comma)));
        if (comma == std::string_view::npos) {
            break;
        }
        s.remove_prefix(comma + 1);
    }
    return out;
}

namespace {

// Dot-separated labels of [A-Za-z0-9-], none empty, none starting or ending
// with '-'. A single label ("localhost") is allowed.
bool valid_domain(std::string_view domain) {
    if (domain.empty()) {
        return false;
    }
    while (true) {
        const auto dot = domain.find('.');
        const auto label = domain.substr(0, dot);
        if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
            return false;
        }
        for (char c : label) {
            if (!is_alnum(c) && c != '-') {
                return false;
            }
        }
        if (dot == std::string_view::npos) {
            return true;
        }
        domain.remove_prefix(dot + 1);
    }
}

}  // namespace

// We accept plain addresses only, no display names or quoting: the local part
// is printable ASCII without spaces and without the characters that would
// need quoting in a header (<>()[],;:\ and "), the domain as valid_domain.
bool valid_address(std::string_view address) {
    const auto at = address.find('@');
    if (at == std::string_view::npos || at == 0) {
        return false;
    }
    for (char c : address.substr(0, at)) {
        if (c <= 0x20 || c >= 0x7f || std::string_view("<>()[],;:\\\"@").find(c) != std::string_view::npos) {
            return false;
        }
    }
    return valid_domain(address.substr(at + 1));
}

bool valid_host_name(std::string_view host) {
    if (host.find_first_not_of("0123456789.") == std::string_view::npos) {
        // All digits and dots: must then be a real IPv4 address.
        in_addr addr{};
        return inet_pton(AF_INET, std::string(host).c_str(), &addr) == 1;
    }
    return host.size() <= 253 && valid_domain(host);
}

bool valid_property_key(std::string_view key) {
    if (key.empty()) {
        return false;
    }
    for (char c : key) {
        if (!is_alnum(c) && c != '_' && c != '.' && c != '-') {
            return false;
        }
    }
    return true;
}

std::optional<bool> parse_yes_no(std::string_view s) {
    if (s == "yes" || s == "true" || s == "on" || s == "1") {
        return true;
    }
    if (s == "no" || s == "false" || s == "off" || s == "0") {
        return false;
    }
    return std::nullopt;
}

}  // namespace by::config::detail
