#include "latent/ec2/ec2_credentials.hpp"

#include <cctype>
#include <cstdlib>
#include <ctime>

#include <nlohmann/json.hpp>

#include "common/config_values.hpp"
#include "latent/http_call.hpp"

namespace by::latent::ec2 {

namespace {

constexpr int64_t refresh_margin = 300;  // seconds before expiry
constexpr const char* default_imds = "http://169.254.169.254";

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return out;
}

std::string trimmed(std::string_view s) { return std::string(config::detail::trim(s)); }

bool plausible(const std::string& s) {
    for (char c : s) {
        if (static_cast<unsigned char>(c) <= ' ' || static_cast<unsigned char>(c) >= 0x7f) {
            return false;
        }
    }
    return !s.empty();
}

}  // namespace

std::optional<Credentials> parse_credential_file(std::string_view text, std::string& error) {
    Credentials c;
    std::size_t line_no = 0;
    while (!text.empty()) {
        const auto nl = text.find('\n');
        const std::string line = trimmed(text.substr(0, nl));
        text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
        ++line_no;
        if (line.empty() || line.front() == '#' || line.front() == ';' || line.front() == '[') {
            continue;
        }
        const auto eq = line.find('=');
        if (eq == std::string::npos) {
            error = "line " + std::to_string(line_no) + " is not NAME = VALUE";
            return std::nullopt;
        }
        const std::string name = lower(trimmed(std::string_view(line).substr(0, eq)));
        std::string value = trimmed(std::string_view(line).substr(eq + 1));
        if (name == "aws_access_key_id") {
            c.key_id = std::move(value);
        } else if (name == "aws_secret_access_key") {
            c.secret = std::move(value);
        } else if (name == "aws_session_token") {
            c.session_token = std::move(value);
        } else {
            // The name only: the value may be a secret.
            error = "line " + std::to_string(line_no) +
                    ": unknown name (expected aws_access_key_id, aws_secret_access_key, aws_session_token)";
            return std::nullopt;
        }
    }
    if (c.key_id.empty() || c.secret.empty()) {
        error = "it needs both aws_access_key_id and aws_secret_access_key";
        return std::nullopt;
    }
    if (!plausible(c.key_id) || !plausible(c.secret) || (!c.session_token.empty() && !plausible(c.session_token))) {
        error = "a value has blanks or control characters";
        return std::nullopt;
    }
    return c;
}

std::optional<Credentials> parse_role_credentials(std::string_view json, std::string& error) {
    const auto j = nlohmann::json::parse(json, nullptr, false);
    auto field = [&](const char* key) {
        return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string();
    };
    if (!j.is_object()) {
        error = "the metadata service's role credentials are not JSON";
        return std::nullopt;
    }
    if (const auto code = field("Code"); !code.empty() && code != "Success") {
        error = "the metadata service has no credentials for the role: " + code.substr(0, 200);
        return std::nullopt;
    }
    Credentials c;
    c.key_id = field("AccessKeyId");
    c.secret = field("SecretAccessKey");
    c.session_token = field("Token");
    const auto expires = parse_iso8601(field("Expiration"));
    if (!plausible(c.key_id) || !plausible(c.secret) || !plausible(c.session_token) || !expires) {
        error = "the metadata service's role credentials lack AccessKeyId, SecretAccessKey, Token or Expiration";
        return std::nullopt;
    }
    c.expires_at = *expires;
    return c;
}

bool needs_refresh(const Credentials& c, int64_t now) { return c.expires_at != 0 && now >= c.expires_at - refresh_margin; }

CredentialSource::CredentialSource()
    : env_{[](const char* name) { return std::getenv(name); }, [] { return static_cast<int64_t>(std::time(nullptr)); }} {}

