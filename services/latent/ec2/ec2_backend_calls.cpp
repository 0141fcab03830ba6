// The EC2 backend's steps: one Query API action with its retries, paged
// DescribeInstances, a launch, the waits for running and for the end.
#include <optional>
#include <thread>

#include "common/log.hpp"
#include "latent/ec2/ec2_backend.hpp"
#include "latent/http_call.hpp"

namespace by::latent {

using ec2::Market;
using ec2::Next;
using ec2::ending;
using ec2::state_text;

Outcome<ec2::Response> Ec2Backend::call(const Place& place, const std::string& action, const ec2::Params& params,
                                        const Cancelled& cancelled, std::string* error_code) {
    const std::string where = " (" + place.endpoint + ")";
    for (unsigned attempt = 0;; ++attempt) {
        if (attempt > 0 && !pause(backoff(attempt, options_.jitter()), cancelled)) {
            return failed<ec2::Response>("EC2 " + action + ": " + cancelled_message + " while retrying");
        }
        if (cancelled) {
            return failed<ec2::Response>("EC2 " + action + ": " + cancelled_message);
        }
        auto creds = credentials_.get(place.credential, cancelled);
        if (!creds.ok()) {
            return failed<ec2::Response>("EC2 " + action + ": " + creds.error);
        }
        HttpRequest request;
        request.method = "POST";
        request.url = place.endpoint;
        request.headers = {"Content-Type: application/x-www-form-urlencoded; charset=utf-8"};
        if (!creds.value.session_token.empty()) {
            request.headers.push_back("X-Amz-Security-Token: " + creds.value.session_token);
        }
        request.body = ec2::form_body(action, params);
        request.sigv4 = "aws:amz:" + place.region + ":ec2";
        request.key_id = creds.value.key_id;
        request.secret = creds.value.secret;
        request.timeout = options_.http_timeout;
        auto answer = http(request, cancelled);
        if (answer.cancelled) {
            return failed<ec2::Response>("EC2 " + action + ": " + cancelled_message);
        }
        ec2::Response response;
        std::string code;
        if (answer.status != 0) {
            response = ec2::parse_response(answer.body);
            if (!response.errors.empty()) {
                code = response.errors.front().code;
            }
        }
        const Next next = ec2::classify(answer.status, code);
        if (next == Next::done) {
            if (!response.parsed) {
                return failed<ec2::Response>("EC2 " + action + ": " + response.parse_error + where);
            }
            return succeeded(std::move(response));
        }
        if (error_code) {
            *error_code = code;
        }
        std::string why = answer.status == 0 ? "no answer: " + answer.error
                          : !code.empty()
                              ? code + ": " + response.errors.front().message + " (HTTP " +
                                    std::to_string(answer.status) + ")"
                              : "HTTP " + std::to_string(answer.status) + ", " +
                                    (response.parse_error.empty() ? "no error code" : response.parse_error);
        if (next != Next::retry) {
            return failed<ec2::Response>("EC2 " + action + ": " + why + where);
        }
        log::write(log::Level::info,
                   fmt::format("EC2 {}: {}{}; retrying (attempt {})", action, why, where, attempt + 2));
    }
}

Outcome<std::vector<ec2::Instance>> Ec2Backend::describe(const Place& place, const ec2::Params& params,
                                                         const Cancelled& cancelled) {
    std::vector<ec2::Instance> out;
    ec2::Params page = params;
    for (unsigned pages = 0; pages < 100; ++pages) {
        auto r = call(place, "DescribeInstances", page, cancelled);
        if (!r.ok()) {
            return failed<std::vector<ec2::Instance>>(r.error);
        }
        out.insert(out.end(), r.value.instances.begin(), r.value.instances.end());
        if (r.value.next_token.empty()) {
            break;
        }
        page = params;
        std::erase_if(page, [](const auto& p) { return p.first == "NextToken"; });
        page.emplace_back("NextToken", r.value.next_token);
    }
    return succeeded(std::move(out));
}

Outcome<std::string> Ec2Backend::launch(const StartSpec& spec, const config::Ec2Options& options, Market market,
                                        const std::string& root_device, const Cancelled& cancelled,
                                        std::string& error_code) {
    const auto params = ec2::run_instances(spec, options, market, base64(user_data(spec)), root_device);
    auto r = call(place_of(options), "RunInstances", params, cancelled, &error_code);
    if (!r.ok()) {
        return failed<std::string>(r.error);
    }
    if (r.value.instances.size() != 1 || r.value.instances.front().id.empty()) {
        return failed<std::string>("EC2 RunInstances answered with " + std::to_string(r.value.instances.size()) +
                                   " instances instead of one");
    }
    return succeeded(r.value.instances.front().id);
}

Outcome<std::optional<ec2::Instance>> Ec2Backend::describe_one(const Place& place, const std::string& id,
                                                              const Cancelled& cancelled) {
    std::string code;
    auto r = call(place, "DescribeInstances", ec2::describe_instance(id), cancelled, &code);
    if (!r.ok()) {
        if (code == "InvalidInstanceID.NotFound") {
            return succeeded(std::optional<ec2::Instance>());
        }
        return failed<std::optional<ec2::Instance>>(r.error);
    }
    for (auto& i : r.value.instances) {
        if (i.id == id) {
            return succeeded(std::optional<ec2::Instance>(std::move(i)));
        }
    }
    return succeeded(std::optional<ec2::Instance>());
}

Outcome<ec2::Instance> Ec2Backend::wait_running(const Place& place, const std::string& id,
                                                const Cancelled& cancelled) {
    for (unsigned n = 0;; ++n) {
        if (!pause(poll_interval(n), cancelled)) {
            return failed<ec2::Instance>("instance " + id + " did not run in time: " + cancelled_message);
        }
        auto d = describe_one(place, id, cancelled);
        if (!d.ok()) {
            return failed<ec2::Instance>(d.error);
        }
        // Not found right after a launch: EC2's eventual consistency, not a failure.
        if (d.value && d.value->state == "running") {
            return succeeded(*d.value);
        }
        if (d.value && ending(d.value->state)) {
            return failed<ec2::Instance>(state_text(*d.value) + " before it ran");
        }
    }
}

Outcome<bool> Ec2Backend::terminate(const Place& place, const std::string& id, const Cancelled& cancelled) {
    std::string code;
    auto r = call(place, "TerminateInstances", ec2::terminate_instance(id), cancelled, &code);
    if (!r.ok()) {
        if (code == "InvalidInstanceID.NotFound") {
            return succeeded(false);
        }
        return failed<bool>(r.error);
    }
    // Then until EC2 says it is going.
    auto going = [](const ec2::Instance& i) { return i.state == "shutting-down" || i.state == "terminated"; };
    for (unsigned n = 0;; ++n) {
        for (const auto& i : r.value.instances) {
            if (i.id == id && going(i)) {
                return succeeded(true);
            }
        }
        if (!pause(poll_interval(n), cancelled)) {
            return failed<bool>("instance " + id + " was not shutting down in time: " + cancelled_message);
        }
        auto d = describe_one(place, id, cancelled);
        if (!d.ok()) {
            return failed<bool>(d.error);
        }
        if (!d.value) {
            return succeeded(true);  // gone already
        }
        r.value.instances = {*d.value};
    }
}

}  // namespace by::latent
