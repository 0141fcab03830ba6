// docker.* keys of a latent worker; see buildyard.ini(5). One parser per key,
// used both to check the key at load time and to convert it for the backend.
#include <set>

#include "common/config_backends.hpp"
#include "common/config_docker.hpp"
#include "common/config_values.hpp"

namespace by::config {

namespace {

using detail::parse_uint;
using detail::split_list;

// Each parser stores the value in `out` and returns nothing, or returns
// what is wrong.
using Problem = std::optional<std::string>;

constexpr uint64_t max_memory_mib = 16 * 1024 * 1024;  // 16 TiB: anything larger is a typo
constexpr uint64_t min_memory_mib = 6;                 // Docker refuses less than 6 MiB
constexpr uint64_t max_cpus = 1024;
constexpr std::size_t max_socket_path = 107;           // sizeof(sockaddr_un.sun_path) - 1

bool is_alnum(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool all_of_chars(const std::string& s, const std::string& extra) {
    for (char c : s) {
        if (!is_alnum(c) && extra.find(c) == std::string::npos) {
            return false;
        }
    }
    return true;
}

std::string quoted(const std::string& v) { return "'" + v + "'"; }

Problem parse_host(const std::string& v, std::string& out) {
    const std::string scheme = "unix://";
    if (!v.starts_with(scheme)) {
        return "unsupported host " + quoted(v) +
               ": only unix:// sockets are supported (e.g. unix:///var/run/docker.sock)";
    }
    std::string path = v.substr(scheme.size());
    if (path.empty() || path.front() != '/') {
        return "invalid host " + quoted(v) + ": expected unix:///ABSOLUTE/PATH of the engine's socket";
    }
    if (path.size() > max_socket_path) {
        return "invalid host " + quoted(v) + ": a socket path is at most 107 characters";
    }
    out = path;
    return std::nullopt;
}

Problem parse_image(const std::string& v, std::string& out) {
    // A reference such as localhost/buildyard-worker:1.0 or name@sha256:HEX;
    // the engine has the last word, this catches blanks and stray characters.
    if (v.empty() || !all_of_chars(v, "._-/:@") || !is_alnum(v.front())) {
        return "invalid image " + quoted(v) + ": expected an image reference such as localhost/buildyard-worker:latest";
    }
    out = v;
    return std::nullopt;
}

Problem parse_pull(const std::string& v, DockerPull& out) {
    if (v == "never") {
        out = DockerPull::never;
        return std::nullopt;
    }
    if (v == "missing") {
        out = DockerPull::missing;
        return std::nullopt;
    }
    if (v == "always") {
        out = DockerPull::always;
        return std::nullopt;
    }
    return "invalid value " + quoted(v) + ": expected never, missing or always";
}

Problem parse_network(const std::string& v, std::string& out) {
    if (v.empty() || !all_of_chars(v, "._-:")) {
        return "invalid network " + quoted(v) + ": expected host, bridge or the name of a network";
    }
    if (v == "none") {
        return "network 'none' leaves the worker no way to reach the master over TCP";
    }
    out = v;
    return std::nullopt;
}

Problem parse_volumes(const std::string& v, std::vector<std::string>& out) {
    std::vector<std::string> binds;
    std::set<std::string> targets;
    for (const auto& entry : split_list(v)) {
        if (entry.empty()) {
            return "empty entry in list";
        }
        const std::string bad = "invalid volume " + quoted(entry) + ": ";
        std::vector<std::string> parts;
        std::size_t from = 0;
        for (std::size_t colon; (colon = entry.find(':', from)) != std::string::npos; from = colon + 1) {
            parts.push_back(entry.substr(from, colon - from));
        }
        parts.push_back(entry.substr(from));
        if (parts.size() < 2 || parts.size() > 3) {
            return bad + "expected HOST:CONTAINER or HOST:CONTAINER:ro";
        }
        const auto& host = parts[0];
        const auto& target = parts[1];
        const bool host_path = !host.empty() && host.front() == '/';
        const bool named_volume = !host.empty() && is_alnum(host.front()) && all_of_chars(host, "._-");
        if (!host_path && !named_volume) {
            return bad + "HOST is an absolute path or the name of a volume";
        }
        if (target.empty() || target.front() != '/') {
            return bad + "CONTAINER is an absolute path";
        }
        if (parts.size() == 3 && parts[2] != "ro" && parts[2] != "rw") {
            return bad + "the mode is ro or rw";
        }
        if (!targets.insert(target).second) {
            return "container path " + quoted(target) + " is mounted twice";
        }
        binds.push_back(entry);
    }
    out = std::move(binds);
    return std::nullopt;
}

Problem parse_env(const std::string& v, std::vector<std::string>& out) {
    std::vector<std::string> env;
    std::set<std::string> keys;
    for (const auto& entry : split_list(v)) {
        if (entry.empty()) {
            return "empty entry in list";
        }
        const auto eq = entry.find('=');
        const std::string key = entry.substr(0, eq);
        if (eq == std::string::npos || key.empty() || !all_of_chars(key, "_") || (key[0] >= '0' && key[0] <= '9')) {
            return "invalid entry " + quoted(entry) + ": expected KEY=VALUE with KEY of A-Z a-z 0-9 _";
        }
        if (key.starts_with("BUILDYARD_")) {
            return quoted(key) + ": names starting with BUILDYARD_ are reserved (latentd sets the worker's "
                                 "name, master and token)";
        }
        if (!keys.insert(key).second) {
            return quoted(key) + " is set twice";
        }
        env.push_back(entry);
    }
    out = std::move(env);
    return std::nullopt;
}

Problem parse_memory(const std::string& v, uint64_t& out) {
    const auto mib = parse_uint(v, max_memory_mib);
    if (!mib || *mib < min_memory_mib) {
        return "invalid value " + quoted(v) + ": expected MiB, a number from 6 (the engine's least) to " +
               std::to_string(max_memory_mib);
    }
    out = *mib * 1024 * 1024;
    return std::nullopt;
}

// "2", "0.5", "1.25": up to nine decimals, as the engine counts in 1e-9 CPUs.
Problem parse_cpus(const std::string& v, uint64_t& out) {
    const std::string bad =
        "invalid value " + quoted(v) + ": expected a number of CPUs such as 2 or 0.5 (more than 0, at most 1024)";
    const auto dot = v.find('.');
    const std::string whole = v.substr(0, dot);
    const std::string fraction = dot == std::string::npos ? "" : v.substr(dot + 1);
    const auto units = parse_uint(whole, max_cpus);
    if (!units || (dot != std::string::npos && fraction.empty()) || fraction.size() > 9) {
        return bad;
    }
    uint64_t nano = *units * 1000000000ULL;
    if (!fraction.empty()) {
        const auto digits = parse_uint(fraction, 999999999);
        if (!digits) {
            return bad;
        }
        uint64_t scale = 1;
        for (std::size_t i = fraction.size(); i < 9; ++i) {
            scale *= 10;
        }
        nano += *digits * scale;
    }
    if (nano == 0 || nano > max_cpus * 1000000000ULL) {
        return bad;
    }
    out = nano;
    return std::nullopt;
}

Problem parse_shutdown_timeout(const std::string& v, uint64_t& out) {
    const auto seconds = parse_uint(v, 3600);
    if (!seconds) {
        return "invalid value " + quoted(v) + ": expected seconds from 0 to 3600 (0: kill at once)";
    }
    out = *seconds;
    return std::nullopt;
}

// Runs the parser of `key`, which stores the value in its field of `o`.
std::optional<std::string> parse_key(const std::string& key, const std::string& value, DockerOptions& o) {
    if (key == "host") {
        return parse_host(value, o.socket_path);
    }
    if (key == "image") {
        return parse_image(value, o.image);
    }
    if (key == "pull") {
        return parse_pull(value, o.pull);
    }
    if (key == "network") {
        return parse_network(value, o.network);
    }
    if (key == "volumes") {
        return parse_volumes(value, o.binds);
    }
    if (key == "env") {
        return parse_env(value, o.env);
    }
    if (key == "memory") {
        return parse_memory(value, o.memory_bytes);
    }
    if (key == "cpus") {
        return parse_cpus(value, o.nano_cpus);
    }
    if (key == "shutdown_timeout") {
        return parse_shutdown_timeout(value, o.shutdown_timeout);
    }
    return std::string(
        "unknown key (docker keys: host, image, pull, network, volumes, env, memory, cpus, shutdown_timeout)");
}

}  // namespace

std::optional<DockerOptions> docker_options(const std::map<std::string, std::string>& backend_options,
                                            std::string& error) {
    DockerOptions o;
    for (const auto& [key, value] : backend_options) {
        if (!key.starts_with("docker.")) {
            continue;
        }
        const std::string bare = key.substr(7);
        if (auto problem = parse_key(bare, value, o)) {
            error = key + ": " + *problem;
            return std::nullopt;
        }
    }
    if (o.image.empty()) {
        error = "docker.image is not set";
        return std::nullopt;
    }
    return o;
}

namespace detail {

std::optional<std::string> check_docker_key(const std::string& key, const std::string& value) {
    DockerOptions scratch;
    return parse_key(key, value, scratch);
}

std::vector<std::pair<std::string, std::string>> check_docker_section(
    const std::map<std::string, std::string>& options) {
    std::vector<std::pair<std::string, std::string>> out;
    if (!options.contains("image")) {
        out.emplace_back("", "docker workers need docker.image, the image whose container runs the worker");
    }
    return out;
}

}  // namespace detail

}  // namespace by::config
