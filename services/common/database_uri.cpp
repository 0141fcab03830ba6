#include "common/database_uri.hpp"

#include <string_view>

namespace by::config {

namespace {

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// A query parameter's name as libpq reads it: %XX decoded, so that
// `pass%77ord` is `password` here too. A malformed escape stays as it is
// (libpq refuses the URI).
std::string decoded(std::string_view name) {
    std::string out;
    for (size_t i = 0; i < name.size(); ++i) {
        if (name[i] == '%' && i + 2 < name.size()) {
            const int hi = hex_digit(name[i + 1]), lo = hex_digit(name[i + 2]);
            if (hi >= 0 && lo >= 0) {
                out.push_back(static_cast<char>(hi << 4 | lo));
                i += 2;
                continue;
            }
        }
        out.push_back(name[i]);
    }
    return out;
}

}  // namespace

std::optional<std::string> database_uri_problem(const std::string& value) {
    if (value == "sqlite") {
        return std::nullopt;
    }
    std::string_view rest;
    for (std::string_view scheme : {"postgresql://", "postgres://"}) {
        if (std::string_view(value).starts_with(scheme)) {
            rest = std::string_view(value).substr(scheme.size());
            break;
        }
    }
    if (rest.data() == nullptr) {
        return "expected sqlite or a PostgreSQL connection URI (postgresql://[user@][host][:port][/dbname][?param=value&...])";
    }
    // Never repeat the value: it may hold the very secret refused here.
    const std::string no_password =
        "the URI carries a password; give it in libpq's password file (PGPASSFILE, or ?passfile=PATH) or "
        "with database_password = credential:NAME, never in the config";
    // RFC 3986: the authority ends at the first '/', '?' or '#'; its user
    // part ends at the last '@' and holds a password after a ':'.
    const std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
    if (const auto at = authority.rfind('@');
        at != std::string_view::npos && authority.substr(0, at).find(':') != std::string_view::npos) {
        return no_password;
    }
    // libpq itself takes everything up to the first '@' before any '/' as
    // user[:password], '?' and '#' included.
    if (const auto at = rest.find_first_of("@/");
        at != std::string_view::npos && rest[at] == '@' && rest.substr(0, at).find(':') != std::string_view::npos) {
        return no_password;
    }
    if (const auto q = rest.find('?'); q != std::string_view::npos) {
        std::string_view params = rest.substr(q + 1);
        while (!params.empty()) {
            const auto amp = params.find('&');
            const std::string_view param = params.substr(0, amp);
            if (decoded(param.substr(0, param.find('='))) == "password") {
                return no_password;
            }
            params = amp == std::string_view::npos ? std::string_view() : params.substr(amp + 1);
        }
    }
    return std::nullopt;
}

}  // namespace by::config
