#include "latent/openstack/openstack_cloud.hpp"

#include <functional>
#include <set>

#include <yaml-cpp/yaml.h>

namespace by::latent::openstack {

namespace {

std::string at(const YAML::Node& n) {
    const auto mark = n.Mark();
    return mark.line >= 0 ? " (line " + std::to_string(mark.line + 1) + ")" : "";
}

// A scalar value of `key` under `map`, or empty; a non-scalar is an error.
bool scalar(const YAML::Node& map, const char* key, const std::string& where, std::string& out, std::string& error) {
    const YAML::Node n = map[key];
    if (!n || n.IsNull()) {
        return true;
    }
    if (!n.IsScalar()) {
        error = where + key + " is not a single value" + at(n);
        return false;
    }
    out = n.Scalar();
    return true;
}

std::string trimmed(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ' || s.back() == '\t')) {
        s.pop_back();
    }
    return s;
}

// "https://h:5000" -> "https://h:5000/v3"; "https://h/identity/v3/" -> "https://h/identity/v3".
std::optional<std::string> v3_url(std::string url) {
    while (!url.empty() && url.back() == '/') {
        url.pop_back();
    }
    if (!url.starts_with("http://") && !url.starts_with("https://")) {
        return std::nullopt;
    }
    const auto slash = url.rfind('/');
    const std::string last = url.substr(slash + 1);
    if (last == "v3") {
        return url;
    }
    if (last.size() >= 2 && last[0] == 'v' && last[1] >= '0' && last[1] <= '9' && slash > url.find("//") + 1) {
        return std::nullopt;  // v2.0: gone from Keystone
    }
    return url + "/v3";
}

}  // namespace

std::string Cloud::session_key() const {
    const std::string secret_text = auth_type == AuthType::password ? password : application_credential_secret;
    std::string key;
    for (const std::string* s : {&name, &auth_url, &username, &user_id, &user_domain_name, &user_domain_id,
                                 &project_name, &project_id, &project_domain_name, &project_domain_id,
                                 &application_credential_id, &application_credential_name, &region_name,
                                 &interface, &ca_file}) {
        key += *s;
        key += '\x1f';
    }
    key += auth_type == AuthType::password ? "p" : "a";
    key += verify ? "v" : "n";
    key += std::to_string(std::hash<std::string>{}(secret_text));
    return key;
}

