#include "ctl/decode.hpp"

#include <string_view>

#include "common/bus.hpp"

namespace by::ctl {
namespace {

template <class Wire, class Held>
int read_basic(sd_bus_message* m, char type, Value& out) {
    Wire v{};
    int r = sd_bus_message_read_basic(m, type, &v);
    if (r < 0) {
        return r;
    }
    out = static_cast<Held>(v);
    return 0;
}

int read_contents(sd_bus_message* m, std::string_view sig, Value& out) {
    if (sig.size() == 1) {
        switch (sig[0]) {
        case 's':
        case 'o':
        case 'g': {
            const char* s = nullptr;
            int r = sd_bus_message_read_basic(m, sig[0], &s);
            if (r < 0) {
                return r;
            }
            out = std::string(s ? s : "");
            return 0;
        }
        case 'b': {
            int b = 0;  // sd-bus reads a D-Bus boolean into an int
            int r = sd_bus_message_read_basic(m, 'b', &b);
            if (r < 0) {
                return r;
            }
            out = b != 0;
            return 0;
        }
        case 'y': return read_basic<uint8_t, uint64_t>(m, 'y', out);
        case 'q': return read_basic<uint16_t, uint64_t>(m, 'q', out);
        case 'u': return read_basic<uint32_t, uint64_t>(m, 'u', out);
        case 't': return read_basic<uint64_t, uint64_t>(m, 't', out);
        case 'n': return read_basic<int16_t, int64_t>(m, 'n', out);
        case 'i': return read_basic<int32_t, int64_t>(m, 'i', out);
        case 'x': return read_basic<int64_t, int64_t>(m, 'x', out);
        case 'd': return read_basic<double, double>(m, 'd', out);
        default: break;
        }
    }
    if (sig == "as") {
        std::vector<std::string> v;
        int r = by::bus::read_strv(m, v);
        if (r < 0) {
            return r;
        }
        out = std::move(v);
        return 0;
    }
    if (sig == "a{ss}") {
        by::bus::StringMap map;
        int r = by::bus::read_string_map(m, map);
        if (r < 0) {
            return r;
        }
        out = StringMap(map.begin(), map.end());
        return 0;
    }
    out = std::monostate{};
    return sd_bus_message_skip(m, std::string(sig).c_str());
}

}  // namespace

int read_variant(sd_bus_message* m, Value& out) {
    char type = 0;
    const char* contents = nullptr;
    int r = sd_bus_message_peek_type(m, &type, &contents);
    if (r < 0) {
        return r;
    }
    if (r == 0 || type != SD_BUS_TYPE_VARIANT || !contents) {
        return -EBADMSG;
    }
    std::string sig = contents;  // contents points into the message; copy before reading on
    r = sd_bus_message_enter_container(m, SD_BUS_TYPE_VARIANT, sig.c_str());
    if (r < 0) {
        return r;
    }
    r = read_contents(m, sig, out);
    if (r < 0) {
        return r;
    }
    return sd_bus_message_exit_container(m);
}

int read_property_map(sd_bus_message* m, PropertyMap& out) {
    int r = sd_bus_message_enter_container(m, SD_BUS_TYPE_ARRAY, "{sv}");
    if (r < 0) {
        return r;
    }
    while ((r = sd_bus_message_enter_container(m, SD_BUS_TYPE_DICT_ENTRY, "sv")) > 0) {
        const char* name = nullptr;
        r = sd_bus_message_read_basic(m, 's', &name);
        if (r < 0) {
            return r;
        }
        std::string key = name;
        Value v;
        r = read_variant(m, v);
        if (r < 0) {
            return r;
        }
        out[key] = std::move(v);
        r = sd_bus_message_exit_container(m);
        if (r < 0) {
            return r;
        }
    }
    if (r < 0) {
        return r;
    }
    return sd_bus_message_exit_container(m);
}

}  // namespace by::ctl
