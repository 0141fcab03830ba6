#include "common/database_uri.hpp"

#include <string_view>

namespace by::config {

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
    if (const auto q = rest.find('?'); q != std::string_view::npos) {
        std::string_view params = rest.substr(q + 1);
        while (!params.empty()) {
            const auto amp = params.find('&');
            const std::string_view param = params.substr(0, amp);
            if (param.substr(0, param.find('=')) == "password") {
                return no_password;
            }
            params = amp == std::string_view::npos ? std::string_view() : params.substr(amp + 1);
        }
    }
    return std::nullopt;
}

}  // namespace by::config
