#include "latent/curl_transfer.hpp"

#include <algorithm>
#include <mutex>

namespace by::latent::libcurl {

namespace {

constexpr std::chrono::milliseconds max_connect_timeout{10000};

size_t on_data(char* data, size_t size, size_t count, void* user) {
    auto* t = static_cast<Transfer*>(user);
    const size_t n = size * count;
    if (t->overflow == Transfer::Overflow::fail) {
        if (t->body.size() + n > t->max_body) {
            return 0;  // ends the transfer with CURLE_WRITE_ERROR
        }
        t->body.append(data, n);
        return n;
    }
    t->body.append(data, n);
    if (t->body.size() > t->max_body) {
        t->body.erase(0, t->body.size() - t->max_body / 2);
        t->truncated = true;
    }
    return n;
}

// libcurl calls this about once a second even while nothing moves, so a
// cancelled call ends within a second.
int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    const auto* t = static_cast<Transfer*>(user);
    return t->cancelled && t->cancelled->load() ? 1 : 0;
}

}  // namespace

void init_once() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

void prepare(CURL* h, Transfer& transfer, std::chrono::milliseconds timeout, char* error_buffer,
             curl_slist* headers) {
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);  // threads: no SIGALRM for timeouts
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(std::min(timeout, max_connect_timeout).count()));
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error_buffer);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &transfer);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &transfer);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
}

}  // namespace by::latent::libcurl
