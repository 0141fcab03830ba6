// libFuzzer harness: every decoder of the Docker engine's answers
// (latent/docker/docker_decode.hpp) and its log stream (demultiplex_logs,
// last_lines) on the same arbitrary body, as a hostile or broken engine
// could send it. None may throw or crash, and what they return must hold
// together.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "latent/docker/docker_decode.hpp"

using namespace by::latent::docker;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view body(reinterpret_cast<const char*>(data), size);

    FUZZ_CHECK(body_excerpt(body).size() <= 2000);
    error_message(body);
    FUZZ_CHECK(!decode_version(body).empty());
    if (const auto id = decode_created_id(body)) {
        FUZZ_CHECK(!id->empty());
    }
    if (const auto state = decode_container(body)) {
        FUZZ_CHECK(state->exists);
    }
    decode_wait(body);
    if (const auto list = decode_container_list(body)) {
        for (const auto& c : *list) {
            FUZZ_CHECK(!c.id.empty());
        }
    }
    FUZZ_CHECK(decode_image(body).exists);
    decode_pull_error(body);

    // The log stream, whole and cut: never longer than what came in.
    for (bool cut : {false, true}) {
        const std::string text = demultiplex_logs(body, cut);
        FUZZ_CHECK(text.size() <= body.size());
        const std::string tail = last_lines(text, 50);
        FUZZ_CHECK(tail.size() <= text.size() && std::string_view(text).ends_with(tail));
    }
    return 0;
}
