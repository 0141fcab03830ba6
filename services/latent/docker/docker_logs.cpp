// The engine's log stream: its demultiplexing and the tail of its text.
#include <algorithm>
#include <optional>

#include "latent/docker/docker_client.hpp"

namespace by::latent::docker {

namespace {

// The text of the frames from `at` on, if they end exactly at the end.
std::optional<std::string> frames_from(std::string_view raw, std::size_t at) {
    std::string out;
    while (at < raw.size()) {
        if (raw.size() - at < 8) {
            return std::nullopt;
        }
        const auto* h = reinterpret_cast<const unsigned char*>(raw.data() + at);
        if (h[0] > 2 || h[1] != 0 || h[2] != 0 || h[3] != 0) {
            return std::nullopt;
        }
        const std::size_t size = (std::size_t{h[4]} << 24) | (std::size_t{h[5]} << 16) | (std::size_t{h[6]} << 8) | h[7];
        if (raw.size() - at - 8 < size) {
            return std::nullopt;
        }
        out.append(raw.substr(at + 8, size));
        at += 8 + size;
    }
    return out;
}

}  // namespace

std::string demultiplex_logs(std::string_view raw, bool cut_head) {
    if (auto text = frames_from(raw, 0)) {
        return *text;
    }
    // A cut stream: the first whole frame is within one frame's length of
    // the start, and a frame is rarely longer than a line.
    const std::size_t search = cut_head ? std::min<std::size_t>(raw.size(), 1 << 20) : 0;
    for (std::size_t at = 1; at < search; ++at) {
        if (static_cast<unsigned char>(raw[at]) <= 2) {
            if (auto text = frames_from(raw, at)) {
                return *text;
            }
        }
    }
    return std::string(raw);  // not a multiplexed stream: a TTY's raw output
}

std::string last_lines(std::string_view text, std::size_t lines) {
    if (lines == 0) {
        return {};
    }
    std::size_t end = text.size();
    if (end > 0 && text[end - 1] == '\n') {
        --end;  // the final newline ends the last line, it does not start another
    }
    std::size_t seen = 0;
    for (std::size_t i = end; i > 0; --i) {
        if (text[i - 1] == '\n' && ++seen == lines) {
            return std::string(text.substr(i));
        }
    }
    return std::string(text);
}

}  // namespace by::latent::docker
