#include "common/handshake_messages.hpp"

#include <fmt/format.h>

#include "common/config_values.hpp"

namespace by::handshake {

namespace {

int read_bytes(sd_bus_message* m, crypto::Bytes& out) {
    const void* data = nullptr;
    size_t size = 0;
    int r = sd_bus_message_read_array(m, 'y', &data, &size);
    if (r < 0) {
        return r;
    }
    const auto* p = static_cast<const uint8_t*>(data);
    out.assign(p, p + size);
    return 1;
}

}  // namespace

int read_hello(sd_bus_message* m, Hello& out, std::string& error) {
    const char* name = nullptr;
    int r = sd_bus_message_read(m, "s", &name);
    if (r < 0) return r;
    if ((r = read_bytes(m, out.worker_nonce)) < 0) return r;
    if ((r = read_bytes(m, out.channel_binding)) < 0) return r;
    out.name = name;
    if (out.worker_nonce.size() != crypto::nonce_size) {
        error = fmt::format("worker_nonce must be {} bytes.", crypto::nonce_size);
        return 0;
    }
    return 1;
}

int read_authenticate(sd_bus_message* m, Authenticate& out, std::string&) {
    int r = read_bytes(m, out.proof);
    if (r < 0) return r;
    if ((r = bus::read_string_map(m, out.info)) < 0) return r;
    return 1;
}

int read_hello_reply(sd_bus_message* m, crypto::Bytes& master_nonce, std::string& error) {
    int r = read_bytes(m, master_nonce);
    if (r < 0) return r;
    if (master_nonce.size() != crypto::nonce_size) {
        error = fmt::format("master_nonce is {} bytes, not {}", master_nonce.size(), crypto::nonce_size);
        return 0;
    }
    return 1;
}

int read_accepted(sd_bus_message* m, Accepted& out, std::string& error) {
    int r = read_bytes(m, out.master_proof);
    if (r < 0) return r;
    const char* path = nullptr;
    if ((r = sd_bus_message_read(m, "o", &path)) < 0) return r;
    out.worker_path = path;
    bus::StringMap settings;
    if ((r = bus::read_string_map(m, settings)) < 0) return r;
    out.keepalive_interval = 0;
    if (auto it = settings.find("keepalive_interval"); it != settings.end()) {
        // What a master can be configured with: the worker times twice the
        // interval in microseconds, which must not wrap around.
        const auto seconds = config::detail::parse_uint(it->second, config::detail::max_seconds);
        if (!seconds) {
            error = fmt::format("keepalive_interval '{}' is not a number of seconds up to {}",
                                it->second.substr(0, 40), config::detail::max_seconds);
            return 0;
        }
        out.keepalive_interval = *seconds;
    }
    return 1;
}

}  // namespace by::handshake
