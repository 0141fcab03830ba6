// Latent workers as EC2 instances (or those of an EC2-compatible cloud),
// through the EC2 Query API with libcurl's own SigV4 signing. One instance
// per start, launched with a ClientToken derived from the start (a retried
// RunInstances never launches a second one) and tagged at launch, with its
// volumes, buildyard:owner = MASTER, buildyard:worker = NAME and
// buildyard:start = START: the tags alone find it again. See
// buildyard.ini(5) for the ec2.* keys and buildyard-latentd(8) for the IAM
// policy it needs.
//
// The worker inside learns its identity from the instance's user data,
// which buildyard-workerd --latent reads from the metadata service.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>

#include "common/config_ec2.hpp"
#include "latent/backend.hpp"
#include "latent/ec2/ec2_credentials.hpp"
#include "latent/ec2/ec2_request.hpp"
#include "latent/ec2/ec2_response.hpp"

namespace by::latent {

class Ec2Backend final : public Backend {
public:
    struct Options {
        // The deadline of one HTTP exchange.
        std::chrono::milliseconds http_timeout{30000};
        // Jitter of the back-off, in [0.5, 1]; random unless a test fixes it.
        std::function<double()> jitter;
    };

    Ec2Backend() : Ec2Backend(Options{}) {}
    explicit Ec2Backend(Options options);

    // create: RunInstances (spot first under ec2.spot = yes or fallback;
    //   on-demand after a refused spot launch under fallback), then
    //   DescribeInstances until it runs. Returns "ID (MARKET)", e.g.
    //   "i-0123456789abcdef0 (on-demand, spot refused:
    //   InsufficientInstanceCapacity)".
    // destroy: TerminateInstances of the instances tagged with `tag`, then
    //   waits for shutting-down or terminated. EC2 gives no grace: the
    //   worker gets none.
    // list: the instances tagged buildyard:owner = `master` and neither
    //   shutting down nor terminated, on every endpoint the ec2 workers name.
    // remove: terminates found.id if it still carries found.tag.
    // check: gone: no instance of the start, or one shutting down,
    //   terminated or stopped.
    BY_LATENT_BACKEND_OVERRIDES;

private:
    // Where an instance lives: what a call needs besides the parameters.
    struct Place {
        std::string endpoint;
        std::string region;
        std::string credential;
        bool operator<(const Place& o) const {
            return std::tie(endpoint, region, credential) < std::tie(o.endpoint, o.region, o.credential);
        }
    };
    static Place place_of(const config::Ec2Options& o) { return {o.endpoint, o.region, o.credential}; }

    // One action, retried with back-off while throttled or failing on the
    // server's side, until it succeeds, fails for good or is cancelled.
    // `error_code` receives EC2's code of the final error, if any.
    Outcome<ec2::Response> call(const Place& place, const std::string& action, const ec2::Params& params,
                                const Cancelled& cancelled, std::string* error_code = nullptr);
    Outcome<std::string> launch(const StartSpec& spec, const config::Ec2Options& options, ec2::Market market,
                                const std::string& root_device, const Cancelled& cancelled, std::string& error_code);
    // DescribeInstances of one id: nullopt when EC2 does not know it.
    Outcome<std::optional<ec2::Instance>> describe_one(const Place& place, const std::string& id,
                                                       const Cancelled& cancelled);
    Outcome<ec2::Instance> wait_running(const Place& place, const std::string& id, const Cancelled& cancelled);
    Outcome<std::vector<ec2::Instance>> describe(const Place& place, const ec2::Params& params,
                                                 const Cancelled& cancelled);
    Outcome<bool> terminate(const Place& place, const std::string& id, const Cancelled& cancelled);

    Options options_;
    ec2::CredentialSource credentials_;
    // Where list() found each instance, and the instance of each start
    // create() launched: calls by id see a new instance sooner than tag
    // filters do. A cache only: the tags remain the truth.
    std::mutex mutex_;
    std::map<std::string, Place> found_on_;
    std::map<std::string, std::string> instance_of_start_;
};

}  // namespace by::latent
