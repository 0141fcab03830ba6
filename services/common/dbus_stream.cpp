#include "common/dbus_stream.hpp"

#include <algorithm>
#include <cstring>

namespace by {

namespace {

uint32_t u32(const unsigned char* p, bool little) {
    return little ? uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24
                  : uint32_t(p[3]) | uint32_t(p[2]) << 8 | uint32_t(p[1]) << 16 | uint32_t(p[0]) << 24;
}

}  // namespace

uint64_t DbusStream::declared_length(const unsigned char (&header)[fixed_header]) {
    // As sd-bus reads it (bus_socket_read_message_need): the fixed header,
    // the header fields padded to 8, the body.
    if (header[0] != 'l' && header[0] != 'B') {
        return 0;
    }
    const bool little = header[0] == 'l';
    const uint64_t body = u32(header + 4, little);
    const uint64_t fields = u32(header + 12, little);
    return fixed_header + ((fields + 7) & ~uint64_t(7)) + body;
}

// A line ends at the first "\r\n" (sd-bus's auth lines); the stream's
// messages start after the line that is exactly "BEGIN".
void DbusStream::line_byte(char c) {
    if (c == '\n' && line_len_ > 0 && line_[line_len_ - 1] == '\r') {
        const bool begin = !line_long_ && line_len_ == 6 && std::memcmp(line_, "BEGIN\r", 6) == 0;
        line_len_ = 0;
        line_long_ = false;
        if (begin) {
            state_ = State::header;
            header_len_ = 0;
        }
        return;
    }
    if (line_len_ == sizeof line_) {
        // Too long to be BEGIN; keep the last byte to see the "\r\n".
        line_long_ = true;
        line_[0] = line_[line_len_ - 1];
        line_len_ = 1;
    }
    line_[line_len_++] = c;
}

void DbusStream::feed(const char* data, size_t n) {
    const auto* p = reinterpret_cast<const unsigned char*>(data);
    const auto* end = p + n;
    while (p < end) {
        switch (state_) {
        case State::nul:
            // The client's first byte is a NUL (the credentials byte).
            state_ = *p == 0 ? State::lines : State::lost;
            ++p;
            ++fed_;
            break;
        case State::lines:
            line_byte(static_cast<char>(*p));
            ++p;
            ++fed_;
            break;
        case State::header: {
            if (header_len_ == 0) {
                message_start_ = fed_;
            }
            const size_t take = std::min<size_t>(fixed_header - header_len_, static_cast<size_t>(end - p));
            std::memcpy(header_ + header_len_, p, take);
            header_len_ += take;
            p += take;
            fed_ += take;
            if (header_len_ == fixed_header) {
                const uint64_t length = declared_length(header_);
                if (length == 0) {
                    state_ = State::lost;
                    break;
                }
                declared_end_ = message_start_ + length;
                state_ = State::body;
            }
            break;
        }
        case State::body: {
            const uint64_t take = std::min<uint64_t>(declared_end_ - fed_, static_cast<uint64_t>(end - p));
            p += take;
            fed_ += take;
            if (fed_ == declared_end_) {
                state_ = State::header;
                header_len_ = 0;
            }
            break;
        }
        case State::lost:
            fed_ += static_cast<uint64_t>(end - p);
            p = end;
            break;
        }
    }
}

}  // namespace by
