// libFuzzer harness: the EC2 backend's decoders on arbitrary bodies, as a
// hostile or broken endpoint (or metadata service, or credential file)
// could send them: the Query API's XML answers (ec2::parse_response), the
// instance role's JSON credentials, a credential file, and the ISO 8601
// times in them. None may throw or crash; what they return must hold
// together.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "latent/ec2/ec2_credentials.hpp"
#include "latent/ec2/ec2_response.hpp"
#include "latent/http_call.hpp"

using namespace by::latent;
using namespace by::latent::ec2;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view body(reinterpret_cast<const char*>(data), size);

    const Response r = parse_response(body);
    FUZZ_CHECK(r.parsed || !r.parse_error.empty());
    for (const auto& i : r.instances) {
        FUZZ_CHECK(!state_text(i).empty());
        ending(i.state);
    }

    std::string error;
    if (const auto c = parse_role_credentials(body, error)) {
        FUZZ_CHECK(!c->key_id.empty() && !c->secret.empty());
        needs_refresh(*c, 0);
        needs_refresh(*c, INT64_MAX);
    } else {
        FUZZ_CHECK(!error.empty());
    }
    error.clear();
    if (const auto c = parse_credential_file(body, error)) {
        FUZZ_CHECK(!c->key_id.empty() && !c->secret.empty());
    } else {
        FUZZ_CHECK(!error.empty());
    }
    parse_iso8601(body);
    return 0;
}
