// The mails the master sends, as complete RFC 5322 messages: a missing
// worker's notice and a build's result. Pure formatting, no I/O, so every
// header and line is unit-tested.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/build_limits.hpp"

namespace by::master {

// A message ready for SMTP: the envelope and the text (headers and body,
// CRLF line ends, every line at most 998 octets).
struct OutgoingMail {
    std::string from;
    std::vector<std::string> to;
    std::string subject;
    std::string text;
};

// What makes a message's Date and Message-ID.
struct MessageStamp {
    uint64_t now = 0;        // microseconds since the epoch
    std::string hostname;    // right side of the Message-ID
    std::string token;       // random, so the Message-ID is unique
};

struct MissingFacts {
    std::string worker;
    std::string master_name;
    bool local = false;          // type = local: its unit runs on the master's machine
    bool ever_attached = true;   // false: `since` is when the master first saw it
    uint64_t since = 0;          // microseconds since the epoch
    uint64_t timeout = 0;        // seconds
    std::string host;            // Info["host"] from its last attach; may be empty
    std::string admin;           // Info["admin"]; may be empty
    // Latent workers are missed only when their machine was wanted and did
    // not come up: `since` is when it was first wanted.
    bool latent = false;
    std::string start_error;     // the last failed start; empty: the wait simply ran out
    unsigned start_failures = 0;
};

struct BuildFacts {
    uint64_t id = 0;
    std::string builder;
    std::string worker;
    std::string result;
    int exit_status = -1;
    std::string master_name;
    uint64_t submitted_at = 0;
    uint64_t started_at = 0;
    uint64_t finished_at = 0;
    std::string log_tail;        // the last lines of its log, raw bytes
    BuildUsage usage;
};

// "Buildyard worker NAME missing" to `to`.
OutgoingMail missing_mail(const MissingFacts& facts, const std::string& from, const std::vector<std::string>& to,
                          const MessageStamp& stamp);
// "Buildyard BUILDER #ID: RESULT" to `to`.
OutgoingMail build_mail(const BuildFacts& facts, const std::string& from, const std::vector<std::string>& to,
                        const MessageStamp& stamp);

// The last `lines` lines of `log` (a final line without '\n' counts).
std::string_view log_tail(std::string_view log, std::size_t lines);

// RFC 5322 date-time in local time, e.g. "Sun, 29 Nov 2026 12:56:16 +0100".
std::string rfc5322_date(uint64_t usec);
// "2026-11-29 12:56:16 CET (+0100)".
std::string local_time(uint64_t usec);
// "2026-11-29 11:56:16 UTC".
std::string utc_time(uint64_t usec);
// "1 h 2 min 3 s", "45 s", "0 s".
std::string format_duration(uint64_t usec);

// Quoted-printable (RFC 2045) of `text`, with CRLF line ends.
std::string quoted_printable(std::string_view text);

// How long to wait after the `failures`-th failed delivery: `first`,
// doubling each time, at most 60 times `first`.
uint64_t retry_delay(unsigned failures, uint64_t first);

}  // namespace by::master
