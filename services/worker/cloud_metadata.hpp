// The cloud metadata service as a source of a latent worker's identity:
// the user data its instance was launched with. Each cloud keeps it in its
// own place; this file knows them (EC2's IMDSv2, OpenStack's metadata
// service and its config drive), and latent_identity.cpp reads what comes
// back, whatever the cloud.
//
// libcurl is loaded on first use, not linked: most workers never ask a
// metadata service, and should not map libcurl and its TLS stack for it.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace by::worker {

enum class MetadataKind {
    ec2,           // IMDSv2: PUT URL/latest/api/token, then GET URL/latest/user-data with it
    openstack,     // GET URL/openstack/latest/user_data
    config_drive,  // DIR/openstack/latest/user_data, DIR the mounted drive labelled config-2
};

// "ec2", "openstack", "config-drive" (buildyard-workerd --metadata).
std::optional<MetadataKind> parse_metadata_kind(std::string_view text);
// http://169.254.169.254 for the services, /mnt/config for a config drive.
std::string default_metadata_url(MetadataKind kind);

struct MetadataSource {
    MetadataKind kind = MetadataKind::ec2;
    std::string url = "http://169.254.169.254";  // buildyard-workerd --metadata-url: a URL, or a directory
    // Each exchange's deadline, and how often an unreachable service is
    // asked again (at boot the network may come up a moment late).
    std::chrono::milliseconds timeout{3000};
    unsigned attempts = 3;
    std::chrono::milliseconds pause{1000};
};

struct UserData {
    std::optional<std::string> text;  // nullopt: none (error says why, if anything went wrong)
    std::string error;
    std::string description;          // "the EC2 metadata service at URL", for messages
};

// Fetches the user data. The answer is never logged: it holds the token.
UserData fetch_user_data(const MetadataSource& source);

}  // namespace by::worker
