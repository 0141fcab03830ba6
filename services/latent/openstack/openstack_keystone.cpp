// Keystone's token request and answer, the catalog's endpoints and Nova's
// microversion (openstack_api.hpp); free of I/O.
#include "latent/openstack/openstack_api.hpp"

#include <algorithm>
#include <set>

#include "latent/http_call.hpp"

namespace by::latent::openstack {

using nlohmann::json;

namespace {

json domain(const std::string& name, const std::string& id) {
    return id.empty() ? json{{"name", name}} : json{{"id", id}};
}

json user(const Cloud& c) {
    json u = json::object();
    if (!c.user_id.empty()) {
        u["id"] = c.user_id;
    } else {
        u["name"] = c.username;
        u["domain"] = domain(c.user_domain_name, c.user_domain_id);
    }
    return u;
}

std::string strip_slashes(std::string url) {
    while (!url.empty() && url.back() == '/') {
        url.pop_back();
    }
    return url;
}

}  // namespace

json token_request(const Cloud& c) {
    json identity;
    if (c.auth_type == AuthType::password) {
        json u = user(c);
        u["password"] = c.password;
        identity = {{"methods", {"password"}}, {"password", {{"user", u}}}};
    } else {
        json ac = {{"secret", c.application_credential_secret}};
        if (!c.application_credential_id.empty()) {
            ac["id"] = c.application_credential_id;
        } else {
            ac["name"] = c.application_credential_name;
            ac["user"] = user(c);
        }
        identity = {{"methods", {"application_credential"}}, {"application_credential", ac}};
    }
    json auth = {{"identity", identity}};
    if (c.auth_type == AuthType::password) {
        json project = json::object();
        if (!c.project_id.empty()) {
            project["id"] = c.project_id;
        } else {
            project["name"] = c.project_name;
            project["domain"] = domain(c.project_domain_name, c.project_domain_id);
        }
        auth["scope"] = {{"project", project}};
    }
    return {{"auth", auth}};
}

std::optional<Token> parse_token(std::string_view body, const std::string& subject_token, std::string& error) {
    const auto j = json::parse(body, nullptr, false);
    if (!j.is_object() || !j.contains("token") || !j["token"].is_object()) {
        error = "Keystone's answer has no token object";
        return std::nullopt;
    }
    const json& t = j["token"];
    Token token;
    token.id = subject_token;
    const auto expires = parse_iso8601(str(t, "expires_at"));
    const auto issued = parse_iso8601(str(t, "issued_at"));
    if (token.id.empty() || !expires) {
        error = "Keystone's answer lacks the X-Subject-Token header or token.expires_at";
        return std::nullopt;
    }
    token.expires_at = *expires;
    token.issued_at = issued.value_or(*expires);
    if (t.contains("project") && t["project"].is_object()) {
        token.project_id = str(t["project"], "id");
    }
    if (t.contains("catalog") && t["catalog"].is_array()) {
        for (const auto& s : t["catalog"]) {
            Service service;
            service.type = str(s, "type");
            if (s.is_object() && s.contains("endpoints") && s["endpoints"].is_array()) {
                for (const auto& e : s["endpoints"]) {
                    const std::string region = str(e, "region_id").empty() ? str(e, "region") : str(e, "region_id");
                    service.endpoints.push_back({str(e, "interface"), region, str(e, "url")});
                }
            }
            token.catalog.push_back(std::move(service));
        }
    }
    if (token.catalog.empty()) {
        error = "Keystone's token has no service catalog (is it scoped to a project?)";
        return std::nullopt;
    }
    return token;
}

bool token_fresh(const Token& token, int64_t now) {
    const int64_t life = std::max<int64_t>(token.expires_at - token.issued_at, 0);
    const int64_t margin = std::min<int64_t>(life / 2, 300);
    return now < token.expires_at - margin;
}

std::optional<std::string> endpoint_url(const std::vector<Service>& catalog, const std::string& type,
                                        const std::string& interface, const std::string& region,
                                        std::string& error) {
    std::vector<const Endpoint*> matches;
    std::set<std::string> offered;
    for (const auto& s : catalog) {
        if (s.type != type) {
            continue;
        }
        for (const auto& e : s.endpoints) {
            offered.insert(e.interface + " in " + (e.region.empty() ? "no region" : e.region));
            if (e.interface == interface && (region.empty() || e.region == region) && !e.url.empty()) {
                matches.push_back(&e);
            }
        }
    }
    std::set<std::string> regions;
    for (const auto* e : matches) {
        regions.insert(e->region);
    }
    const std::string wanted = "a " + type + " endpoint with interface " + interface +
                               (region.empty() ? "" : " in region " + region);
    if (matches.empty()) {
        std::string list;
        for (const auto& o : offered) {
            list += (list.empty() ? "" : ", ") + o;
        }
        error = "the service catalog has no " + wanted.substr(2) +
                (offered.empty() ? " (no " + type + " service at all)" : " (it has: " + list + ")");
        return std::nullopt;
    }
    if (regions.size() > 1) {
        std::string list;
        for (const auto& r : regions) {
            list += (list.empty() ? "" : ", ") + r;
        }
        error = "the service catalog has " + wanted + " in several regions (" + list +
                "): set region_name in clouds.yaml";
        return std::nullopt;
    }
    return strip_slashes(matches.front()->url);
}

std::optional<std::pair<unsigned, unsigned>> parse_microversion(std::string_view text) {
    const auto dot = text.find('.');
    if (dot == std::string_view::npos || dot == 0 || dot + 1 == text.size() || text.size() > 12) {
        return std::nullopt;
    }
    unsigned parts[2] = {0, 0};
    for (int i = 0; i < 2; ++i) {
        const auto piece = i == 0 ? text.substr(0, dot) : text.substr(dot + 1);
        for (char c : piece) {
            if (c < '0' || c > '9') {
                return std::nullopt;
            }
            parts[i] = parts[i] * 10 + static_cast<unsigned>(c - '0');
        }
    }
    return std::pair{parts[0], parts[1]};
}

std::optional<std::string> choose_microversion(std::string_view document, std::string& error) {
    const auto j = json::parse(document, nullptr, false);
    json version;
    if (j.is_object() && j.contains("version") && j["version"].is_object()) {
        version = j["version"];
    } else if (j.is_object() && j.contains("versions") && j["versions"].is_array()) {
        for (const auto& v : j["versions"]) {
            if (str(v, "id") == "v2.1") {
                version = v;
            }
        }
    }
    if (!version.is_object()) {
        error = "Nova's version document names no v2.1 API";
        return std::nullopt;
    }
    const auto server_max = parse_microversion(str(version, "version"));
    const auto server_min = parse_microversion(str(version, "min_version"));
    const auto ours_min = parse_microversion(min_microversion);
    const auto ours_max = parse_microversion(max_microversion);
    if (!server_max) {
        error = "Nova's v2.1 API offers no microversions";
        return std::nullopt;
    }
    if (*server_max < *ours_min) {
        error = "Nova offers microversions up to " + str(version, "version") + "; the backend needs " +
                min_microversion + " or later";
        return std::nullopt;
    }
    auto chosen = std::min(*server_max, *ours_max);
    if (server_min && *server_min > chosen) {
        error = "Nova's lowest microversion " + str(version, "min_version") + " is past the backend's highest, " +
                max_microversion;
        return std::nullopt;
    }
    return std::to_string(chosen.first) + "." + std::to_string(chosen.second);
}

std::string version_url(const std::string& compute_url, const std::string& project_id) {
    std::string url = strip_slashes(compute_url);
    if (!project_id.empty() && url.ends_with("/" + project_id)) {
        url.resize(url.size() - project_id.size() - 1);
    }
    return url;
}

std::string with_version(const std::string& url, const std::string& version) {
    std::string u = strip_slashes(url);
    return u.ends_with("/" + version) ? u : u + "/" + version;
}

}  // namespace by::latent::openstack
