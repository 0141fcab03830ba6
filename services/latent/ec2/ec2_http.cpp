#include "latent/ec2/ec2_http.hpp"

#include <algorithm>
#include <memory>
#include <mutex>
#include <thread>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "common/raii.hpp"
#include "latent/curl_transfer.hpp"

namespace by::latent::ec2 {

namespace {

using libcurl::CurlPtr;
using libcurl::SlistPtr;

constexpr std::size_t max_body = 16 * 1024 * 1024;

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
    // The metadata service must not be reached through a proxy.
    curl_easy_setopt(h, CURLOPT_NOPROXY, "169.254.169.254,[fd00:ec2::254]");
    if (request.method == "POST" || request.method == "PUT") {
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, static_cast<long>(request.body.size()));
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, request.body.c_str());
        if (request.method == "PUT") {
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PUT");
        }
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

}  // namespace by::latent::ec2
