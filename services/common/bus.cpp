#include "common/bus.hpp"

#include <cstdlib>
#include <ctime>

#include "common/text.hpp"

namespace by::bus {

int set_error(sd_bus_error* e, const char* name, std::string_view message) {
    return sd_bus_error_set(e, name, text::to_utf8(message).c_str());
}

int read_string_map(sd_bus_message* m, StringMap& out) {
    int r = sd_bus_message_enter_container(m, 'a', "{ss}");
    if (r < 0) {
        return r;
    }
    const char* k = nullptr;
    const char* v = nullptr;
    while ((r = sd_bus_message_read(m, "{ss}", &k, &v)) > 0) {
        out[k] = v;
    }
    if (r < 0) {
        return r;
    }
    return sd_bus_message_exit_container(m);
}

int append_string_map(sd_bus_message* m, const StringMap& map) {
    int r = sd_bus_message_open_container(m, 'a', "{ss}");
    if (r < 0) {
        return r;
    }
    for (const auto& [k, v] : map) {
        r = sd_bus_message_append(m, "{ss}", k.c_str(), v.c_str());
        if (r < 0) {
            return r;
        }
    }
    return sd_bus_message_close_container(m);
}

int read_strv(sd_bus_message* m, std::vector<std::string>& out) {
    int r = sd_bus_message_enter_container(m, 'a', "s");
    if (r < 0) {
        return r;
    }
    const char* s = nullptr;
    while ((r = sd_bus_message_read_basic(m, 's', &s)) > 0) {
        out.emplace_back(s);
    }
    if (r < 0) {
        return r;
    }
    return sd_bus_message_exit_container(m);
}

int append_strv(sd_bus_message* m, const std::vector<std::string>& v) {
    int r = sd_bus_message_open_container(m, 'a', "s");
    if (r < 0) {
        return r;
    }
    for (const auto& s : v) {
        r = sd_bus_message_append_basic(m, 's', s.c_str());
        if (r < 0) {
            return r;
        }
    }
    return sd_bus_message_close_container(m);
}

std::string path_encode(const char* prefix, const std::string& id) {
    char* p = nullptr;
    if (sd_bus_path_encode(prefix, id.c_str(), &p) < 0 || !p) {
        return {};
    }
    std::string s = p;
    std::free(p);
    return s;
}

std::optional<std::string> path_decode(const char* path, const char* prefix) {
    char* id = nullptr;
    int r = sd_bus_path_decode(path, prefix, &id);
    if (r <= 0 || !id) {
        return std::nullopt;
    }
    std::string s = id;
    std::free(id);
    // sd_bus_path_decode() also takes escapes that sd_bus_path_encode()
    // never writes ("_62ot1", or "1" for "_31"): one object, one path.
    if (path_encode(prefix, s) != path) {
        return std::nullopt;
    }
    return s;
}

int open_system(BusPtr& out) {
    sd_bus* b = nullptr;
    int r = sd_bus_open_system(&b);
    if (r < 0) {
        return r;
    }
    out.reset(b);
    return 0;
}

uint64_t now_realtime_usec() {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
}

}  // namespace by::bus
