#include "latent/docker/docker_client.hpp"

#include <algorithm>
#include <cerrno>
#include <memory>
#include <mutex>
#include <system_error>

#include <curl/curl.h>
#include <sys/stat.h>

#include "common/raii.hpp"
#include "latent/curl_transfer.hpp"
#include "latent/docker/docker_decode.hpp"
#include "common/text.hpp"

namespace by::latent::docker {

namespace {

using libcurl::CurlPtr;
using libcurl::SlistPtr;

constexpr const char* api_base = "http://docker/v1.41";
// Longer answers keep their end (a pull's progress stream ends with its
// error); a JSON answer cut this way fails to parse and says so.
constexpr std::size_t max_body = 8 * 1024 * 1024;

bool unreserved(char c, std::string_view extra) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_' || c == '~' || extra.find(c) != std::string_view::npos;
}

std::string escape(std::string_view text, std::string_view keep) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    for (char c : text) {
        if (unreserved(c, keep)) {
            out += c;
        } else {
            const auto b = static_cast<unsigned char>(c);
            out += '%';
            out += hex[b >> 4];
            out += hex[b & 0xf];
        }
    }
    return out;
}

}  // namespace

std::string url_escape(std::string_view text) { return escape(text, ""); }

Client::Client(std::string socket_path) : socket_path_(std::move(socket_path)) { libcurl::init_once(); }

std::string Client::engine_error(const std::string& what, const Response& r) const {
    return what + ": " + error_message(r.body) + " (HTTP " + std::to_string(r.status) + " from the Docker engine at unix://" +
           socket_path_ + ")";
}

std::string Client::transport_error(const std::string& what, const std::string& curl_message, int curl_code) const {
    const std::string where = "the Docker engine at unix://" + socket_path_;
    if (curl_code == CURLE_COULDNT_CONNECT) {
        struct stat st {};
        std::string why;
        if (::stat(socket_path_.c_str(), &st) != 0) {
            why = std::generic_category().message(errno);
        } else if (!S_ISSOCK(st.st_mode)) {
            why = "not a socket";
        } else {
            why = "nobody accepts connections on it";
        }
        return what + ": cannot reach " + where + ": " + why + " (is the engine running?)";
    }
    if (curl_code == CURLE_OPERATION_TIMEDOUT) {
        return what + ": no answer from " + where + " in time";
    }
    if (curl_code == CURLE_ABORTED_BY_CALLBACK) {
        return what + ": cancelled: the call's deadline passed";
    }
    return what + ": " + where + ": " + curl_message;
}

Outcome<Response> Client::request(const std::string& method, const std::string& path, const std::optional<Json>& body,
                                  const Cancelled& cancelled, Milliseconds timeout) {
    const std::string what = method + " " + path.substr(0, path.find('?'));
    CurlPtr curl(curl_easy_init());
    if (!curl) {
        return failed<Response>(what + ": cannot set up a libcurl handle");
    }
    libcurl::Transfer transfer{
        .max_body = max_body, .overflow = libcurl::Transfer::Overflow::keep_end, .cancelled = &cancelled};
    char error_buffer[CURL_ERROR_SIZE] = {};
    const std::string url = api_base + path;
    const std::string payload = body ? text::json_dump(*body) : std::string();
    SlistPtr headers(curl_slist_append(nullptr, "Expect:"));
    if (body) {
        headers.reset(curl_slist_append(headers.release(), "Content-Type: application/json"));
    }
    CURL* h = curl.get();
    curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, socket_path_.c_str());
    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    libcurl::prepare(h, transfer, timeout, error_buffer, headers.get());
    if (method == "POST") {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, static_cast<long>(payload.size()));
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload.c_str());
    } else if (method != "GET") {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method.c_str());
    }
    const CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK) {
        const std::string message = error_buffer[0] ? error_buffer : curl_easy_strerror(rc);
        return failed<Response>(transport_error(what, message, rc));
    }
    Response r;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.status);
    r.body = std::move(transfer.body);
    r.truncated = transfer.truncated;
    return succeeded(std::move(r));
}

Outcome<std::string> Client::version(const Cancelled& cancelled, Milliseconds timeout) {
    auto r = request("GET", "/version", std::nullopt, cancelled, timeout);
    if (!r.ok()) {
        return failed<std::string>(r.error);
    }
    if (r.value.status != 200) {
        return failed<std::string>(engine_error("version", r.value));
    }
    return succeeded(decode_version(r.value.body));
}

Outcome<std::string> Client::create(const std::string& name, const Json& body, const Cancelled& cancelled,
                                    Milliseconds timeout) {
    const std::string what = "create container " + name;
    auto r = request("POST", "/containers/create?name=" + url_escape(name), body, cancelled, timeout);
    if (!r.ok()) {
        return failed<std::string>(r.error);
    }
    if (r.value.status != 201) {
        return failed<std::string>(engine_error(what, r.value));
    }
    auto id = decode_created_id(r.value.body);
    if (!id) {
        return failed<std::string>(what + ": the engine's answer has no Id: " + body_excerpt(r.value.body));
    }
    return succeeded(std::move(*id));
}

Outcome<bool> Client::start(const std::string& id, const Cancelled& cancelled, Milliseconds timeout) {
    auto r = request("POST", "/containers/" + url_escape(id) + "/start", std::nullopt, cancelled, timeout);
    if (!r.ok()) {
        return failed<bool>(r.error);
    }
    if (r.value.status != 204 && r.value.status != 304) {
        return failed<bool>(engine_error("start container " + id, r.value));
    }
    return succeeded(true);
}

