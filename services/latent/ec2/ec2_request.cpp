#include "latent/ec2/ec2_request.hpp"

#include <algorithm>
#include <memory>

#include "latent/http_call.hpp"

namespace by::latent::ec2 {

namespace {

void add_tags(Params& p, const std::string& prefix, const Tag& tag, const config::Ec2Options& options) {
    unsigned n = 1;
    auto add = [&](const std::string& key, const std::string& value) {
        p.emplace_back(prefix + ".Tag." + std::to_string(n) + ".Key", key);
        p.emplace_back(prefix + ".Tag." + std::to_string(n) + ".Value", value);
        ++n;
    };
    add(tag_owner, tag.master);
    add(tag_worker, tag.worker);
    add(tag_start, tag.start);
    bool named = false;
    for (const auto& [key, value] : options.tags) {
        add(key, value);
        named = named || key == "Name";
    }
    if (!named) {
        add("Name", "buildyard-" + tag.master + "-" + tag.worker);
    }
}

}  // namespace

const char* to_string(Market m) { return m == Market::spot ? "spot" : "on-demand"; }

std::string client_token(const std::string& start, Market market) {
    // At most 64 ASCII characters.
    return "buildyard-" + start + (market == Market::spot ? "-spot" : "-ondemand");
}

Params run_instances(const StartSpec& spec, const config::Ec2Options& options, Market market,
                     const std::string& user_data_base64, const std::string& root_device) {
    Params p{{"ImageId", options.ami},
             {"InstanceType", options.instance_type},
             {"MinCount", "1"},
             {"MaxCount", "1"},
             {"ClientToken", client_token(spec.tag.start, market)},
             {"UserData", user_data_base64},
             // A worker that powers its machine off ends it: nothing stopped lingers.
             {"InstanceInitiatedShutdownBehavior", "terminate"}};
    if (!options.subnet.empty()) {
        p.emplace_back("SubnetId", options.subnet);
    }
    for (std::size_t i = 0; i < options.security_groups.size(); ++i) {
        p.emplace_back("SecurityGroupId." + std::to_string(i + 1), options.security_groups[i]);
    }
    if (!options.key_name.empty()) {
        p.emplace_back("KeyName", options.key_name);
    }
    if (options.volume_size_gib && !root_device.empty()) {
        p.emplace_back("BlockDeviceMapping.1.DeviceName", root_device);
        p.emplace_back("BlockDeviceMapping.1.Ebs.VolumeSize", std::to_string(options.volume_size_gib));
        p.emplace_back("BlockDeviceMapping.1.Ebs.DeleteOnTermination", "true");
    }
    p.emplace_back("TagSpecification.1.ResourceType", "instance");
    add_tags(p, "TagSpecification.1", spec.tag, options);
    p.emplace_back("TagSpecification.2.ResourceType", "volume");
    add_tags(p, "TagSpecification.2", spec.tag, options);
    if (market == Market::spot) {
        p.emplace_back("InstanceMarketOptions.MarketType", "spot");
        p.emplace_back("InstanceMarketOptions.SpotOptions.SpotInstanceType", "one-time");
        p.emplace_back("InstanceMarketOptions.SpotOptions.InstanceInterruptionBehavior", "terminate");
        if (!options.max_price.empty()) {
            p.emplace_back("InstanceMarketOptions.SpotOptions.MaxPrice", options.max_price);
        }
    }
    return p;
}

Params describe_tagged(const Tag& tag, bool live_only) {
    Params p;
    unsigned n = 1;
    auto filter = [&](const std::string& name, std::vector<std::string> values) {
        const std::string f = "Filter." + std::to_string(n++);
        p.emplace_back(f + ".Name", name);
        for (std::size_t i = 0; i < values.size(); ++i) {
            p.emplace_back(f + ".Value." + std::to_string(i + 1), values[i]);
        }
    };
    filter(std::string("tag:") + tag_owner, {tag.master});
    if (!tag.worker.empty()) {
        filter(std::string("tag:") + tag_worker, {tag.worker});
    }
    if (!tag.start.empty()) {
        filter(std::string("tag:") + tag_start, {tag.start});
    }
    if (live_only) {
        filter("instance-state-name", {"pending", "running", "shutting-down", "stopping", "stopped"});
    }
    p.emplace_back("MaxResults", "1000");
    return p;
}

Params describe_instance(const std::string& id) { return {{"InstanceId.1", id}}; }

Params terminate_instance(const std::string& id) { return {{"InstanceId.1", id}}; }

Params describe_image(const std::string& ami) { return {{"ImageId.1", ami}}; }

std::string form_body(const std::string& action, Params params) {
    params.emplace_back("Action", action);
    params.emplace_back("Version", api_version);
    std::stable_sort(params.begin(), params.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    std::string body;
    for (const auto& [name, value] : params) {
        body += (body.empty() ? "" : "&") + url_escape(name) + "=" + url_escape(value);
    }
    return body;
}

Next classify(long http_status, const std::string& error_code) {
    if (http_status >= 200 && http_status < 300 && error_code.empty()) {
        return Next::done;
    }
    if (error_code == "InsufficientInstanceCapacity" || error_code == "SpotMaxPriceTooLow" ||
        error_code == "MaxSpotInstanceCountExceeded") {
        return Next::spot_refused;
    }
    if (http_status == 0 || http_status >= 500 || error_code == "RequestLimitExceeded" ||
        error_code == "Throttling" || error_code == "ServiceUnavailable" || error_code == "InternalError" ||
        error_code == "Unavailable") {
        return Next::retry;
    }
    return Next::fail;
}

}  // namespace by::latent::ec2
