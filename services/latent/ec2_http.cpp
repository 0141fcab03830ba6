#include "latent/ec2_http.hpp"

#include <algorithm>
#include <memory>
#include <mutex>
#include <thread>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "common/raii.hpp"

namespace by::latent::ec2 {

namespace {

using CurlPtr = std::unique_ptr<CURL, FreeWith<curl_easy_cleanup>>;
using SlistPtr = std::unique_ptr<curl_slist, FreeWith<curl_slist_free_all>>;

constexpr std::size_t max_body = 16 * 1024 * 1024;
constexpr std::chrono::milliseconds max_connect_timeout{10000};

struct Transfer {
    std::string body;
    const Cancelled* cancelled = nullptr;
};

size_t on_data(char* data, size_t size, size_t count, void* user) {
    auto* t = static_cast<Transfer*>(user);
    const size_t n = size * count;
    if (t->body.size() + n > max_body) {
        return 0;  // ends the transfer with CURLE_WRITE_ERROR
    }
    t->body.append(data, n);
    return n;
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    const auto* t = static_cast<Transfer*>(user);
    return t->cancelled && t->cancelled->load() ? 1 : 0;
}

void init_curl_once() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

}  // namespace

HttpAnswer http(const HttpRequest& request, const Cancelled& cancelled) {
    init_curl_once();
    HttpAnswer answer;
    CurlPtr curl(curl_easy_init());
    if (!curl) {
        answer.error = "cannot set up a libcurl handle";
        return answer;
    }
    Transfer transfer;
    transfer.cancelled = &cancelled;
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
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(request.timeout.count()));
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(std::min(request.timeout, max_connect_timeout).count()));
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error_buffer);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &transfer);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &transfer);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
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
