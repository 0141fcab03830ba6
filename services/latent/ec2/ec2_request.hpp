// What the EC2 backend sends and how it reads the outcome, free of I/O:
// the Query API parameters of each call, the ClientToken of a start, which
// errors are retried and which refuse spot capacity. Unit-tested
// (tests/unit/test_ec2_request.cpp).
#pragma once

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "common/config_ec2.hpp"
#include "latent/backend.hpp"

namespace by::latent::ec2 {

// Query API parameters in the order sent: ("Action", "RunInstances"), ...
using Params = std::vector<std::pair<std::string, std::string>>;

inline constexpr const char* api_version = "2016-11-15";
inline constexpr const char* tag_owner = "buildyard:owner";
inline constexpr const char* tag_worker = "buildyard:worker";
inline constexpr const char* tag_start = "buildyard:start";

enum class Market { spot, on_demand };
const char* to_string(Market m);

// The idempotency token of launching `start` in `market`: the same start
// always sends the same token, so a retried RunInstances can never launch a
// second instance; the on-demand fallback has a token of its own.
std::string client_token(const std::string& start, Market market);

// RunInstances of `spec` (one instance, tagged at launch with its volumes,
// terminated when it shuts itself down). `user_data_base64` is
// latent::user_data(spec) in base64; `root_device` is the AMI's root device name
// when ec2.volume_size is set, else empty.
Params run_instances(const StartSpec& spec, const config::Ec2Options& options, Market market,
                     const std::string& user_data_base64, const std::string& root_device);

// DescribeInstances of the instances tagged with `tag` (master, worker and
// start; empty fields are left out of the filter); `live_only`: those not
// terminated.
Params describe_tagged(const Tag& tag, bool live_only = true);
Params describe_instance(const std::string& id);
Params terminate_instance(const std::string& id);
Params describe_image(const std::string& ami);

// A form body (application/x-www-form-urlencoded) of `params`, with
// Version added, sorted by name as SigV4's canonical query would be.
std::string form_body(const std::string& action, Params params);

// What to do after an answer.
enum class Next {
    done,          // success
    retry,         // throttled or a server error: again after a back-off
    spot_refused,  // no spot capacity or price: on-demand if ec2.spot = fallback
    fail,
};
// `http_status` 0 is a transport failure (no answer at all), retried.
Next classify(long http_status, const std::string& error_code);

}  // namespace by::latent::ec2
