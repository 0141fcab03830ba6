// One login to one cloud: a Keystone v3 token, cached and renewed before it
// expires and on a 401, the endpoints of its catalog, and Nova's
// microversion, negotiated on first use and pinned on every compute call.
// Each call is retried with back-off on no answer, 5xx, 409 and 429 until
// it succeeds, fails for good or is cancelled (the call's deadline).
// Thread-safe: latentd runs backend calls on threads of their own. No
// token or secret is ever put in an error.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "latent/backend.hpp"
#include "latent/openstack/openstack_api.hpp"
#include "latent/openstack/openstack_cloud.hpp"

namespace by::latent::openstack {

struct Reply {
    long status = 0;
    std::string body;
};

class Session {
public:
    struct Options {
        std::chrono::milliseconds http_timeout{30000};
        std::function<double()> jitter;  // in [0.5, 1]
        std::function<int64_t()> now;    // seconds since the epoch
    };

    Session(Cloud cloud, Options options) : cloud_(std::move(cloud)), options_(std::move(options)) {}

    const Cloud& cloud() const { return cloud_; }

    // METHOD `path` of service `type` ("compute", "image", "network"), with
    // a JSON `body` when not empty. A status in `expected` (such as 404) is
    // an answer like a 2xx; any other failure is an error naming the call.
    Outcome<Reply> call(const std::string& type, const std::string& method, const std::string& path,
                        const std::string& body, const Cancelled& cancelled, const std::set<long>& expected = {});

    // The pinned Nova microversion ("2.79"), negotiated on first use.
    Outcome<std::string> microversion(const Cancelled& cancelled);

    // Tokens obtained so far (for tests and the log).
    unsigned tokens_issued() const;

private:
    struct Auth {
        std::string token;
        std::string url;  // the service's endpoint
    };
    // A fresh token and the endpoint of `type`; `stale` is a token that
    // was refused, to be replaced even if it looks fresh.
    Outcome<Auth> auth_for(const std::string& type, const std::string& stale, const Cancelled& cancelled);
    Outcome<Token> issue(const Cancelled& cancelled);

    Cloud cloud_;
    Options options_;
    mutable std::mutex mutex_;
    std::optional<Token> token_;
    std::string microversion_;
    unsigned issued_ = 0;
};

}  // namespace by::latent::openstack
