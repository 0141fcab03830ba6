// clouds.yaml as the OpenStack backend reads it (yaml-cpp): password and
// application-credential logins, scoping, the region and interface, the
// secret from a systemd credential, and each mistake named with its key
// and line.
#include <gtest/gtest.h>

#include "latent/openstack/openstack_api.hpp"
#include "latent/openstack/openstack_cloud.hpp"

using namespace by::latent::openstack;

namespace {

const std::string password_yaml = R"(clouds:
  ci:
    auth:
      auth_url: https://keystone.example.org:5000
      username: buildyard-latent
      password: s3cret
      project_name: buildyard
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
    interface: internal
  other:
    auth:
      auth_url: http://127.0.0.1:5000/v3/
      application_credential_id: 21dced
      application_credential_secret: app-s3cret
    auth_type: v3applicationcredential
    verify: false
    cacert: /etc/ssl/cloud.pem
)";

Cloud parsed(const std::string& yaml, const std::string& name, std::optional<std::string> secret = std::nullopt) {
    std::string error;
    auto c = parse_clouds_yaml(yaml, name, secret, error);
    EXPECT_TRUE(c) << error;
    return c.value_or(Cloud{});
}

std::string error_of(const std::string& yaml, const std::string& name = "ci",
                     std::optional<std::string> secret = std::nullopt) {
    std::string error;
    EXPECT_FALSE(parse_clouds_yaml(yaml, name, secret, error));
    return error;
}

std::string password_cloud(const std::string& auth_lines) {
    return "clouds:\n  ci:\n    auth:\n      auth_url: http://k:5000\n" + auth_lines;
}

}  // namespace

TEST(OpenStackCloud, PasswordLoginScopedToAProject) {
    const Cloud c = parsed(password_yaml, "ci");
    EXPECT_EQ(c.auth_type, AuthType::password);
    EXPECT_EQ(c.auth_url, "https://keystone.example.org:5000/v3");
    EXPECT_EQ(c.username, "buildyard-latent");
    EXPECT_EQ(c.password, "s3cret");
    EXPECT_EQ(c.project_name, "buildyard");
    EXPECT_EQ(c.user_domain_name, "Default");
    EXPECT_EQ(c.project_domain_name, "Default");
    EXPECT_EQ(c.region_name, "RegionOne");
    EXPECT_EQ(c.interface, "internal");
    EXPECT_TRUE(c.verify);
    const auto body = token_request(c);
    EXPECT_EQ(body["auth"]["identity"]["methods"], nlohmann::json::array({"password"}));
    EXPECT_EQ(body["auth"]["identity"]["password"]["user"]["name"], "buildyard-latent");
    EXPECT_EQ(body["auth"]["identity"]["password"]["user"]["domain"]["name"], "Default");
    EXPECT_EQ(body["auth"]["identity"]["password"]["user"]["password"], "s3cret");
    EXPECT_EQ(body["auth"]["scope"]["project"]["name"], "buildyard");
    EXPECT_EQ(body["auth"]["scope"]["project"]["domain"]["name"], "Default");
}

TEST(OpenStackCloud, ApplicationCredentialCarriesItsOwnScope) {
    const Cloud c = parsed(password_yaml, "other");
    EXPECT_EQ(c.auth_type, AuthType::application_credential);
    EXPECT_EQ(c.auth_url, "http://127.0.0.1:5000/v3");
    EXPECT_FALSE(c.verify);
    EXPECT_EQ(c.ca_file, "/etc/ssl/cloud.pem");
    EXPECT_EQ(c.interface, "public");
    const auto body = token_request(c);
    EXPECT_EQ(body["auth"]["identity"]["methods"], nlohmann::json::array({"application_credential"}));
    EXPECT_EQ(body["auth"]["identity"]["application_credential"]["id"], "21dced");
    EXPECT_EQ(body["auth"]["identity"]["application_credential"]["secret"], "app-s3cret");
    EXPECT_FALSE(body["auth"].contains("scope"));
    // By name, with its user.
    const Cloud named = parsed("clouds:\n  a:\n    auth_type: v3applicationcredential\n    auth:\n"
                               "      auth_url: http://k\n      application_credential_name: ci\n"
                               "      application_credential_secret: x\n      username: u\n"
                               "      user_domain_id: default\n",
                               "a");
    const auto b = token_request(named);
    EXPECT_EQ(b["auth"]["identity"]["application_credential"]["name"], "ci");
    EXPECT_EQ(b["auth"]["identity"]["application_credential"]["user"]["name"], "u");
    EXPECT_EQ(b["auth"]["identity"]["application_credential"]["user"]["domain"]["id"], "default");
}

