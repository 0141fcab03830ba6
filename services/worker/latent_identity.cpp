#include "worker/latent_identity.hpp"

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <fcntl.h>
#include <unistd.h>

#include "common/config.hpp"
#include "common/raii.hpp"

namespace by::worker {

namespace {

enum Piece { worker, master, token };

// How each source spells the three pieces, in the order of Piece.
struct Source {
    const char* description;
    std::array<const char*, 3> keys;
    const char* pin;  // the optional master_fingerprint
};

const Source credentials_source{"", {"buildyard.worker", "buildyard.master", "buildyard.token"},
                                "buildyard.master_fingerprint"};
const Source cmdline_source{"the kernel command line",
                            {"buildyard.worker=", "buildyard.master=", "buildyard.token="},
                            "buildyard.master_fingerprint="};
const Source environment_source{"the environment", {"BUILDYARD_WORKER_NAME", "BUILDYARD_MASTER", "BUILDYARD_TOKEN"},
                                "BUILDYARD_MASTER_FINGERPRINT"};
const Source user_data_source{"", {"buildyard.worker", "buildyard.master", "buildyard.token"},
                              "buildyard.master_fingerprint"};

bool is_blank(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

// Credential files usually end in a newline; none of the pieces has blanks.
std::string trim(std::string_view s) {
    while (!s.empty() && is_blank(s.front())) {
        s.remove_prefix(1);
    }
    while (!s.empty() && is_blank(s.back())) {
        s.remove_suffix(1);
    }
    return std::string(s);
}

std::string join(const std::vector<std::string>& words) {
    std::string out;
    for (std::size_t i = 0; i < words.size(); ++i) {
        out += i == 0 ? "" : (i + 1 == words.size() ? " and " : ", ");
        out += words[i];
    }
    return out;
}

std::string list_keys(const Source& source) {
    return join({source.keys[0], source.keys[1], source.keys[2]});
}

// nullopt: the source gives none of the pieces, so the next one is asked.
std::optional<LatentIdentityResult> from_source(const Source& source, const std::string& description,
                                                const std::array<std::optional<std::string>, 3>& raw,
                                                const std::optional<std::string>& pin) {
    std::array<std::string, 3> value;
    std::vector<std::string> given;
    std::vector<std::string> missing;
    for (int i = 0; i < 3; ++i) {
        value[i] = raw[i] ? trim(*raw[i]) : std::string();
        (value[i].empty() ? missing : given).push_back(source.keys[i]);
    }
    if (given.empty()) {
        return std::nullopt;
    }
    LatentIdentityResult result;
    if (!missing.empty()) {
        result.error = description + ": " + join(given) + (given.size() == 1 ? " is" : " are") + " set but " +
                       join(missing) + (missing.size() == 1 ? " is" : " are") +
                       " missing (a latent worker takes all three from one source)";
        return result;
    }
    if (!config::valid_worker_name(value[worker])) {
        result.error = description + ": " + source.keys[worker] + " '" + value[worker] +
                       "' is not a valid worker name: use 1-64 of A-Z a-z 0-9 . _ -, not starting with . or -";
        return result;
    }
    if (!config::parse_host_port(value[master])) {
        result.error = description + ": " + source.keys[master] + " '" + value[master] +
                       "' is not HOST:PORT with a port from 1 to 65535";
        return result;
    }
    for (char c : value[token]) {
        if (is_blank(c) || static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
            result.error = description + ": " + source.keys[token] + " has blanks or control characters";
            return result;
        }
    }
    std::string fingerprint;
    if (pin && !trim(*pin).empty()) {
        const auto parsed = config::parse_fingerprint(trim(*pin));
        if (!parsed) {
            result.error = description + ": " + source.pin + " '" + trim(*pin) +
                           "' is not sha256: and 64 hex digits";
            return result;
        }
        fingerprint = *parsed;
    }
    result.identity = LatentIdentity{value[worker], value[master], value[token], fingerprint, description};
    return result;
}

// 0 or the errno of the first failure. Credentials are small (systemd caps
// them at 1 MiB per unit); so is /proc/cmdline.
int read_file(const std::string& path, std::string& content) {
    by::Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
        return errno;
    }
    char buffer[4096];
    while (true) {
        ssize_t n = read(fd.get(), buffer, sizeof buffer);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno;
        }
        if (n == 0) {
            return 0;
        }
        if (content.size() > (1u << 20)) {
            return EFBIG;
        }
        content.append(buffer, static_cast<std::size_t>(n));
    }
}

std::optional<std::string> lookup(const std::map<std::string, std::string>& map, const std::string& key) {
    auto it = map.find(key);
    return it == map.end() ? std::nullopt : std::optional<std::string>(it->second);
}

}  // namespace

std::vector<KernelParameter> split_kernel_cmdline(std::string_view cmdline) {
    std::vector<KernelParameter> params;
    std::size_t pos = 0;
    while (true) {
        while (pos < cmdline.size() && is_blank(cmdline[pos])) {
            ++pos;
        }
        if (pos >= cmdline.size()) {
            break;
        }
        // A word that opens with a quote is quoted as a whole.
        bool quoted = cmdline[pos] == '"';
        bool in_quote = quoted;
        std::size_t start = quoted ? pos + 1 : pos;
        std::size_t end = start;
        std::size_t equals = std::string_view::npos;
        for (; end < cmdline.size(); ++end) {
            char c = cmdline[end];
            if (is_blank(c) && !in_quote) {
                break;
            }
            if (equals == std::string_view::npos && c == '=') {
                equals = end;
            }
            if (c == '"') {
                in_quote = !in_quote;
            }
        }
        pos = end;
        std::string_view word = cmdline.substr(start, end - start);
        // The closing quote of a quoted word or value is not part of it.
        bool drop_last_quote = quoted;
        KernelParameter param;
        if (equals == std::string_view::npos) {
            param.name = std::string(word);
        } else {
            std::size_t eq = equals - start;
            param.name = std::string(word.substr(0, eq));
            std::string_view value = word.substr(eq + 1);
            if (!value.empty() && value.front() == '"') {
                value.remove_prefix(1);
                drop_last_quote = true;
            }
            param.value = std::string(value);
        }
        if (drop_last_quote) {
            std::string& last = param.value ? *param.value : param.name;
            if (!last.empty() && last.back() == '"') {
                last.pop_back();
            }
        }
        params.push_back(std::move(param));
    }
    return params;
}

