// libFuzzer harness: a worker's own file (config::load_worker) on arbitrary
// workers/NAME.ini contents. Secrets may name the credential "cred" of the
// harness's own directory (seeds do), or any file.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/worker_config.hpp"
#include "fuzz_check.hpp"
#include "temp_dir.hpp"

namespace {

const TempDir& dir() {
    static const TempDir d("buildyard-fuzz-worker");
    return d;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    dir().write("creds/cred", "credential-secret\n");
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string file = dir().write("w1.ini", std::string(reinterpret_cast<const char*>(data), size));
    by::config::Environment env;
    env.hostname = "fuzzhost";
    env.credentials_directory = dir().path("creds");
    const auto r = by::config::load_worker("w1", file, true, env);

    FUZZ_CHECK(r.config.has_value() == r.errors.empty());
    for (const auto& e : r.errors) {
        FUZZ_CHECK(e.file == file && !e.message.empty() && e.line >= 0);
    }
    if (r.config) {
        const auto& w = *r.config;
        FUZZ_CHECK(w.name == "w1" && !w.basedir.empty() && w.basedir[0] == '/');
        FUZZ_CHECK(w.kill_timeout > 0 && w.reconnect_max > 0 && w.reconnect_max <= 86400);
        FUZZ_CHECK(!w.masters.empty());
        for (const auto& m : w.masters) {
            // "bus" only alone; every other entry an address, none twice.
            FUZZ_CHECK(w.local() || by::config::parse_host_port(m).has_value());
            FUZZ_CHECK(std::count(w.masters.begin(), w.masters.end(), m) == 1);
        }
        FUZZ_CHECK(w.local() || !w.password.empty());
        for (const auto& fp : w.master_fingerprints) {
            FUZZ_CHECK(by::config::parse_fingerprint(fp) == fp);
        }
    }
    return 0;
}
