// One HTTP exchange through libcurl for the EC2 backend: the Query API
// (signed by libcurl's own AWS SigV4, CURLOPT_AWS_SIGV4) and the instance
// metadata service (IMDSv2). Blocking, cancellable within about a second.
// Nothing here logs, and no error text holds a header or a credential.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "latent/backend.hpp"

namespace by::latent::ec2 {

struct HttpRequest {
    std::string method = "GET";  // GET, PUT or POST
    std::string url;
    std::vector<std::string> headers;  // "Name: value"
    std::string body;
    // SigV4: "aws:amz:REGION:SERVICE" with the key id and secret; empty: unsigned.
    std::string sigv4;
    std::string key_id;
    std::string secret;
    std::chrono::milliseconds timeout{30000};
};

struct HttpAnswer {
    long status = 0;      // 0: no answer (error says why)
    std::string body;
    std::string error;    // transport failure, for the log
    bool cancelled = false;
};

HttpAnswer http(const HttpRequest& request, const Cancelled& cancelled);

inline const std::string cancelled_message = "cancelled: the call's deadline passed";

// Sleeps `d`, waking early when cancelled; false if cancelled.
bool pause(std::chrono::milliseconds d, const Cancelled& cancelled);

// Base64 of `data` (OpenSSL's EVP_EncodeBlock): EC2 takes user data so.
std::string base64(const std::string& data);

}  // namespace by::latent::ec2