LatentIdentityResult resolve_latent_identity(const LatentSources& sources) {
    if (!sources.credentials_error.empty()) {
        return {std::nullopt, sources.credentials_error};
    }
    if (!sources.credentials_directory.empty()) {
        std::array<std::optional<std::string>, 3> raw;
        for (int i = 0; i < 3; ++i) {
            raw[i] = lookup(sources.credentials, credentials_source.keys[i]);
        }
        if (auto r = from_source(credentials_source, "the credentials in " + sources.credentials_directory, raw,
                                 lookup(sources.credentials, credentials_source.pin))) {
            return *r;
        }
    }
    // The environment before the kernel command line: it is set for this
    // process alone, while in a container /proc/cmdline is the host's.
    {
        std::array<std::optional<std::string>, 3> raw;
        for (int i = 0; i < 3; ++i) {
            raw[i] = lookup(sources.environment, environment_source.keys[i]);
        }
        if (auto r = from_source(environment_source, environment_source.description, raw,
                                 lookup(sources.environment, environment_source.pin))) {
            return *r;
        }
    }
    if (sources.cmdline) {
        std::array<std::optional<std::string>, 3> raw;
        std::optional<std::string> pin;
        const std::string pin_name(cmdline_source.pin, std::strlen(cmdline_source.pin) - 1);
        for (const auto& p : split_kernel_cmdline(*sources.cmdline)) {
            if (p.name == pin_name) {
                pin = p.value.value_or("");
            }
            for (int i = 0; i < 3; ++i) {
                std::string name = cmdline_source.keys[i];
                name.pop_back();  // the '='
                if (p.name == name) {
                    raw[i] = p.value.value_or("");  // a later one wins, as in the kernel
                }
            }
        }
        if (auto r = from_source(cmdline_source, cmdline_source.description, raw, pin)) {
            return *r;
        }
    }
    if (!sources.user_data_source.empty()) {
        const std::string from = "the user data from " + sources.user_data_source;
        if (!sources.user_data_error.empty()) {
            return {std::nullopt, "cannot read " + from + ": " + sources.user_data_error};
        }
        if (sources.user_data) {
            const auto lines = parse_user_data(*sources.user_data);
            std::array<std::optional<std::string>, 3> raw;
            for (int i = 0; i < 3; ++i) {
                raw[i] = lookup(lines, user_data_source.keys[i]);
            }
            if (auto r = from_source(user_data_source, from, raw, lookup(lines, user_data_source.pin))) {
                return *r;
            }
        }
    }
    std::string where = sources.credentials_directory.empty()
                            ? std::string("CREDENTIALS_DIRECTORY is not set")
                            : "none in " + sources.credentials_directory;
    const std::string cloud = sources.user_data_source.empty()
                                  ? std::string()
                                  : ", nor " + list_keys(user_data_source) + " lines in the user data from " +
                                        sources.user_data_source;
    return {std::nullopt,
            "no latent worker identity: no credentials " + list_keys(credentials_source) + " (" + where + "), no " +
                list_keys(environment_source) + " in the environment, and no " + list_keys(cmdline_source) +
                " on the kernel command line" + (sources.cmdline ? "" : " (cannot read /proc/cmdline)") + cloud,
            true};
}

std::map<std::string, std::string> parse_user_data(std::string_view text) {
    std::map<std::string, std::string> out;
    while (!text.empty()) {
        const auto nl = text.find('\n');
        const std::string line = trim(text.substr(0, nl));
        text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
        const auto eq = line.find('=');
        if (line.starts_with("buildyard.") && eq != std::string::npos) {
            out[line.substr(0, eq)] = line.substr(eq + 1);  // a later one wins, as on the command line
        }
    }
    return out;
}

LatentSources read_latent_sources() {
    LatentSources sources;
    if (const char* dir = std::getenv("CREDENTIALS_DIRECTORY"); dir && *dir) {
        sources.credentials_directory = dir;
        std::vector<const char*> keys(credentials_source.keys.begin(), credentials_source.keys.end());
        keys.push_back(credentials_source.pin);
        for (const char* key : keys) {
            const std::string path = sources.credentials_directory + "/" + key;
            std::string content;
            if (int e = read_file(path, content); e == ENOENT) {
                continue;
            } else if (e != 0) {
                if (sources.credentials_error.empty()) {
                    sources.credentials_error = "cannot read " + path + ": " + std::strerror(e);
                }
                continue;
            }
            sources.credentials[key] = std::move(content);
        }
    }
    if (std::string cmdline; read_file("/proc/cmdline", cmdline) == 0) {
        sources.cmdline = std::move(cmdline);
    }
    std::vector<const char*> env_keys(environment_source.keys.begin(), environment_source.keys.end());
    env_keys.push_back(environment_source.pin);
    for (const char* key : env_keys) {
        if (const char* value = std::getenv(key)) {
            sources.environment[key] = value;
        }
    }
    return sources;
}

}  // namespace by::worker
