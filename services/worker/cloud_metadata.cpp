#include "worker/cloud_metadata.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <curl/curl.h>
#include <unistd.h>

#include "common/shared_library.hpp"

namespace by::worker {

namespace {

// The few libcurl functions the metadata source calls, from libcurl.so.4
// (the soname of libcurl 7 and 8), loaded at the first fetch.
#define BY_LIBCURL(X)                    \
    X(global_init, curl_global_init)     \
    X(easy_init, curl_easy_init)         \
    X(setopt, curl_easy_setopt)          \
    X(perform, curl_easy_perform)        \
    X(getinfo, curl_easy_getinfo)        \
    X(cleanup, curl_easy_cleanup)        \
    X(strerror, curl_easy_strerror)      \
    X(slist_append, curl_slist_append)   \
    X(slist_free_all, curl_slist_free_all)

struct Libcurl {
    BY_LIBCURL(BY_LIBRARY_MEMBER)
    std::string error;
};

const Libcurl& libcurl() {
    static const Libcurl lib = [] {
        Libcurl table;
        SharedLibrary so("libcurl.so.4");
        BY_LIBCURL(BY_LIBRARY_GET)
        if (!so.error().empty()) {
            return Libcurl{.error = so.error()};
        }
        table.global_init(CURL_GLOBAL_DEFAULT);
        return table;
    }();
    return lib;
}

constexpr std::size_t max_user_data = 64 * 1024;  // EC2's limit is 16 KiB

struct Answer {
    long status = 0;
    std::string body;
    std::string error;
};

size_t on_data(char* data, size_t size, size_t count, void* user) {
    auto* body = static_cast<std::string*>(user);
    const size_t n = size * count;
    if (body->size() + n > max_user_data) {
        return 0;
    }
    body->append(data, n);
    return n;
}

Answer exchange(const char* method, const std::string& url, const std::string& header,
                std::chrono::milliseconds timeout) {
    const Libcurl& c = libcurl();
    Answer a;
    if (!c.error.empty()) {
        a.error = c.error;
        return a;
    }
    std::unique_ptr<CURL, decltype(c.cleanup)> h(c.easy_init(), c.cleanup);
    if (!h) {
        a.error = "cannot set up a libcurl handle";
        return a;
    }
    std::unique_ptr<curl_slist, decltype(c.slist_free_all)> headers(c.slist_append(nullptr, header.c_str()),
                                                                    c.slist_free_all);
    c.setopt(h.get(), CURLOPT_URL, url.c_str());
    c.setopt(h.get(), CURLOPT_PROTOCOLS_STR, "http,https");
    c.setopt(h.get(), CURLOPT_NOSIGNAL, 1L);
    c.setopt(h.get(), CURLOPT_NOPROXY, "*");  // the metadata service is never behind a proxy
    c.setopt(h.get(), CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
    c.setopt(h.get(), CURLOPT_HTTPHEADER, headers.get());
    c.setopt(h.get(), CURLOPT_WRITEFUNCTION, on_data);
    c.setopt(h.get(), CURLOPT_WRITEDATA, &a.body);
    if (std::string_view(method) == "PUT") {
        c.setopt(h.get(), CURLOPT_CUSTOMREQUEST, "PUT");
        c.setopt(h.get(), CURLOPT_POSTFIELDS, "");
    }
    if (CURLcode rc = c.perform(h.get()); rc != CURLE_OK) {
        a.error = rc == CURLE_WRITE_ERROR ? "an answer of more than 64 KiB" : c.strerror(rc);
        a.body.clear();
        return a;
    }
    c.getinfo(h.get(), CURLINFO_RESPONSE_CODE, &a.status);
    return a;
}

std::string without_slash(std::string url) {
    while (!url.empty() && url.back() == '/') {
        url.pop_back();
    }
    return url;
}

// The first exchange, asked again while the service cannot be reached (at
// boot the network may come up a moment late).
Answer first_exchange(const MetadataSource& source, const char* method, const std::string& url,
                      const std::string& header) {
    Answer a;
    for (unsigned i = 0; i < std::max(source.attempts, 1u); ++i) {
        if (i > 0) {
            std::this_thread::sleep_for(source.pause);
        }
        a = exchange(method, url, header, source.timeout);
        if (a.status != 0) {
            break;
        }
    }
    return a;
}

// The user data from an answer: 404 is an instance launched without any.
UserData take_user_data(Answer data, UserData out) {
    if (data.status == 404) {
        return out;
    }
    if (data.status != 200) {
        out.error = "user data: " + (data.status ? "HTTP " + std::to_string(data.status) : data.error);
        return out;
    }
    out.text = std::move(data.body);
    return out;
}

UserData fetch_ec2(const MetadataSource& source, const std::string& base, UserData out) {
    auto token = first_exchange(source, "PUT", base + "/latest/api/token", "X-aws-ec2-metadata-token-ttl-seconds: 60");
    if (token.status != 200 || token.body.empty()) {
        out.error = "session token PUT: " + (token.status ? "HTTP " + std::to_string(token.status) : token.error);
        return out;
    }
    return take_user_data(exchange("GET", base + "/latest/user-data", "X-aws-ec2-metadata-token: " + token.body,
                                   source.timeout),
                          std::move(out));
}

UserData fetch_openstack(const MetadataSource& source, const std::string& base, UserData out) {
    return take_user_data(first_exchange(source, "GET", base + "/openstack/latest/user_data", "Accept: */*"),
                          std::move(out));
}

UserData read_config_drive(const std::string& dir, UserData out) {
    const std::string path = dir + "/openstack/latest/user_data";
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        if (errno != ENOENT) {
            out.error = "cannot read " + path + ": " + std::strerror(errno);
        } else if (::access((dir + "/openstack").c_str(), F_OK) != 0) {
            out.error = dir + " holds no config drive (no openstack/ in it): mount the drive labelled config-2 "
                              "there read-only";
        }
        return out;  // a drive without user data: none
    }
    std::string text(max_user_data + 1, '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<std::size_t>(in.gcount()));
    if (text.size() > max_user_data) {
        out.error = path + " is larger than 64 KiB";
        return out;
    }
    out.text = std::move(text);
    return out;
}

}  // namespace

std::optional<MetadataKind> parse_metadata_kind(std::string_view text) {
    if (text == "ec2") return MetadataKind::ec2;
    if (text == "openstack") return MetadataKind::openstack;
    if (text == "config-drive") return MetadataKind::config_drive;
    return std::nullopt;
}

std::string default_metadata_url(MetadataKind kind) {
    return kind == MetadataKind::config_drive ? "/mnt/config" : "http://169.254.169.254";
}

UserData fetch_user_data(const MetadataSource& source) {
    const std::string base = without_slash(source.url);
    UserData out;
    switch (source.kind) {
    case MetadataKind::ec2:
        out.description = "the EC2 metadata service at " + base;
        return fetch_ec2(source, base, std::move(out));
    case MetadataKind::openstack:
        out.description = "the OpenStack metadata service at " + base;
        return fetch_openstack(source, base, std::move(out));
    case MetadataKind::config_drive:
        out.description = "the config drive at " + base;
        return read_config_drive(base, std::move(out));
    }
    out.error = "unknown kind of metadata service";
    return out;
}

}  // namespace by::worker
