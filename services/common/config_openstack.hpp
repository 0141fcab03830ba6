// The openstack.* keys of a latent worker, parsed into what the OpenStack
// backend sends to Nova. The loader checks them with the same parsers
// (config_backend_openstack.cpp), so a config that loaded always converts.
// Where the cloud is and how to log in to it is not here: that is the
// clouds.yaml entry openstack.cloud names (latent/openstack/openstack_cloud.hpp).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace by::config {

struct OpenStackOptions {
    std::string cloud;        // the clouds.yaml entry
    std::string clouds_file;  // empty: $OS_CLIENT_CONFIG_FILE, else /etc/openstack/clouds.yaml
    std::string credential;   // a systemd credential with the password or secret; empty: clouds.yaml's
    std::string flavor;       // name or ID
    std::string image;        // name or ID
    // A network's name or ID; "none": no network; empty: Nova's "auto"
    // (the project's own network, or one Nova allocates).
    std::string network;
    std::string availability_zone;             // empty: Nova's choice
    std::string key_name;                      // empty: no SSH key
    std::vector<std::string> security_groups;  // names or IDs; empty: the project's default
    uint64_t volume_size_gib = 0;              // 0: boot from the image; else from a new volume this large
    std::vector<std::pair<std::string, std::string>> metadata;  // extra server metadata, in the order written
    bool config_drive = false;                 // also give the identity on a config drive
};

// From a worker's backend_options ("openstack.cloud" -> ...). nullopt with
// `error` set when a key is missing or wrong (never after a clean load).
std::optional<OpenStackOptions> openstack_options(const std::map<std::string, std::string>& backend_options,
                                                  std::string& error);

// The metadata keys the backend sets itself (buildyard:owner,
// buildyard:worker, buildyard:start); openstack.metadata may not use the
// prefix.
inline constexpr const char* openstack_metadata_prefix = "buildyard:";
// Nova's default quota is 128 metadata items; the backend's take 3.
inline constexpr std::size_t openstack_max_extra_metadata = 125;

// Where the backend looks for clouds.yaml when openstack.clouds_file is not
// set: $OS_CLIENT_CONFIG_FILE, then this. Not ./clouds.yaml nor
// ~/.config/openstack/: a daemon's working directory and home are not
// configuration.
inline constexpr const char* openstack_default_clouds_file = "/etc/openstack/clouds.yaml";

}  // namespace by::config
