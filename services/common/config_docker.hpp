// The docker.* keys of a latent worker, parsed into what the Engine API
// takes. The loader checks them with the same parsers
// (config_backend_docker.cpp), so a config that loaded always converts.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace by::config {

enum class DockerPull { never, missing, always };

struct DockerOptions {
    std::string socket_path = "/var/run/docker.sock";  // from docker.host = unix://PATH
    std::string image;
    DockerPull pull = DockerPull::missing;
    std::string network = "host";
    std::vector<std::string> binds;  // "HOST:CONTAINER[:ro|rw]", as HostConfig.Binds takes them
    std::vector<std::string> env;    // "KEY=VALUE", in the order written
    uint64_t memory_bytes = 0;       // 0: no limit
    uint64_t nano_cpus = 0;          // 0: no limit
    // Seconds between SIGTERM and SIGKILL when the container is stopped
    // (latentd reads docker.shutdown_timeout itself, as for every backend).
    uint64_t shutdown_timeout = 60;
};

// From a worker's backend_options ("docker.image" -> ...). nullopt with
// `error` set when a key is missing or wrong (never after a clean load).
std::optional<DockerOptions> docker_options(const std::map<std::string, std::string>& backend_options,
                                            std::string& error);

// The default of docker.host.
inline constexpr const char* default_docker_host = "unix:///var/run/docker.sock";

}  // namespace by::config
