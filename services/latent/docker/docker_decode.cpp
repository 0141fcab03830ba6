#include "latent/docker/docker_decode.hpp"

namespace by::latent::docker {

namespace {

Json parse(std::string_view body) { return Json::parse(body.begin(), body.end(), nullptr, false); }

// Member `key` of `j` if `j` is an object that has it, else nullptr; valid
// as long as `j` is (never a temporary).
const Json* member(const Json& j, const char* key) {
    if (!j.is_object()) {
        return nullptr;
    }
    const auto it = j.find(key);
    return it == j.end() ? nullptr : &*it;
}

std::string string_or(const Json& j, const char* key, std::string fallback = "") {
    const Json* v = member(j, key);
    return v && v->is_string() ? v->get<std::string>() : fallback;
}

// A field of another type than the API's is as good as absent: json's
// value() would throw type_error for it.
bool bool_or(const Json& j, const char* key, bool fallback) {
    const Json* v = member(j, key);
    return v && v->is_boolean() ? v->get<bool>() : fallback;
}

std::map<std::string, std::string> labels_of(const Json* j) {
    std::map<std::string, std::string> out;
    if (j && j->is_object()) {
        for (const auto& [k, v] : j->items()) {
            if (v.is_string()) {
                out[k] = v.get<std::string>();
            }
        }
    }
    return out;
}

std::vector<std::string> strings_of(const Json* j) {
    std::vector<std::string> out;
    if (!j) {
        return out;
    }
    if (j->is_array()) {
        for (const auto& v : *j) {
            if (v.is_string()) {
                out.push_back(v.get<std::string>());
            }
        }
    } else if (j->is_string() && !j->get<std::string>().empty()) {
        out.push_back(j->get<std::string>());
    }
    return out;
}

std::string without_slash(std::string name) {
    if (!name.empty() && name.front() == '/') {
        name.erase(0, 1);
    }
    return name;
}

}  // namespace

std::string body_excerpt(std::string_view s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) {
        s.remove_suffix(1);
    }
    return std::string(s.substr(0, 2000));
}

std::string error_message(std::string_view body) {
    const Json j = parse(body);
    const Json* m = member(j, "message");
    return m && m->is_string() ? m->get<std::string>() : body_excerpt(body);
}

// An engine that sends an empty Version is as unknown as one that sends none:
// the status line and the log print it, and "" reads as a bug of ours.
std::string decode_version(std::string_view body) {
    std::string version = string_or(parse(body), "Version");
    return version.empty() ? "unknown" : version;
}

std::optional<std::string> decode_created_id(std::string_view body) {
    std::string id = string_or(parse(body), "Id");
    return id.empty() ? std::nullopt : std::optional(std::move(id));
}

std::optional<ContainerState> decode_container(std::string_view body) {
    const Json j = parse(body);
    const Json* state = member(j, "State");
    if (!state || !state->is_object()) {
        return std::nullopt;
    }
    ContainerState s;
    s.exists = true;
    s.id = string_or(j, "Id");
    s.name = without_slash(string_or(j, "Name"));
    s.status = string_or(*state, "Status");
    s.running = bool_or(*state, "Running", false);
    s.oom_killed = bool_or(*state, "OOMKilled", false);
    const Json* code = member(*state, "ExitCode");
    s.exit_code = code && code->is_number_integer() ? code->get<int64_t>() : 0;
    s.error = string_or(*state, "Error");
    if (const Json* config = member(j, "Config")) {
        s.tty = bool_or(*config, "Tty", false);
        s.labels = labels_of(member(*config, "Labels"));
    }
    return s;
}

std::optional<int64_t> decode_wait(std::string_view body) {
    const Json j = parse(body);
    const Json* code = member(j, "StatusCode");
    if (!code || !code->is_number_integer()) {
        return std::nullopt;
    }
    return code->get<int64_t>();
}

std::optional<std::vector<ContainerSummary>> decode_container_list(std::string_view body) {
    const Json j = parse(body);
    if (!j.is_array()) {
        return std::nullopt;
    }
    std::vector<ContainerSummary> out;
    for (const auto& c : j) {
        ContainerSummary s;
        s.id = string_or(c, "Id");
        for (const auto& name : strings_of(member(c, "Names"))) {
            s.names.push_back(without_slash(name));
        }
        s.state = string_or(c, "State");
        s.labels = labels_of(member(c, "Labels"));
        if (!s.id.empty()) {
            out.push_back(std::move(s));
        }
    }
    return out;
}

ImageInfo decode_image(std::string_view body) {
    const Json j = parse(body);
    ImageInfo info;
    info.exists = true;
    info.id = string_or(j, "Id");
    if (const Json* config = member(j, "Config")) {
        info.entrypoint = strings_of(member(*config, "Entrypoint"));
    }
    return info;
}

std::optional<std::string> decode_pull_error(std::string_view body) {
    std::size_t from = 0;
    while (from < body.size()) {
        auto end = body.find('\n', from);
        if (end == std::string_view::npos) {
            end = body.size();
        }
        const Json line = parse(body.substr(from, end - from));
        const Json* e = member(line, "error");
        if (e) {
            // A parsed document holds only valid UTF-8, so dump() cannot throw.
            return e->is_string() ? e->get<std::string>() : e->dump();
        }
        from = end + 1;
    }
    return std::nullopt;
}

}  // namespace by::latent::docker