Outcome<Credentials> CredentialSource::get(const std::string& credential, const Cancelled& cancelled) {
    if (!credential.empty()) {
        const char* dir = env_.getenv("CREDENTIALS_DIRECTORY");
        const std::string what = "ec2.credential " + credential;
        if (!dir || !*dir) {
            return failed<Credentials>(what + ": CREDENTIALS_DIRECTORY is not set (add LoadCredential=" + credential +
                                       ":PATH to buildyard-latentd.service)");
        }
        std::string error;
        auto text = config::detail::read_file(std::string(dir) + "/" + credential, 64 * 1024, error);
        if (!text) {
            return failed<Credentials>(what + ": cannot read " + dir + "/" + credential + ": " + error);
        }
        auto c = parse_credential_file(*text, error);
        if (!c) {
            return failed<Credentials>(what + ": " + error);
        }
        c->source = "credential " + credential;
        return succeeded(std::move(*c));
    }
    const char* id = env_.getenv("AWS_ACCESS_KEY_ID");
    const char* secret = env_.getenv("AWS_SECRET_ACCESS_KEY");
    if ((id && *id) || (secret && *secret)) {
        if (!id || !*id || !secret || !*secret) {
            return failed<Credentials>("the environment sets only one of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
        }
        Credentials c;
        c.key_id = id;
        c.secret = secret;
        if (const char* token = env_.getenv("AWS_SESSION_TOKEN")) {
            c.session_token = token;
        }
        c.source = "the environment";
        return succeeded(std::move(c));
    }
    return from_role(cancelled);
}

Outcome<Credentials> CredentialSource::from_role(const Cancelled& cancelled) {
    std::lock_guard lock(mutex_);
    if (role_ && !needs_refresh(*role_, env_.now())) {
        return succeeded(*role_);
    }
    if (const char* off = env_.getenv("AWS_EC2_METADATA_DISABLED"); off && lower(off) == "true") {
        return failed<Credentials>("no AWS credentials: ec2.credential is not set, AWS_ACCESS_KEY_ID is not in the "
                                   "environment, and AWS_EC2_METADATA_DISABLED=true rules out an instance role");
    }
    const char* endpoint = env_.getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    std::string base = endpoint && *endpoint ? endpoint : default_imds;
    while (!base.empty() && base.back() == '/') {
        base.pop_back();
    }
    const std::string none = "no AWS credentials: ec2.credential is not set, AWS_ACCESS_KEY_ID is not in the "
                             "environment, and the instance role from the metadata service at " + base + " failed: ";
    const std::chrono::milliseconds timeout{5000};
    // IMDSv2: a session token first, then the role's name, then its keys.
    auto request = [&](const char* method, std::string url, std::string header_line) {
        HttpRequest r;
        r.method = method;
        r.url = std::move(url);
        r.headers = {std::move(header_line)};
        r.timeout = timeout;
        return r;
    };
    const HttpRequest put = request("PUT", base + "/latest/api/token", "X-aws-ec2-metadata-token-ttl-seconds: 300");
    auto token = http(put, cancelled);
    if (token.status != 200 || token.body.empty()) {
        return failed<Credentials>(none + (token.status ? "token PUT answered HTTP " + std::to_string(token.status)
                                                        : token.error));
    }
    const std::string header = "X-aws-ec2-metadata-token: " + trimmed(token.body);
    const std::string path = base + "/latest/meta-data/iam/security-credentials/";
    auto role = http(request("GET", path, header), cancelled);
    const std::string role_name = trimmed(std::string_view(role.body).substr(0, role.body.find('\n')));
    if (role.status != 200 || role_name.empty() || role_name.find('/') != std::string::npos) {
        return failed<Credentials>(none + (role.status == 404 ? "the instance has no role"
                                           : role.status     ? "HTTP " + std::to_string(role.status)
                                                             : role.error));
    }
    auto keys = http(request("GET", path + role_name, header), cancelled);
    if (keys.status != 200) {
        return failed<Credentials>(none + (keys.status ? "HTTP " + std::to_string(keys.status) : keys.error));
    }
    std::string error;
    auto c = parse_role_credentials(keys.body, error);
    if (!c) {
        return failed<Credentials>(none + error);
    }
    c->source = "the instance role " + role_name;
    role_ = *c;
    return succeeded(std::move(*c));
}

}  // namespace by::latent::ec2
