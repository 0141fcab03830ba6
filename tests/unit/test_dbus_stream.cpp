// DbusStream: what a peer's D-Bus stream declares, whatever pieces it
// arrives in.
#include <gtest/gtest.h>

#include <string>

#include "common/dbus_stream.hpp"

using by::DbusStream;

namespace {

// A message's fixed header: byte order, type 1 (call), flags, version 1,
// body length, serial, length of the header fields.
std::string header(uint32_t body, uint32_t fields, char order = 'l') {
    std::string h(DbusStream::fixed_header, '\0');
    h[0] = order;
    h[1] = 1;
    h[3] = 1;
    for (int i = 0; i < 4; ++i) {
        const int shift = order == 'l' ? 8 * i : 8 * (3 - i);
        h[4 + i] = static_cast<char>(body >> shift);
        h[8 + i] = static_cast<char>(1u >> shift);
        h[12 + i] = static_cast<char>(fields >> shift);
    }
    return h;
}

// A message of that shape: header, fields padded to 8, body.
std::string message(uint32_t body, uint32_t fields) {
    return header(body, fields) + std::string((fields + 7) / 8 * 8 + body, 'x');
}

const std::string auth = std::string(1, '\0') + "AUTH ANONYMOUS 74657374\r\nNEGOTIATE_UNIX_FD\r\nBEGIN\r\n";

void feed(DbusStream& s, const std::string& bytes) { s.feed(bytes.data(), bytes.size()); }

}  // namespace

TEST(DbusStream, DeclaredLengthIsHeaderPaddedFieldsAndBody) {
    const std::string little = header(127 * 1024 * 1024, 13);
    unsigned char h[DbusStream::fixed_header];
    std::copy(little.begin(), little.end(), h);
    EXPECT_EQ(DbusStream::declared_length(h), 16u + 16u + 127u * 1024 * 1024);
    const std::string big = header(5, 8, 'B');
    std::copy(big.begin(), big.end(), h);
    EXPECT_EQ(DbusStream::declared_length(h), 16u + 8u + 5u);
    h[0] = 'x';
    EXPECT_EQ(DbusStream::declared_length(h), 0u);
}

TEST(DbusStream, AuthenticationLinesCommitNothingAhead) {
    DbusStream s;
    feed(s, auth);
    EXPECT_EQ(s.fed(), auth.size());
    EXPECT_EQ(s.committed(), auth.size());
    EXPECT_EQ(s.message_length(), 0u);
    EXPECT_FALSE(s.lost());
}

TEST(DbusStream, AHeaderCommitsThePeerToTheWholeMessage) {
    DbusStream s;
    feed(s, auth + header(127 * 1024 * 1024, 0));
    EXPECT_EQ(s.message_start(), auth.size());
    EXPECT_EQ(s.message_length(), 16u + 127u * 1024 * 1024);
    EXPECT_EQ(s.committed(), auth.size() + 16 + 127u * 1024 * 1024);
}

TEST(DbusStream, FollowsMessagesOneAfterAnother) {
    DbusStream s;
    const std::string first = message(100, 61);  // fields padded to 64
    feed(s, auth + first);
    EXPECT_EQ(s.message_length(), 16u + 64 + 100);
    EXPECT_EQ(s.committed(), s.fed());
    feed(s, header(1000, 8));
    EXPECT_EQ(s.message_start(), auth.size() + first.size());
    EXPECT_EQ(s.committed(), auth.size() + first.size() + 16 + 8 + 1000);
    EXPECT_FALSE(s.lost());
}

TEST(DbusStream, TheSameWhateverPiecesTheBytesComeIn) {
    const std::string stream = auth + message(40, 20) + message(0, 8) + header(70000, 16);
    DbusStream whole;
    feed(whole, stream);
    for (size_t piece : {1u, 2u, 3u, 7u, 15u, 16u, 17u}) {
        DbusStream s;
        for (size_t i = 0; i < stream.size(); i += piece) {
            feed(s, stream.substr(i, piece));
        }
        EXPECT_EQ(s.committed(), whole.committed()) << "pieces of " << piece;
        EXPECT_EQ(s.message_start(), whole.message_start()) << "pieces of " << piece;
    }
    EXPECT_EQ(whole.committed(), stream.size() - 16 + 16 + 16 + 70000);
}

TEST(DbusStream, OnlyALineThatIsExactlyBeginStartsTheMessages) {
    for (const std::string line : {"BEGINX", "XBEGIN", "BEGIN \r", "BEGI", "begin"}) {
        DbusStream s;
        feed(s, std::string(1, '\0') + line + "\r\n" + header(1 << 20, 0));
        EXPECT_EQ(s.committed(), s.fed()) << line;
    }
    // "\r\n" ends a line; a bare "\n" does not.
    DbusStream s;
    feed(s, std::string(1, '\0') + "AUTH\nBEGIN\r\n" + header(1 << 20, 0));
    EXPECT_EQ(s.committed(), s.fed());
    DbusStream t;
    feed(t, std::string(1, '\0') + "AUTH ANONYMOUS\r\r\nBEGIN\r\n" + header(1 << 20, 0));
    EXPECT_GT(t.committed(), t.fed());
}

TEST(DbusStream, NotDbusIsNotFollowed) {
    DbusStream noNul;
    feed(noNul, "AUTH ANONYMOUS\r\nBEGIN\r\n" + header(1 << 20, 0));
    EXPECT_TRUE(noNul.lost());
    EXPECT_EQ(noNul.committed(), noNul.fed());
    DbusStream badOrder;
    feed(badOrder, auth + header(1 << 20, 0, 'x') + header(1 << 20, 0));
    EXPECT_TRUE(badOrder.lost());
    EXPECT_EQ(badOrder.committed(), badOrder.fed());
}
