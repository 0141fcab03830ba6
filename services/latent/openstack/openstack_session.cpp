#include "latent/openstack/openstack_session.hpp"

#include "common/log.hpp"
#include "latent/http_call.hpp"

namespace by::latent::openstack {

namespace {

HttpRequest request_to(const Cloud& cloud, std::string method, std::string url, std::chrono::milliseconds timeout) {
    HttpRequest r;
    r.method = std::move(method);
    r.url = std::move(url);
    r.ca_file = cloud.ca_file;
    r.verify = cloud.verify;
    r.timeout = timeout;
    r.headers = {"Accept: application/json"};
    return r;
}

std::string why(const HttpAnswer& a) {
    return a.status == 0 ? "no answer: " + a.error
                         : "HTTP " + std::to_string(a.status) + ": " + error_message(a.body);
}

}  // namespace

unsigned Session::tokens_issued() const {
    std::lock_guard lock(mutex_);
    return issued_;
}

Outcome<Token> Session::issue(const Cancelled& cancelled) {
    const std::string what = "Keystone at " + cloud_.auth_url + " (cloud " + cloud_.name + ")";
    for (unsigned attempt = 0;; ++attempt) {
        if (attempt > 0 && !pause(backoff(attempt, options_.jitter()), cancelled)) {
            return failed<Token>(what + ": " + cancelled_message + " while retrying");
        }
        if (cancelled) {
            return failed<Token>(what + ": " + cancelled_message);
        }
        auto r = request_to(cloud_, "POST", cloud_.auth_url + "/auth/tokens", options_.http_timeout);
        r.headers.push_back("Content-Type: application/json");
        r.body = token_request(cloud_).dump();
        const auto answer = http(r, cancelled);
        if (answer.cancelled) {
            return failed<Token>(what + ": " + cancelled_message);
        }
        const Next next = classify(answer.status);
        if (next == Next::done) {
            std::string error;
            const auto subject = answer.headers.find("x-subject-token");
            auto token = parse_token(answer.body, subject == answer.headers.end() ? "" : subject->second, error);
            if (!token) {
                return failed<Token>(what + ": " + error);
            }
            return succeeded(std::move(*token));
        }
        // A 401 here is a wrong password or credential: no use asking again.
        if (next != Next::retry) {
            return failed<Token>(what + " refused the login: " + why(answer));
        }
        log::write(log::Level::info, what + ": " + why(answer) + "; retrying (attempt " +
                                         std::to_string(attempt + 2) + ")");
    }
}

Outcome<Session::Auth> Session::auth_for(const std::string& type, const std::string& stale,
                                         const Cancelled& cancelled) {
    // One login at a time per cloud: the calls waiting for it use its token.
    std::lock_guard lock(mutex_);
    if (!token_ || !token_fresh(*token_, options_.now()) || (!stale.empty() && token_->id == stale)) {
        auto t = issue(cancelled);
        if (!t.ok()) {
            return failed<Auth>(t.error);
        }
        token_ = std::move(t.value);
        ++issued_;
        log::write(log::Level::info, "Keystone at " + cloud_.auth_url + ": new token for cloud " + cloud_.name +
                                         " (good for " + std::to_string(token_->expires_at - options_.now()) + " s)");
    }
    std::string error;
    auto url = endpoint_url(token_->catalog, type, cloud_.interface, cloud_.region_name, error);
    if (!url) {
        return failed<Auth>("cloud " + cloud_.name + ": " + error);
    }
    return succeeded(Auth{token_->id, *url});
}

Outcome<std::string> Session::microversion(const Cancelled& cancelled) {
    {
        std::lock_guard lock(mutex_);
        if (!microversion_.empty()) {
            return succeeded(microversion_);
        }
    }
    auto auth = auth_for("compute", "", cancelled);
    if (!auth.ok()) {
        return failed<std::string>(auth.error);
    }
    std::string project;
    {
        std::lock_guard lock(mutex_);
        project = token_ ? token_->project_id : "";
    }
    const std::string url = version_url(auth.value.url, project);
    for (unsigned attempt = 0;; ++attempt) {
        if (attempt > 0 && !pause(backoff(attempt, options_.jitter()), cancelled)) {
            return failed<std::string>("Nova's version document at " + url + ": " + cancelled_message);
        }
        auto r = request_to(cloud_, "GET", url + "/", options_.http_timeout);
        r.headers.push_back("X-Auth-Token: " + auth.value.token);
        const auto answer = http(r, cancelled);
        if (answer.cancelled) {
            return failed<std::string>("Nova's version document at " + url + ": " + cancelled_message);
        }
        const Next next = classify(answer.status);
        if (next == Next::retry) {
            continue;
        }
        if (next != Next::done) {
            return failed<std::string>("Nova's version document at " + url + ": " + why(answer));
        }
        std::string error;
        auto chosen = choose_microversion(answer.body, error);
        if (!chosen) {
            return failed<std::string>(error + " (" + url + ")");
        }
        std::lock_guard lock(mutex_);
        microversion_ = *chosen;
        return succeeded(microversion_);
    }
}

Outcome<Reply> Session::call(const std::string& type, const std::string& method, const std::string& path,
                             const std::string& body, const Cancelled& cancelled, const std::set<long>& expected) {
    std::string pinned;
    if (type == "compute") {
        auto v = microversion(cancelled);
        if (!v.ok()) {
            return failed<Reply>(v.error);
        }
        pinned = v.value;
    }
    std::string refused;  // a token answered with 401
    bool renewed = false;
    unsigned refusals = 0;
    const std::string what = method + " " + type + " " + path;
    for (unsigned attempt = 0;; ++attempt) {
        if (attempt > 0 && !renewed && !pause(backoff(attempt, options_.jitter()), cancelled)) {
            return failed<Reply>(what + ": " + cancelled_message + " while retrying");
        }
        renewed = false;
        if (cancelled) {
            return failed<Reply>(what + ": " + cancelled_message);
        }
        auto auth = auth_for(type, refused, cancelled);
        if (!auth.ok()) {
            return failed<Reply>(auth.error);
        }
        std::string base = auth.value.url;
        if (type == "image") {
            base = with_version(base, "v2");
        } else if (type == "network") {
            base = with_version(base, "v2.0");
        }
        auto r = request_to(cloud_, method, base + path, options_.http_timeout);
        r.headers.push_back("X-Auth-Token: " + auth.value.token);
        if (!pinned.empty()) {
            r.headers.push_back("OpenStack-API-Version: compute " + pinned);
            r.headers.push_back("X-OpenStack-Nova-API-Version: " + pinned);
        }
        if (!body.empty()) {
            r.headers.push_back("Content-Type: application/json");
            r.body = body;
        }
        const auto answer = http(r, cancelled);
        if (answer.cancelled) {
            return failed<Reply>(what + ": " + cancelled_message);
        }
        const Next next = expected.contains(answer.status) ? Next::done : classify(answer.status);
        if (next == Next::done) {
            return succeeded(Reply{answer.status, answer.body});
        }
        if (next == Next::reauth) {
            // Revoked or expired early: a new token (see renewal_pause).
            if (const auto wait = renewal_pause(++refusals)) {
                log::write(log::Level::info,
                           what + " (" + base + "): the token was refused (HTTP 401); renewing it" +
                               (wait->count() ? " in " + std::to_string(wait->count()) + " ms" : ""));
                if (wait->count() && !pause(*wait, cancelled)) {
                    return failed<Reply>(what + ": " + cancelled_message + " while renewing the token");
                }
                refused = auth.value.token;
                renewed = true;
                continue;
            }
        }
        if (next != Next::retry) {
            return failed<Reply>(what + " (" + base + "): " + why(answer));
        }
        log::write(log::Level::info,
                   what + " (" + base + "): " + why(answer) + "; retrying (attempt " + std::to_string(attempt + 2) + ")");
    }
}

}  // namespace by::latent::openstack