std::optional<Cloud> parse_clouds_yaml(std::string_view yaml, const std::string& cloud,
                                       const std::optional<std::string>& secret, std::string& error) {
    error.clear();
    YAML::Node root;
    try {
        root = YAML::Load(std::string(yaml));
    } catch (const YAML::Exception& e) {
        error = "not YAML: " + e.msg + (e.mark.line >= 0 ? " (line " + std::to_string(e.mark.line + 1) + ")" : "");
        return std::nullopt;
    }
    try {
        const YAML::Node clouds = root.IsMap() ? root["clouds"] : YAML::Node();
        if (!clouds || !clouds.IsMap()) {
            error = "no clouds: map at the top";
            return std::nullopt;
        }
        const YAML::Node entry = clouds[cloud];
        if (!entry || !entry.IsMap()) {
            std::string names;
            for (const auto& kv : clouds) {
                names += (names.empty() ? "" : ", ") + kv.first.as<std::string>();
            }
            error = "no cloud named '" + cloud + "' under clouds: (it has: " + (names.empty() ? "none" : names) + ")";
            return std::nullopt;
        }
        const std::string where = "clouds." + cloud + ".";
        Cloud c;
        c.name = cloud;
        std::string auth_type = "password";
        std::string identity_version;
        std::string verify;
        if (!scalar(entry, "auth_type", where, auth_type, error) || !scalar(entry, "region_name", where, c.region_name, error) ||
            !scalar(entry, "interface", where, c.interface, error) || !scalar(entry, "cacert", where, c.ca_file, error) ||
            !scalar(entry, "verify", where, verify, error) ||
            !scalar(entry, "identity_api_version", where, identity_version, error)) {
            return std::nullopt;
        }
        if (auth_type == "password" || auth_type == "v3password") {
            c.auth_type = AuthType::password;
        } else if (auth_type == "v3applicationcredential" || auth_type == "application_credential") {
            c.auth_type = AuthType::application_credential;
        } else {
            error = where + "auth_type: '" + auth_type +
                    "' is not supported (password, v3password, v3applicationcredential)" + at(entry["auth_type"]);
            return std::nullopt;
        }
        if (!identity_version.empty() && identity_version != "3") {
            error = where + "identity_api_version: only 3 is supported" + at(entry["identity_api_version"]);
            return std::nullopt;
        }
        if (c.interface.ends_with("URL")) {
            c.interface.resize(c.interface.size() - 3);  // publicURL, as older files write it
        }
        if (c.interface != "public" && c.interface != "internal" && c.interface != "admin") {
            error = where + "interface: '" + c.interface + "' is not public, internal or admin" + at(entry["interface"]);
            return std::nullopt;
        }
        if (verify == "false" || verify == "False" || verify == "no") {
            c.verify = false;
        } else if (!verify.empty() && verify != "true" && verify != "True" && verify != "yes") {
            error = where + "verify: expected true or false" + at(entry["verify"]);
            return std::nullopt;
        }

        const YAML::Node auth = entry["auth"];
        if (!auth || !auth.IsMap()) {
            error = where + "auth is not set" + at(entry);
            return std::nullopt;
        }
        const std::string aw = where + "auth.";
        std::string domain_name, domain_id, auth_url;
        const std::pair<const char*, std::string*> keys[] = {
            {"auth_url", &auth_url},
            {"username", &c.username},
            {"user_id", &c.user_id},
            {"user_domain_name", &c.user_domain_name},
            {"user_domain_id", &c.user_domain_id},
            {"password", &c.password},
            {"project_name", &c.project_name},
            {"project_id", &c.project_id},
            {"tenant_name", &c.project_name},
            {"tenant_id", &c.project_id},
            {"project_domain_name", &c.project_domain_name},
            {"project_domain_id", &c.project_domain_id},
            {"domain_name", &domain_name},
            {"domain_id", &domain_id},
            {"application_credential_id", &c.application_credential_id},
            {"application_credential_name", &c.application_credential_name},
            {"application_credential_secret", &c.application_credential_secret},
        };
        std::set<std::string> known;
        for (const auto& [key, out] : keys) {
            known.insert(key);
            if (!scalar(auth, key, aw, *out, error)) {
                return std::nullopt;
            }
        }
        for (const auto& kv : auth) {
            const std::string key = kv.first.as<std::string>();
            if (!known.contains(key)) {
                error = aw + key + ": not a key this backend reads" + at(kv.first);
                return std::nullopt;
            }
        }
        if (auth_url.empty()) {
            error = aw + "auth_url is not set" + at(auth);
            return std::nullopt;
        }
        auto url = v3_url(auth_url);
        if (!url) {
            error = aw + "auth_url: '" + auth_url + "' is not an http(s) URL of Keystone's v3 API" + at(auth["auth_url"]);
            return std::nullopt;
        }
        c.auth_url = *url;
        // As keystoneauth: domain_* also stand for the user's and project's
        // domains when these are not given.
        if (c.user_domain_name.empty() && c.user_domain_id.empty()) {
            c.user_domain_name = domain_name;
            c.user_domain_id = domain_id;
        }
        if (c.project_domain_name.empty() && c.project_domain_id.empty()) {
            c.project_domain_name = domain_name;
            c.project_domain_id = domain_id;
        }
        std::string& secret_field =
            c.auth_type == AuthType::password ? c.password : c.application_credential_secret;
        if (secret) {
            secret_field = trimmed(*secret);
        }
        const bool has_user = !c.username.empty() || !c.user_id.empty();
        const bool user_domain = !c.user_id.empty() || !c.user_domain_name.empty() || !c.user_domain_id.empty();
        if (c.auth_type == AuthType::password) {
            if (!has_user) {
                error = aw + "username (or user_id) is not set" + at(auth);
            } else if (!user_domain) {
                error = aw + "user_domain_name (or user_domain_id, or domain_name) is needed with username" + at(auth);
            } else if (c.project_name.empty() && c.project_id.empty()) {
                error = aw + "project_name (or project_id) is not set: servers belong to a project" + at(auth);
            } else if (c.project_id.empty() && c.project_domain_name.empty() && c.project_domain_id.empty()) {
                error = aw + "project_domain_name (or project_domain_id, or domain_name) is needed with project_name" +
                        at(auth);
            } else if (c.password.empty()) {
                error = aw + "password is not set" + (secret ? " (the credential is empty)" : "") + at(auth);
            }
        } else {
            if (c.application_credential_id.empty() && c.application_credential_name.empty()) {
                error = aw + "application_credential_id (or application_credential_name) is not set" + at(auth);
            } else if (c.application_credential_id.empty() && (!has_user || !user_domain)) {
                error = aw + "application_credential_name needs username and user_domain_name (or user_id)" + at(auth);
            } else if (c.application_credential_secret.empty()) {
                error = aw + "application_credential_secret is not set" + (secret ? " (the credential is empty)" : "") +
                        at(auth);
            }
        }
        if (!error.empty()) {
            return std::nullopt;
        }
        return c;
    } catch (const YAML::Exception& e) {
        error = "unexpected YAML: " + e.msg;
        return std::nullopt;
    }
}

}  // namespace by::latent::openstack
