#include "latent/http_call.hpp"

#include <algorithm>
#include <cctype>
#include <ctime>
#include <memory>
#include <mutex>
#include <thread>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "common/raii.hpp"
#include "latent/curl_transfer.hpp"

namespace by::latent {

namespace {

using libcurl::CurlPtr;
using libcurl::SlistPtr;

constexpr std::size_t max_body = 16 * 1024 * 1024;

size_t on_header(char* data, size_t size, size_t count, void* user) {
    auto* headers = static_cast<std::map<std::string, std::string>*>(user);
    const std::string_view line(data, size * count);
    const auto colon = line.find(':');
    if (colon != std::string_view::npos && headers->size() < 200) {
        std::string name(line.substr(0, colon));
        for (auto& c : name) {
            c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        }
        std::string_view value = line.substr(colon + 1);
        while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
        while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' ')) {
            value.remove_suffix(1);
        }
        (*headers)[name] = std::string(value);
    }
    return size * count;
}

}  // namespace

HttpAnswer http(const HttpRequest& request, const Cancelled& cancelled) {
    libcurl::init_once();
    HttpAnswer answer;
    CurlPtr curl(curl_easy_init());
    if (!curl) {
        answer.error = "cannot set up a libcurl handle";
        return answer;
    }
    libcurl::Transfer transfer{
        .max_body = max_body, .overflow = libcurl::Transfer::Overflow::fail, .cancelled = &cancelled};
    char error_buffer[CURL_ERROR_SIZE] = {};
    // No "Expect:" to turn 100-continue off: libcurl's SigV4 would sign it
    // as a header, which it then does not send. Bodies here are far below
    // the 1 MiB from which libcurl asks for 100-continue.
    SlistPtr headers;
    for (const auto& h : request.headers) {
        headers.reset(curl_slist_append(headers.release(), h.c_str()));
    }
    CURL* h = curl.get();
    curl_easy_setopt(h, CURLOPT_URL, request.url.c_str());
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    libcurl::prepare(h, transfer, request.timeout, error_buffer, headers.get());
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &answer.headers);
    if (!request.ca_file.empty()) {
        curl_easy_setopt(h, CURLOPT_CAINFO, request.ca_file.c_str());
    }
    if (!request.verify) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    // The metadata services must not be reached through a proxy.
    curl_easy_setopt(h, CURLOPT_NOPROXY, "169.254.169.254,[fd00:ec2::254]");
    if (request.method == "POST" || request.method == "PUT") {
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, static_cast<long>(request.body.size()));
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, request.body.c_str());
        if (request.method == "PUT") {
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PUT");
        }
    } else if (request.method == "DELETE") {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
    }
    if (!request.sigv4.empty()) {
        // libcurl signs the request itself (AWS Signature Version 4).
        curl_easy_setopt(h, CURLOPT_AWS_SIGV4, request.sigv4.c_str());
        curl_easy_setopt(h, CURLOPT_USERNAME, request.key_id.c_str());
        curl_easy_setopt(h, CURLOPT_PASSWORD, request.secret.c_str());
    }
    const CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK) {
        answer.cancelled = rc == CURLE_ABORTED_BY_CALLBACK;
        answer.error = answer.cancelled          ? cancelled_message
                       : rc == CURLE_WRITE_ERROR ? "an answer of more than 16 MiB"
                       : error_buffer[0]         ? std::string(error_buffer)
                                                 : std::string(curl_easy_strerror(rc));
        return answer;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &answer.status);
    if (answer.status == 0) {
        answer.error = "no HTTP status in the answer";
    }
    answer.body = std::move(transfer.body);
    return answer;
}

bool pause(std::chrono::milliseconds d, const Cancelled& cancelled) {
    const auto until = std::chrono::steady_clock::now() + d;
    while (!cancelled && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(std::min(std::chrono::milliseconds(50), d));
    }
    return !cancelled;
}

std::string base64(const std::string& data) {
    std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(data.data()), static_cast<int>(data.size()));
    out.resize(n < 0 ? 0 : static_cast<std::size_t>(n));
    return out;
}

std::string url_escape(const std::string& s) {
    // Since 7.82 curl_easy_escape needs no handle.
    std::unique_ptr<char, decltype(&curl_free)> e(curl_easy_escape(nullptr, s.data(), static_cast<int>(s.size())),
                                                  &curl_free);
    return e ? std::string(e.get()) : std::string();
}

std::chrono::milliseconds backoff(unsigned attempt, double jitter) {
    const unsigned shift = std::min(attempt ? attempt - 1 : 0, 5u);
    const double base = 250.0 * (1u << shift);
    return std::chrono::milliseconds(static_cast<long>(base * std::clamp(jitter, 0.5, 1.0)));
}

std::chrono::milliseconds poll_interval(unsigned n) {
    const unsigned shift = std::min(n, 3u);
    return std::chrono::milliseconds(250 * (1 << shift));
}

std::optional<int64_t> parse_iso8601(std::string_view text) {
    std::tm tm{};
    const std::string s(text);
    const char* end = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
    if (!end || (*end != 'Z' && *end != '\0' && *end != '.')) {
        return std::nullopt;
    }
    return static_cast<int64_t>(timegm(&tm));
}

}  // namespace by::latent
