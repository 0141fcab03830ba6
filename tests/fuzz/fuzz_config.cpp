// libFuzzer harness: the master's configuration loader (config::load) on
// arbitrary master.ini files and drop-ins. The input is master.ini; the
// bytes after a line ";;; master.d" (if any) are master.d/50-fuzz.ini.
// Secrets may name the credential "cred" of the harness's own directory
// (seeds do), or any file.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "common/config.hpp"
#include "fuzz_check.hpp"
#include "temp_dir.hpp"

namespace {

const TempDir& dir() {
    static const TempDir d("buildyard-fuzz-config");
    return d;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    dir().write("creds/cred", "credential-secret\n");
    std::filesystem::create_directories(dir().path("state"));
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    constexpr std::string_view separator = ";;; master.d\n";
    const auto cut = input.find(separator);
    const std::string main = dir().write("master.ini", std::string(input.substr(0, cut)));
    const std::string dropin = dir().path("master.d/50-fuzz.ini");
    std::error_code ec;
    if (cut == std::string_view::npos) {
        std::filesystem::remove(dropin, ec);
    } else {
        dir().write("master.d/50-fuzz.ini", std::string(input.substr(cut + separator.size())));
    }

    by::config::Environment env;
    env.hostname = "fuzzhost";
    env.credentials_directory = dir().path("creds");
    env.state_directory = dir().path("state");
    const by::config::LoadResult r = by::config::load(main, env);
    auto rank = [&](const std::string& file) { return file == main ? 0 : file == dropin ? 1 : 2; };

    // A config, or at least one error saying why not; never both.
    FUZZ_CHECK(r.config.has_value() == r.errors.empty());
    for (std::size_t i = 0; i < r.errors.size(); ++i) {
        const auto& e = r.errors[i];
        FUZZ_CHECK(!e.file.empty() && !e.message.empty() && e.line >= 0);
        FUZZ_CHECK(!e.str().empty());
        if (i > 0) {  // in the order the files were read, then by line
            const auto& p = r.errors[i - 1];
            FUZZ_CHECK(rank(p.file) < rank(e.file) || (p.file == e.file && p.line <= e.line));
        }
    }
    if (!r.config) {
        return 0;
    }
    const auto& c = *r.config;
    for (const auto& [name, w] : c.workers) {
        FUZZ_CHECK(name == w.name && by::config::valid_worker_name(name));
        FUZZ_CHECK(!by::config::escape_unit_instance(name).empty());
        FUZZ_CHECK(w.type == by::config::WorkerType::local || !w.password.empty() ||
                   w.type == by::config::WorkerType::latent);
    }
    for (const auto& [name, b] : c.builders) {
        FUZZ_CHECK(name == b.name && !b.steps.empty() && !b.workers.empty());
        for (const auto& w : b.workers) {
            FUZZ_CHECK(c.workers.contains(w));  // cross-references resolved
        }
    }
    if (!c.master.listen.empty()) {
        FUZZ_CHECK(by::config::parse_host_port(c.master.listen).has_value());
    }
    return 0;
}
