// The answers of the EC2 Query API (XML), read into what the EC2 backend
// needs. A pure function of the response bytes, so a fuzzer can drive it.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace by::latent::ec2 {

struct Error {
    std::string code;     // "RequestLimitExceeded", "InvalidInstanceID.NotFound", ...
    std::string message;
};

struct Instance {
    std::string id;            // i-...
    std::string state;         // pending, running, shutting-down, terminated, stopping, stopped
    std::string lifecycle;     // "spot", or empty for on-demand
    std::string state_reason;  // stateReason/message, when EC2 gives one
    std::map<std::string, std::string> tags;
};

struct Response {
    bool parsed = false;
    std::string parse_error;             // why the body is not an EC2 answer
    std::vector<Error> errors;           // <Response><Errors><Error>
    std::vector<Instance> instances;     // every instancesSet item (RunInstances, DescribeInstances, TerminateInstances)
    std::string next_token;              // DescribeInstances' page token
    std::string root_device_name;        // DescribeImages: the first image's
    std::string request_id;
};

// Whether an instance in `state` is ending or ended (shutting-down,
// terminated, stopping, stopped).
bool ending(const std::string& state);
// "instance ID is STATE (REASON)", for errors and health reports.
std::string state_text(const Instance& i);

// Reads one answer. Never throws; a body that is not XML, or XML that is
// neither an error nor an action's response, comes back with parse_error.
Response parse_response(std::string_view body);

}  // namespace by::latent::ec2
