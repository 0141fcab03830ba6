// What a D-Bus peer's byte stream commits it to, read as the bytes arrive
// and before sd-bus sees them: the authentication lines up to BEGIN, then
// each message's fixed header, which declares the message's whole length.
//
// sd-bus has no cap on a message below its 128 MiB protocol maximum: once a
// header is in, it reallocates its read buffer to the declared length on
// every read until the body is complete. A tunnel that holds a peer to a
// budget before authentication (buildyard-protocol(7), "Transport
// security") reads the declaration here and refuses the message before its
// header reaches sd-bus.
// No I/O; tests/unit/test_dbus_stream.cpp.
#pragma once

#include <cstddef>
#include <cstdint>

namespace by {

class DbusStream {
public:
    // Takes the next `n` bytes of the stream, the first from its very start.
    void feed(const char* data, size_t n);

    // Bytes fed so far.
    uint64_t fed() const { return fed_; }
    // How far into the stream the peer is committed: the end of the message
    // whose header came last, or fed() if that is further (between messages,
    // during authentication, or once the stream is no longer followed).
    uint64_t committed() const { return declared_end_ > fed_ ? declared_end_ : fed_; }
    // The message whose header came last: where it starts and the length
    // it declares (header, fields and body). 0 and 0 before the first.
    uint64_t message_start() const { return message_start_; }
    uint64_t message_length() const { return declared_end_ - message_start_; }
    // The stream is not D-Bus as sd-bus reads it (no leading NUL byte, an
    // unknown byte order): nothing more is followed; sd-bus refuses it.
    bool lost() const { return state_ == State::lost; }

    // The fixed part of a message header, and the length of the whole
    // message that a header declares (0 for an unknown byte order).
    static constexpr size_t fixed_header = 16;
    static uint64_t declared_length(const unsigned char (&header)[fixed_header]);

private:
    enum class State { nul, lines, header, body, lost };

    void line_byte(char c);

    State state_ = State::nul;
    uint64_t fed_ = 0;
    // Authentication: the current line, as far as it could still be "BEGIN\r".
    char line_[6] = {};
    size_t line_len_ = 0;
    bool line_long_ = false;
    // Messages.
    unsigned char header_[fixed_header] = {};
    size_t header_len_ = 0;
    uint64_t message_start_ = 0;
    uint64_t declared_end_ = 0;
};

}  // namespace by
