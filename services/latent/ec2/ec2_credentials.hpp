// Where the EC2 backend's AWS credentials come from, in this order:
//   1. the systemd credential named by ec2.credential (a file in
//      $CREDENTIALS_DIRECTORY with aws_access_key_id and
//      aws_secret_access_key lines, as in ~/.aws/credentials, or the
//      AWS_* names);
//   2. AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN in
//      latentd's environment;
//   3. the instance role of the machine latentd runs on, through IMDSv2
//      (AWS_EC2_METADATA_SERVICE_ENDPOINT, default http://169.254.169.254;
//      AWS_EC2_METADATA_DISABLED=true turns it off), kept until five minutes
//      before they expire.
// No secret is ever put in an error: messages name the source only.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "latent/backend.hpp"

namespace by::latent::ec2 {

struct Credentials {
    std::string key_id;
    std::string secret;
    std::string session_token;  // empty for long-term keys
    int64_t expires_at = 0;     // seconds since the epoch; 0: never
    std::string source;         // "credential NAME", "the environment", "the instance role ROLE"
};

// The content of a credential file; nullopt with `error` (no value in it).
std::optional<Credentials> parse_credential_file(std::string_view text, std::string& error);

// The JSON of IMDS's iam/security-credentials/ROLE; nullopt with `error`.
std::optional<Credentials> parse_role_credentials(std::string_view json, std::string& error);

// Whether cached credentials must be fetched again at `now` (seconds).
bool needs_refresh(const Credentials& c, int64_t now);

class CredentialSource {
public:
    struct Environment {
        std::function<const char*(const char*)> getenv;
        std::function<int64_t()> now;  // seconds since the epoch
    };
    CredentialSource();
    explicit CredentialSource(Environment env) : env_(std::move(env)) {}

    // The credentials to sign with. `credential`: ec2.credential, or empty.
    Outcome<Credentials> get(const std::string& credential, const Cancelled& cancelled);

private:
    Outcome<Credentials> from_role(const Cancelled& cancelled);

    Environment env_;
    std::mutex mutex_;
    std::optional<Credentials> role_;  // cached instance-role credentials
};

}  // namespace by::latent::ec2
