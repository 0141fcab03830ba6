#include "latent/openstack/openstack_api.hpp"

#include <algorithm>
#include <set>

#include "latent/http_call.hpp"

namespace by::latent::openstack {

using nlohmann::json;

namespace {

std::string str(const json& j, const char* key) {
    return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string();
}

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

std::string shortened(std::string s, std::size_t max = 300) {
    if (s.size() > max) {
        s.resize(max);
        s += "...";
    }
    return s;
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

std::optional<std::string> resolve(const std::string& what, const std::string& wanted,
                                   const std::vector<Named>& candidates, std::string& error) {
    std::vector<const Named*> named;
    for (const auto& c : candidates) {
        if (c.id == wanted) {
            return c.id;
        }
        if (c.name == wanted) {
            named.push_back(&c);
        }
    }
    if (named.size() == 1) {
        return named.front()->id;
    }
    if (named.empty()) {
        std::string list;
        std::size_t n = 0;
        for (const auto& c : candidates) {
            if (++n > 10) {
                list += ", ...";
                break;
            }
            list += (list.empty() ? "" : ", ") + c.name;
        }
        error = "no " + what + " named '" + wanted + "' or with that ID" +
                (candidates.empty() ? "" : " (the project sees: " + list + ")");
        return std::nullopt;
    }
    std::string ids;
    for (const auto* c : named) {
        ids += (ids.empty() ? "" : ", ") + c->id;
    }
    error = std::to_string(named.size()) + " " + what + "s are named '" + wanted + "' (" + ids +
            "): name one by its ID";
    return std::nullopt;
}

std::vector<Named> parse_named(std::string_view body, const std::string& key) {
    std::vector<Named> out;
    const auto j = json::parse(body, nullptr, false);
    auto add = [&](const json& item) {
        if (item.is_object() && !str(item, "id").empty()) {
            out.push_back({str(item, "id"), str(item, "name")});
        }
    };
    if (!j.is_object()) {
        return out;
    }
    if (j.contains(key) && j[key].is_array()) {
        for (const auto& item : j[key]) {
            add(item);
        }
    } else if (const std::string single = key.substr(0, key.size() - 1); j.contains(single)) {
        add(j[single]);
    } else {
        add(j);
    }
    return out;
}

Next classify(long status) {
    if (status >= 200 && status < 300) {
        return Next::done;
    }
    if (status == 401) {
        return Next::reauth;
    }
    if (status == 0 || status >= 500 || status == 409 || status == 429) {
        return Next::retry;
    }
    return Next::fail;
}

std::string error_message(std::string_view body) {
    const auto j = json::parse(body, nullptr, false);
    if (j.is_object()) {
        for (const auto& [key, value] : j.items()) {
            if (value.is_object() && !str(value, "message").empty()) {
                return shortened(str(value, "message"));
            }
            if (value.is_string() && (key == "message" || key == "error")) {
                return shortened(value.get<std::string>());
            }
        }
    }
    std::string text(body.substr(0, 300));
    std::replace_if(text.begin(), text.end(), [](char c) { return c == '\n' || c == '\r' || c == '\t'; }, ' ');
    return text.empty() ? "no error message" : text;
}

json create_request(const StartSpec& spec, const config::OpenStackOptions& o, const Resolved& r,
                    const std::string& user_data_base64) {
    json metadata = {{meta_owner, spec.tag.master}, {meta_worker, spec.tag.worker}, {meta_start, spec.tag.start}};
    for (const auto& [key, value] : o.metadata) {
        metadata[key] = value;
    }
    json server = {{"name", instance_name(spec.tag)},
                   {"flavorRef", r.flavor_id},
                   {"metadata", metadata},
                   {"user_data", user_data_base64}};
    if (r.network == "none" || r.network == "auto") {
        server["networks"] = r.network;
    } else {
        server["networks"] = json::array({{{"uuid", r.network}}});
    }
    if (o.volume_size_gib) {
        server["imageRef"] = "";
        server["block_device_mapping_v2"] = json::array({{{"boot_index", 0},
                                                          {"uuid", r.image_id},
                                                          {"source_type", "image"},
                                                          {"destination_type", "volume"},
                                                          {"volume_size", o.volume_size_gib},
                                                          {"delete_on_termination", true}}});
    } else {
        server["imageRef"] = r.image_id;
    }
    if (o.config_drive) {
        server["config_drive"] = true;
    }
    if (!o.availability_zone.empty()) {
        server["availability_zone"] = o.availability_zone;
    }
    if (!o.key_name.empty()) {
        server["key_name"] = o.key_name;
    }
    if (!o.security_groups.empty()) {
        json groups = json::array();
        for (const auto& g : o.security_groups) {
            groups.push_back({{"name", g}});
        }
        server["security_groups"] = groups;
    }
    return {{"server", server}};
}

Tag tag_of(const Server& s) {
    auto get = [&](const char* key) {
        auto it = s.metadata.find(key);
        return it == s.metadata.end() ? std::string() : it->second;
    };
    return {get(meta_owner), get(meta_worker), get(meta_start)};
}

bool tagged(const Server& s, const Tag& tag) { return tag_of(s) == tag; }

bool ending(const Server& s) {
    return s.status == "ERROR" || s.status == "DELETED" || s.status == "SOFT_DELETED" || s.status == "SHUTOFF" ||
           s.status == "SHELVED" || s.status == "SHELVED_OFFLOADED" || s.status == "SUSPENDED" ||
           s.task_state == "deleting";
}

std::string status_text(const Server& s) {
    std::string text = "server " + s.id + " is " + (s.status.empty() ? "in no state" : s.status);
    if (s.task_state == "deleting") {
        text += ", being deleted";
    }
    if (!s.fault.empty()) {
        text += " (" + s.fault + ")";
    }
    return text;
}

namespace {

std::optional<Server> server_of(const json& j) {
    if (!j.is_object() || str(j, "id").empty()) {
        return std::nullopt;
    }
    Server s;
    s.id = str(j, "id");
    s.name = str(j, "name");
    s.status = str(j, "status");
    s.task_state = str(j, "OS-EXT-STS:task_state");
    if (j.contains("fault") && j["fault"].is_object()) {
        s.fault = shortened(str(j["fault"], "message"), 1000);
    }
    if (j.contains("metadata") && j["metadata"].is_object()) {
        for (const auto& [key, value] : j["metadata"].items()) {
            if (value.is_string()) {
                s.metadata[key] = value.get<std::string>();
            }
        }
    }
    return s;
}

}  // namespace

std::optional<Server> parse_server(std::string_view body) {
    const auto j = json::parse(body, nullptr, false);
    if (!j.is_object() || !j.contains("server")) {
        return std::nullopt;
    }
    return server_of(j["server"]);
}

std::vector<Server> parse_servers(std::string_view body, std::string& next_marker, std::string& error) {
    std::vector<Server> out;
    next_marker.clear();
    const auto j = json::parse(body, nullptr, false);
    if (!j.is_object() || !j.contains("servers") || !j["servers"].is_array()) {
        error = "Nova's server list is not {\"servers\": [...]}";
        return out;
    }
    for (const auto& item : j["servers"]) {
        if (auto s = server_of(item)) {
            out.push_back(std::move(*s));
        }
    }
    if (j.contains("servers_links") && j["servers_links"].is_array()) {
        for (const auto& link : j["servers_links"]) {
            if (str(link, "rel") == "next" && !out.empty()) {
                next_marker = out.back().id;
            }
        }
    }
    return out;
}

}  // namespace by::latent::openstack
