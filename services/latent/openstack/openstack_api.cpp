// Names to IDs, which answers are retried, and Nova's server bodies
// (openstack_api.hpp); free of I/O. Keystone and the catalog:
// openstack_keystone.cpp.
#include "latent/openstack/openstack_api.hpp"

#include <algorithm>
#include <set>

#include "latent/http_call.hpp"

namespace by::latent::openstack {

using nlohmann::json;

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

std::optional<std::chrono::milliseconds> renewal_pause(unsigned refusals) {
    if (refusals == 1) {
        return std::chrono::milliseconds(0);
    }
    if (refusals == 2) {
        return std::chrono::milliseconds(1100);
    }
    return std::nullopt;
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
