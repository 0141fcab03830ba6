// The ec2.* keys of a latent worker, parsed into what the EC2 Query API
// takes. The loader checks them with the same parsers
// (config_backend_ec2.cpp), so a config that loaded always converts.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace by::config {

enum class Ec2Spot { no, yes, fallback };

struct Ec2Options {
    std::string region;
    // The Query API's URL; from ec2.endpoint, else https://ec2.REGION.amazonaws.com/.
    std::string endpoint;
    std::string ami;
    std::string instance_type;
    std::string subnet;                        // empty: the default VPC's default subnet
    std::vector<std::string> security_groups;  // sg-... ids; empty: the default group
    std::string key_name;                      // empty: no SSH key
    uint64_t volume_size_gib = 0;              // 0: the AMI's root volume size
    std::vector<std::pair<std::string, std::string>> tags;  // extra tags, in the order written
    Ec2Spot spot = Ec2Spot::no;
    std::string max_price;                     // USD per hour as written; empty: the on-demand price
    std::string credential;                    // a systemd credential with the access key; empty: none
};

// From a worker's backend_options ("ec2.region" -> ...). nullopt with
// `error` set when a key is missing or wrong (never after a clean load).
std::optional<Ec2Options> ec2_options(const std::map<std::string, std::string>& backend_options, std::string& error);

// The tags Buildyard puts on every instance and volume; ec2.tags may not
// use the prefix.
inline constexpr const char* ec2_tag_prefix = "buildyard:";
// EC2 allows 50 tags per resource; the backend's take 4 (the three
// buildyard: tags and a Name, unless ec2.tags has one).
inline constexpr std::size_t ec2_max_extra_tags = 46;

}  // namespace by::config