TEST(OpenStackCloud, IdsAndDomainNameStandInForTheRest) {
    const Cloud c = parsed(password_cloud("      user_id: u1\n      password: p\n      project_id: p1\n"), "ci");
    const auto body = token_request(c);
    EXPECT_EQ(body["auth"]["identity"]["password"]["user"]["id"], "u1");
    EXPECT_FALSE(body["auth"]["identity"]["password"]["user"].contains("domain"));
    EXPECT_EQ(body["auth"]["scope"]["project"]["id"], "p1");
    const Cloud d = parsed(
        password_cloud("      username: u\n      password: p\n      project_name: pr\n      domain_name: corp\n"), "ci");
    EXPECT_EQ(d.user_domain_name, "corp");
    EXPECT_EQ(d.project_domain_name, "corp");
}

TEST(OpenStackCloud, TheSecretMayComeFromACredential) {
    const std::string no_password = password_cloud(
        "      username: u\n      project_name: p\n      user_domain_name: D\n      project_domain_name: D\n");
    EXPECT_EQ(parsed(no_password, "ci", std::string("from-credential\n")).password, "from-credential");
    // The credential wins over the file.
    EXPECT_EQ(parsed(password_yaml, "other", std::string("newer")).application_credential_secret, "newer");
    EXPECT_EQ(error_of(no_password), "clouds.ci.auth.password is not set (line 4)");
    EXPECT_EQ(error_of(no_password, "ci", std::string("\n")),
              "clouds.ci.auth.password is not set (the credential is empty) (line 4)");
}

TEST(OpenStackCloud, SessionKeysDifferWithTheLoginButNeverHoldTheSecret) {
    const Cloud a = parsed(password_yaml, "ci");
    Cloud b = a;
    EXPECT_EQ(a.session_key(), b.session_key());
    b.password = "changed";
    EXPECT_NE(a.session_key(), b.session_key());
    EXPECT_EQ(a.session_key().find("s3cret"), std::string::npos);
    b = a;
    b.region_name = "RegionTwo";
    EXPECT_NE(a.session_key(), b.session_key());
}

TEST(OpenStackCloud, MistakesNameTheKeyAndLine) {
    EXPECT_EQ(error_of(password_yaml, "nope"), "no cloud named 'nope' under clouds: (it has: ci, other)");
    EXPECT_EQ(error_of("clouds: [1, 2]\n"), "no clouds: map at the top");
    EXPECT_EQ(error_of("clouds:\n  ci: {\n").substr(0, 8), "not YAML");
    EXPECT_EQ(error_of("clouds:\n  ci:\n    region_name: R\n"), "clouds.ci.auth is not set (line 3)");
    EXPECT_EQ(error_of("clouds:\n  ci:\n    auth:\n      username: u\n"), "clouds.ci.auth.auth_url is not set (line 4)");
    EXPECT_EQ(error_of(password_cloud("      username: [a, b]\n")),
              "clouds.ci.auth.username is not a single value (line 5)");
    EXPECT_EQ(error_of(password_cloud("      token: abc\n")),
              "clouds.ci.auth.token: not a key this backend reads (line 5)");
    EXPECT_EQ(error_of("clouds:\n  ci:\n    auth:\n      auth_url: ftp://k\n"),
              "clouds.ci.auth.auth_url: 'ftp://k' is not an http(s) URL of Keystone's v3 API (line 4)");
    EXPECT_EQ(error_of("clouds:\n  ci:\n    auth:\n      auth_url: http://k:5000/v2.0\n").substr(0, 40),
              "clouds.ci.auth.auth_url: 'http://k:5000/");
    EXPECT_EQ(error_of(password_cloud("      password: p\n")),
              "clouds.ci.auth.username (or user_id) is not set (line 4)");
    EXPECT_EQ(error_of(password_cloud("      username: u\n      password: p\n")),
              "clouds.ci.auth.user_domain_name (or user_domain_id, or domain_name) is needed with username (line 4)");
    EXPECT_EQ(error_of(password_cloud("      username: u\n      password: p\n      user_domain_name: D\n")),
              "clouds.ci.auth.project_name (or project_id) is not set: servers belong to a project (line 4)");
    EXPECT_EQ(error_of(password_cloud("      username: u\n      password: p\n      user_domain_name: D\n"
                                      "      project_name: p\n")),
              "clouds.ci.auth.project_domain_name (or project_domain_id, or domain_name) is needed with "
              "project_name (line 4)");
    EXPECT_EQ(error_of("clouds:\n  ci:\n    auth_type: token\n    auth: {auth_url: http://k}\n"),
              "clouds.ci.auth_type: 'token' is not supported (password, v3password, v3applicationcredential) "
              "(line 3)");
    EXPECT_EQ(error_of("clouds:\n  ci:\n    interface: private\n    auth: {auth_url: http://k}\n"),
              "clouds.ci.interface: 'private' is not public, internal or admin (line 3)");
    EXPECT_EQ(error_of("clouds:\n  ci:\n    identity_api_version: 2\n    auth: {auth_url: http://k}\n"),
              "clouds.ci.identity_api_version: only 3 is supported (line 3)");
    EXPECT_EQ(error_of("clouds:\n  ci:\n    auth_type: v3applicationcredential\n    auth:\n"
                       "      auth_url: http://k\n      application_credential_secret: s\n"),
              "clouds.ci.auth.application_credential_id (or application_credential_name) is not set (line 5)");
}
