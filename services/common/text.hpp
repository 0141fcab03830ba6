// Text that came from outside (config files, bus callers, backends) on its
// way to places with rules of their own: D-Bus and JSON strings must be
// UTF-8, and a log line must stay one line of bounded length.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace by::text {

// Whether `s` is well-formed UTF-8 (no overlong forms, no surrogates, no
// code point past U+10FFFF). NUL bytes are valid UTF-8.
bool valid_utf8(std::string_view s);
// Offset of the first byte that is not part of well-formed UTF-8, or npos.
std::size_t first_invalid_utf8(std::string_view s);

// `s` with every ill-formed byte replaced by U+FFFD: safe for D-Bus and JSON.
std::string to_utf8(std::string_view s);

// `s` for a log line: control characters, backslashes and bytes that are not
// UTF-8 as \xNN (\n, \t as such), and at most `max` bytes of `s` shown, with
// the length of the rest said. Never contains a newline.
std::string for_log(std::string_view s, std::size_t max = 256);

// nlohmann::json::dump that cannot throw: ill-formed UTF-8 in a string
// becomes U+FFFD instead of a type_error. Every JSON producer uses it.
std::string json_dump(const nlohmann::json& j, int indent = -1);

}  // namespace by::text
