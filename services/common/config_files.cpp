// The files a configuration points at: secrets read from a file or a
// systemd credential, paths that must be readable, and user names. The
// value parsers are in config_values.cpp; both are declared in
// config_values.hpp.
#include <cerrno>
#include <system_error>

#include <fcntl.h>
#include <pwd.h>
#include <unistd.h>

#include "common/config_values.hpp"
#include "common/raii.hpp"
#include "common/text.hpp"

namespace by::config::detail {

std::string errno_message(int err) {
    return std::error_code(err, std::generic_category()).message();
}

std::optional<std::string> read_file(const std::string& path, std::size_t max_size, std::string& error) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
    if (!fd) {
        error = errno_message(errno);
        return std::nullopt;
    }
    std::string content;
    char buffer[8192];
    while (true) {
        const ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            error = errno_message(errno);
            return std::nullopt;
        }
        if (n == 0) {
            return content;
        }
        content.append(buffer, static_cast<std::size_t>(n));
        if (content.size() > max_size) {
            error = "file is larger than " + std::to_string(max_size) + " bytes";
            return std::nullopt;
        }
    }
}

namespace {

constexpr std::size_t max_secret_size = 64 * 1024;

std::optional<std::string> read_secret(const std::string& path, std::string& error) {
    std::string why;
    auto secret = read_file(path, max_secret_size, why);
    if (!secret) {
        error = "cannot read " + path + ": " + why;
        return std::nullopt;
    }
    if (!secret->empty() && secret->back() == '\n') {
        secret->pop_back();
    }
    if (secret->empty()) {
        error = path + " is empty";
        return std::nullopt;
    }
    return secret;
}

}  // namespace

std::optional<std::string> read_password_file(const std::string& path, std::string& error) {
    if (path.empty() || path[0] != '/') {
        error = "'" + path + "' is not an absolute path";
        return std::nullopt;
    }
    return read_secret(path, error);
}

std::optional<std::string> read_credential(const std::string& credentials_directory, const std::string& name,
                                           std::string& error) {
    if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos) {
        error = "invalid credential name '" + name + "'";
        return std::nullopt;
    }
    if (credentials_directory.empty()) {
        error = "password_credential needs $CREDENTIALS_DIRECTORY (set LoadCredential= in the unit)";
        return std::nullopt;
    }
    return read_secret(credentials_directory + "/" + name, error);
}

std::optional<std::string> resolve_password(const std::string& key, const std::string& value,
                                            const std::string& credentials_directory, std::string& error) {
    if (key == "password_file") {
        return read_password_file(value, error);
    }
    if (key == "password_credential") {
        return read_credential(credentials_directory, value, error);
    }
    if (value.empty()) {
        error = "the password is empty";
        return std::nullopt;
    }
    return value;
}

bool readable_path(const std::string& path, std::string& error) {
    if (path.empty() || path[0] != '/') {
        error = "invalid path '" + path + "': expected an absolute path";
        return false;
    }
    if (access(path.c_str(), R_OK) != 0) {
        error = "cannot read " + path + ": " + errno_message(errno);
        return false;
    }
    return true;
}

std::optional<std::string> resolve_secret(const std::string& value, const std::string& credentials_directory,
                                          bool read, std::string& error) {
    std::optional<std::string> secret;
    if (value.starts_with("credential:")) {
        if (read && credentials_directory.empty()) {
            error = "credential: needs $CREDENTIALS_DIRECTORY (set LoadCredential= in the unit)";
            return std::nullopt;
        }
        secret = read ? read_credential(credentials_directory, value.substr(11), error) : std::string();
    } else if (value.starts_with("file:")) {
        if (value.size() < 6 || value[5] != '/') {
            error = "'" + value.substr(5) + "' is not an absolute path";
            return std::nullopt;
        }
        secret = read ? read_password_file(value.substr(5), error) : std::string();
    } else {
        error = "expected credential:NAME or file:PATH (a secret's value is never written in the config)";
        return std::nullopt;
    }
    if (secret && !text::valid_utf8(*secret)) {
        error = "the secret is not valid UTF-8 (steps get it in their environment, over D-Bus)";
        return std::nullopt;
    }
    if (secret && secret->find('\0') != std::string::npos) {
        error = "the secret contains a NUL byte, which no environment variable can hold";
        return std::nullopt;
    }
    return secret;
}

std::optional<uid_t> resolve_uid(const std::string& text, std::string& error) {
    if (const auto number = parse_uint(text, std::numeric_limits<uid_t>::max() - 1)) {
        return static_cast<uid_t>(*number);
    }
    long size = sysconf(_SC_GETPW_R_SIZE_MAX);
    std::string buffer(size > 0 ? static_cast<std::size_t>(size) : 1024, '\0');
    while (true) {
        passwd pw{};
        passwd* found = nullptr;
        const int r = getpwnam_r(text.c_str(), &pw, buffer.data(), buffer.size(), &found);
        if (r == ERANGE && buffer.size() < (1u << 20)) {
            buffer.resize(buffer.size() * 2);
            continue;
        }
        if (r != 0) {
            error = "cannot look up user '" + text + "': " + errno_message(r);
            return std::nullopt;
        }
        if (!found) {
            error = "unknown user '" + text + "'";
            return std::nullopt;
        }
        return found->pw_uid;
    }
}

}  // namespace by::config::detail
