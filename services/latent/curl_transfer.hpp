// What the Docker and EC2 backends' HTTP calls share: libcurl set up once,
// its handles owned, and one transfer's body, deadline and cancellation.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include <curl/curl.h>

#include "common/raii.hpp"
#include "latent/backend.hpp"

namespace by::latent::libcurl {

using CurlPtr = std::unique_ptr<CURL, FreeWith<curl_easy_cleanup>>;
using SlistPtr = std::unique_ptr<curl_slist, FreeWith<curl_slist_free_all>>;

// curl_global_init, once: it is not thread-safe, and backend calls run on
// many threads.
void init_once();

struct Transfer {
    // Past max_body, keep the end of a longer body (keep_end: a pull's
    // progress stream ends with its error), or fail the transfer with
    // CURLE_WRITE_ERROR.
    enum class Overflow { keep_end, fail };
    std::size_t max_body = 0;
    Overflow overflow = Overflow::fail;
    const Cancelled* cancelled = nullptr;

    std::string body{};
    bool truncated = false;  // keep_end cut its start
};

// Sets what every call of ours sets on `h`: no signals (threads), the
// deadline (and at most 10 s of it to connect), the error buffer, the body
// into `transfer`, a cancellation check about once a second, and `headers`.
void prepare(CURL* h, Transfer& transfer, std::chrono::milliseconds timeout, char* error_buffer,
             curl_slist* headers);

}  // namespace by::latent::libcurl
