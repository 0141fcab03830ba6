// A client of the Docker Engine API (v1.41) over a unix socket: libcurl for
// HTTP, nlohmann-json for the bodies. Podman's compatible service speaks
// the same API. Every call blocks (latentd runs backend calls on threads of
// their own), has a deadline, and gives up early when `cancelled` is set. An
// error carries the engine's own message.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "latent/backend.hpp"

namespace by::latent::docker {

using Json = nlohmann::json;
using Milliseconds = std::chrono::milliseconds;

// The deadline of an ordinary call (inspect, create, start, list, remove).
inline constexpr Milliseconds default_timeout{30000};

// An HTTP answer of the engine, any status.
struct Response {
    long status = 0;
    std::string body;
    bool truncated = false;  // too long: only its end is kept
};

// What inspect tells about a container.
struct ContainerState {
    bool exists = false;   // false: the engine knows no such container (404)
    std::string id;
    std::string name;      // without the leading '/'
    std::string status;    // created, running, paused, restarting, exited, dead
    bool running = false;
    bool oom_killed = false;
    int64_t exit_code = 0;
    std::string error;     // State.Error: why the runtime could not start it
    bool tty = false;
    std::map<std::string, std::string> labels;
};

// One entry of a container list.
struct ContainerSummary {
    std::string id;
    std::vector<std::string> names;  // without the leading '/'
    std::string state;               // running, exited, ...
    std::map<std::string, std::string> labels;
};

// What image inspect tells; exists is false when the engine has no such image.
struct ImageInfo {
    bool exists = false;
    std::string id;
    std::vector<std::string> entrypoint;  // Config.Entrypoint, empty when none
};

// Splits the engine's multiplexed log stream (8-byte frame headers: stream,
// 0, 0, 0, big-endian length) into plain text, stdout and stderr in the order
// written. Text that is not such a stream (a container with a TTY) is
// returned as it is. With `cut_head` the stream may begin inside a frame
// (the end of a longer one): it is read from the first header whose chain of
// frames ends exactly at its end.
std::string demultiplex_logs(std::string_view raw, bool cut_head = false);

// The last `lines` lines of `text` (a last line without '\n' counts).
std::string last_lines(std::string_view text, std::size_t lines);

class Client {
public:
    // `socket_path` is the engine's unix socket, e.g. /var/run/docker.sock.
    explicit Client(std::string socket_path);

    const std::string& socket_path() const { return socket_path_; }

    // The engine's version string ("24.0.7", "4.3.1").
    Outcome<std::string> version(const Cancelled& cancelled, Milliseconds timeout = default_timeout);

    // POST /containers/create?name=NAME with `body`; returns the new id.
    Outcome<std::string> create(const std::string& name, const Json& body, const Cancelled& cancelled,
                                Milliseconds timeout = default_timeout);
    Outcome<bool> start(const std::string& id, const Cancelled& cancelled, Milliseconds timeout = default_timeout);
    // Stops with SIGTERM, then SIGKILL after `grace_seconds`. A container
    // that is not running is success.
    Outcome<bool> stop(const std::string& id, unsigned grace_seconds, const Cancelled& cancelled);
    // A container that does not exist is not an error: exists is false.
    Outcome<ContainerState> inspect(const std::string& id_or_name, const Cancelled& cancelled,
                                    Milliseconds timeout = default_timeout);
    // Waits until the container is not running; returns its exit status.
    Outcome<int64_t> wait(const std::string& id, const Cancelled& cancelled, Milliseconds timeout);
    // stdout and stderr, demultiplexed; the last `tail` lines (0: all). The
    // lines are counted here: Podman's own tail counts the pieces of a line
    // written in parts, and loses lines.
    Outcome<std::string> logs(const std::string& id, unsigned tail, const Cancelled& cancelled,
                              Milliseconds timeout = default_timeout);
    // Containers (all: also stopped ones) carrying every `labels` entry
    // ("key=value" or just "key").
    Outcome<std::vector<ContainerSummary>> list(const std::vector<std::string>& labels, bool all,
                                                const Cancelled& cancelled, Milliseconds timeout = default_timeout);
    // DELETE with force=1 (kills it if running) and its anonymous volumes.
    // Returns false when there was no such container.
    Outcome<bool> remove(const std::string& id, const Cancelled& cancelled, Milliseconds timeout = default_timeout);

    Outcome<ImageInfo> inspect_image(const std::string& image, const Cancelled& cancelled,
                                     Milliseconds timeout = default_timeout);
    // Pulls `image` from its registry; the engine's error if that fails.
    Outcome<bool> pull_image(const std::string& image, const Cancelled& cancelled, Milliseconds timeout);

    // One request. `path` starts after the version ("/containers/json?all=1").
    // A transport failure (no socket, deadline) is an error; any HTTP status
    // is a Response.
    Outcome<Response> request(const std::string& method, const std::string& path, const std::optional<Json>& body,
                              const Cancelled& cancelled, Milliseconds timeout);

private:
    // "what: the engine's message (HTTP status)".
    std::string engine_error(const std::string& what, const Response& r) const;
    // The transport error, with why the socket cannot be reached if it cannot.
    std::string transport_error(const std::string& what, const std::string& curl_message, int curl_code) const;

    std::string socket_path_;
};

// A path segment or query value, percent-encoded.
std::string url_escape(std::string_view text);

}  // namespace by::latent::docker
