// One HTTP exchange through libcurl for the cloud backends (EC2's Query API,
// signed by libcurl's own AWS SigV4, and its metadata service; OpenStack's
// Keystone, Nova, Glance and Neutron), and what their retries share: the
// back-off, the polling pace, waiting cancellably. Blocking, cancellable
// within about a second. Nothing here logs, and no error text holds a
// header or a credential.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "latent/backend.hpp"

namespace by::latent {

struct HttpRequest {
    std::string method = "GET";  // GET, PUT, POST or DELETE
    std::string url;
    std::vector<std::string> headers;  // "Name: value"
    std::string body;
    // SigV4: "aws:amz:REGION:SERVICE" with the key id and secret; empty: unsigned.
    std::string sigv4;
    std::string key_id;
    std::string secret;
    std::string ca_file;  // a CA bundle to verify the server with; empty: the system's
    bool verify = true;   // false: no TLS verification (clouds.yaml's verify: false)
    std::chrono::milliseconds timeout{30000};
};

struct HttpAnswer {
    long status = 0;      // 0: no answer (error says why)
    std::string body;
    std::map<std::string, std::string> headers;  // names in lowercase; the last of a name wins
    std::string error;    // transport failure, for the log
    bool cancelled = false;
};

HttpAnswer http(const HttpRequest& request, const Cancelled& cancelled);

inline const std::string cancelled_message = "cancelled: the call's deadline passed";

// Sleeps `d`, waking early when cancelled; false if cancelled.
bool pause(std::chrono::milliseconds d, const Cancelled& cancelled);

// Base64 of `data` (OpenSSL's EVP_EncodeBlock): EC2 and Nova take user data so.
std::string base64(const std::string& data);

// `s` with everything but A-Z a-z 0-9 - . _ ~ as %XX (curl_easy_escape):
// a query value, a path segment, and what SigV4 wants in a form body.
std::string url_escape(const std::string& s);

// The pause before attempt `attempt` (1 = the first retry): 250 ms doubling
// up to 8 s, times a jitter factor in [0.5, 1] drawn by the caller.
std::chrono::milliseconds backoff(unsigned attempt, double jitter);

// The pause before the `n`th look while waiting for a state: 250 ms
// doubling up to 2 s.
std::chrono::milliseconds poll_interval(unsigned n);

// "2026-12-06T05:00:00Z" (or with fractions of a second, as Keystone
// writes it) -> seconds since the epoch.
std::optional<int64_t> parse_iso8601(std::string_view text);

}  // namespace by::latent
