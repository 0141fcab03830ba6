// The clouds.yaml entry a latent worker's openstack.cloud names, read as
// OpenStack's own tools read it (with yaml-cpp): where Keystone is, how to
// log in (a password or an application credential), the scope, the region
// and which endpoint interface to use. Free of I/O: the caller reads the
// file and the systemd credential. Unit-tested
// (tests/unit/test_openstack_cloud.cpp).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace by::latent::openstack {

enum class AuthType { password, application_credential };

struct Cloud {
    std::string name;
    AuthType auth_type = AuthType::password;
    // Keystone's v3 API, without a trailing slash: "https://keystone:5000/v3"
    // (clouds.yaml's auth_url, /v3 added when it names no version).
    std::string auth_url;

    // password
    std::string username;
    std::string user_id;
    std::string user_domain_name;
    std::string user_domain_id;
    std::string password;
    std::string project_name;
    std::string project_id;
    std::string project_domain_name;
    std::string project_domain_id;

    // application_credential (its scope is its own)
    std::string application_credential_id;
    std::string application_credential_name;  // with username or user_id and the user's domain
    std::string application_credential_secret;

    std::string region_name;             // empty: the catalog's only region
    std::string interface = "public";    // public, internal or admin
    std::string ca_file;                 // cacert
    bool verify = true;

    // What identifies the login for caching a token: everything above but
    // the secret's text is in it, and a hash of the secret.
    std::string session_key() const;
};

// The entry `cloud` of the clouds.yaml text `yaml`. `secret` (from a
// systemd credential), when given, is the password or the application
// credential's secret, and the file then needs none. nullopt with `error`
// naming the key (and its line) that is missing or wrong.
std::optional<Cloud> parse_clouds_yaml(std::string_view yaml, const std::string& cloud,
                                       const std::optional<std::string>& secret, std::string& error);

}  // namespace by::latent::openstack
