// The Docker engine's answers, decoded: pure functions from a body as the
// engine sent it to what docker_client.hpp returns. They never throw,
// whatever the body holds (tests/fuzz/fuzz_docker_json.cpp feeds them
// arbitrary bytes); a body that does not say what is asked is nullopt.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "latent/docker/docker_client.hpp"

namespace by::latent::docker {

// At most 2000 bytes of `body`, without its trailing blanks, for messages.
std::string body_excerpt(std::string_view body);
// The engine's message from an error body ({"message": "..."}), or the body.
std::string error_message(std::string_view body);
// GET /version: "Version", or "unknown".
std::string decode_version(std::string_view body);
// POST /containers/create: the new container's "Id".
std::optional<std::string> decode_created_id(std::string_view body);
// GET /containers/ID/json: nullopt when it has no "State" object.
std::optional<ContainerState> decode_container(std::string_view body);
// POST /containers/ID/wait: "StatusCode".
std::optional<int64_t> decode_wait(std::string_view body);
// GET /containers/json: nullopt when it is not a list. Entries without an
// "Id" are left out.
std::optional<std::vector<ContainerSummary>> decode_container_list(std::string_view body);
// GET /images/NAME/json (status 200).
ImageInfo decode_image(std::string_view body);
// POST /images/create: its stream of JSON progress lines, of which one with
// "error" says the pull failed; that error, or nullopt.
std::optional<std::string> decode_pull_error(std::string_view body);

}  // namespace by::latent::docker