Outcome<bool> Client::stop(const std::string& id, unsigned grace_seconds, const Cancelled& cancelled) {
    const Milliseconds timeout = std::chrono::seconds(grace_seconds) + default_timeout;
    auto r = request("POST", "/containers/" + url_escape(id) + "/stop?t=" + std::to_string(grace_seconds),
                     std::nullopt, cancelled, timeout);
    if (!r.ok()) {
        return failed<bool>(r.error);
    }
    if (r.value.status == 304 || r.value.status == 404) {
        return succeeded(false);
    }
    if (r.value.status != 204) {
        return failed<bool>(engine_error("stop container " + id, r.value));
    }
    return succeeded(true);
}

Outcome<ContainerState> Client::inspect(const std::string& id_or_name, const Cancelled& cancelled,
                                        Milliseconds timeout) {
    auto r = request("GET", "/containers/" + url_escape(id_or_name) + "/json", std::nullopt, cancelled, timeout);
    if (!r.ok()) {
        return failed<ContainerState>(r.error);
    }
    if (r.value.status == 404) {
        return succeeded(ContainerState{});
    }
    const std::string what = "inspect container " + id_or_name;
    if (r.value.status != 200) {
        return failed<ContainerState>(engine_error(what, r.value));
    }
    auto decoded = decode_container(r.value.body);
    if (!decoded) {
        return failed<ContainerState>(what + ": the engine's answer has no State: " + body_excerpt(r.value.body));
    }
    return succeeded(std::move(*decoded));
}

Outcome<int64_t> Client::wait(const std::string& id, const Cancelled& cancelled, Milliseconds timeout) {
    auto r = request("POST", "/containers/" + url_escape(id) + "/wait?condition=not-running", std::nullopt, cancelled,
                     timeout);
    if (!r.ok()) {
        return failed<int64_t>(r.error);
    }
    const std::string what = "wait for container " + id;
    if (r.value.status != 200) {
        return failed<int64_t>(engine_error(what, r.value));
    }
    const auto code = decode_wait(r.value.body);
    if (!code) {
        return failed<int64_t>(what + ": the engine's answer has no StatusCode: " + body_excerpt(r.value.body));
    }
    return succeeded(*code);
}

Outcome<std::string> Client::logs(const std::string& id, unsigned tail, const Cancelled& cancelled,
                                  Milliseconds timeout) {
    auto r = request("GET", "/containers/" + url_escape(id) + "/logs?stdout=1&stderr=1&tail=all", std::nullopt,
                     cancelled, timeout);
    if (!r.ok()) {
        return failed<std::string>(r.error);
    }
    if (r.value.status != 200) {
        return failed<std::string>(engine_error("logs of container " + id, r.value));
    }
    std::string text = demultiplex_logs(r.value.body, r.value.truncated);
    return succeeded(tail ? last_lines(text, tail) : text);
}

Outcome<std::vector<ContainerSummary>> Client::list(const std::vector<std::string>& labels, bool all,
                                                    const Cancelled& cancelled, Milliseconds timeout) {
    Json filters = Json::object();
    if (!labels.empty()) {
        filters["label"] = labels;
    }
    const std::string path =
        std::string("/containers/json?all=") + (all ? "1" : "0") + "&filters=" + url_escape(text::json_dump(filters));
    auto r = request("GET", path, std::nullopt, cancelled, timeout);
    if (!r.ok()) {
        return failed<std::vector<ContainerSummary>>(r.error);
    }
    if (r.value.status != 200) {
        return failed<std::vector<ContainerSummary>>(engine_error("list containers", r.value));
    }
    auto decoded = decode_container_list(r.value.body);
    if (!decoded) {
        return failed<std::vector<ContainerSummary>>("list containers: the engine's answer is not a list: " +
                                                     body_excerpt(r.value.body));
    }
    return succeeded(std::move(*decoded));
}

Outcome<bool> Client::remove(const std::string& id, const Cancelled& cancelled, Milliseconds timeout) {
    auto r = request("DELETE", "/containers/" + url_escape(id) + "?force=1&v=1", std::nullopt, cancelled, timeout);
    if (!r.ok()) {
        return failed<bool>(r.error);
    }
    if (r.value.status == 404) {
        return succeeded(false);
    }
    if (r.value.status != 204 && r.value.status != 200) {
        return failed<bool>(engine_error("remove container " + id, r.value));
    }
    return succeeded(true);
}

Outcome<ImageInfo> Client::inspect_image(const std::string& image, const Cancelled& cancelled, Milliseconds timeout) {
    // The engine's router takes the name with its slashes and tag as it is.
    auto r = request("GET", "/images/" + escape(image, "/:@") + "/json", std::nullopt, cancelled, timeout);
    if (!r.ok()) {
        return failed<ImageInfo>(r.error);
    }
    if (r.value.status == 404) {
        return succeeded(ImageInfo{});
    }
    if (r.value.status != 200) {
        return failed<ImageInfo>(engine_error("inspect image " + image, r.value));
    }
    return succeeded(decode_image(r.value.body));
}

Outcome<bool> Client::pull_image(const std::string& image, const Cancelled& cancelled, Milliseconds timeout) {
    const std::string what = "pull image " + image;
    auto r = request("POST", "/images/create?fromImage=" + url_escape(image), std::nullopt, cancelled, timeout);
    if (!r.ok()) {
        return failed<bool>(r.error);
    }
    if (r.value.status != 200) {
        return failed<bool>(engine_error(what, r.value));
    }
    // A failed pull still answers 200, and says so in its stream.
    if (auto error = decode_pull_error(r.value.body)) {
        return failed<bool>(what + ": " + *error);
    }
    return succeeded(true);
}

}  // namespace by::latent::docker
