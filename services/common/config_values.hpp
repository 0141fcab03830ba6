// Parsers and validators for single config values, shared by the master's
// and the worker's config loaders. Internal to services/common.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <sys/types.h>

namespace by::config::detail {

// Upper bound for every "seconds" setting: ten years. Anything larger is a
// typo, and would overflow once turned into microseconds for sd-event.
inline constexpr uint64_t max_seconds = 10ULL * 365 * 24 * 3600;

std::string_view trim(std::string_view s);

// Decimal digits only (no sign, no spaces), at most `max`.
std::optional<uint64_t> parse_uint(std::string_view s, uint64_t max);
// An optional '-' followed by decimal digits, within [min, max].
std::optional<int64_t> parse_int(std::string_view s, int64_t min, int64_t max);

// Splits a comma-separated value into trimmed entries. An empty (or blank)
// value gives no entries; empty entries ("a,,b", "a,") are kept as "" so the
// caller can report them.
std::vector<std::string> split_list(std::string_view s);

// KEY=VALUE items separated by commas (a cloud's tags or server metadata),
// in the order written: each key of 1 to `max_key` characters, each value of
// at most `max_value`, no key twice, none starting with one of `reserved`
// (`reserved_why` says whose they are). `noun` names an item in messages
// ("tag"). Returns what is wrong, or nothing.
std::optional<std::string> parse_key_values(std::string_view v, const std::string& noun, std::size_t max_key,
                                            std::size_t max_value, const std::vector<std::string>& reserved,
                                            const std::string& reserved_why,
                                            std::vector<std::pair<std::string, std::string>>& out);

// What is wrong with `name` as a systemd credential's name (from
// LoadCredential=, a file in $CREDENTIALS_DIRECTORY), or nothing.
std::optional<std::string> credential_name_problem(std::string_view name);

// A plain addr-spec: local@domain. See the comment in the .cpp for the rules.
bool valid_address(std::string_view address);

// A DNS host name (dot-separated labels of [A-Za-z0-9-], not starting or
// ending with '-') or an IPv4 literal.
bool valid_host_name(std::string_view host);

// property.KEY: KEY is non-empty [A-Za-z0-9_.-].
bool valid_property_key(std::string_view key);

// The text of errno `err`, as strerror gives it (thread-safe).
std::string errno_message(int err);

// Reads a whole file. On failure returns nullopt and sets `error` to the
// reason (strerror text or a size complaint).
std::optional<std::string> read_file(const std::string& path, std::size_t max_size, std::string& error);

// A secret from password_file (absolute path) or password_credential (a file
// in $CREDENTIALS_DIRECTORY). One trailing newline is stripped; an empty
// secret is an error. On failure returns nullopt and sets `error`.
std::optional<std::string> read_password_file(const std::string& path, std::string& error);
std::optional<std::string> read_credential(const std::string& credentials_directory, const std::string& name,
                                           std::string& error);

// The secret named by one of the keys password (the value itself),
// password_file or password_credential. nullopt with `error` set on failure.
std::optional<std::string> resolve_password(const std::string& key, const std::string& value,
                                            const std::string& credentials_directory, std::string& error);

// An absolute path this process can read; `error` says why not.
bool readable_path(const std::string& path, std::string& error);

// yes/no (also true/false, on/off, 1/0).
std::optional<bool> parse_yes_no(std::string_view s);

// A [builder] secret.KEY value: "credential:NAME" (a file in
// $CREDENTIALS_DIRECTORY) or "file:PATH" (absolute), read like a password
// file. A secret reaches the steps' environment over D-Bus, so it must be
// UTF-8 without NUL. With `read` false only the form is checked (and ""
// returned). nullopt with `error` set on failure.
std::optional<std::string> resolve_secret(const std::string& value, const std::string& credentials_directory,
                                          bool read, std::string& error);

// A user name or a numeric uid; nullopt with `error` set when unknown.
std::optional<uid_t> resolve_uid(const std::string& text, std::string& error);

}  // namespace by::config::detail
