// The client half of bench/history: how long one call holds the master's
// event loop. For each call it sends the call on one connection and, until
// its reply comes, pings the master two ways:
//   - over HTTP, GET /metrics from the master's metrics listener (another
//     thread, one request after another). The master answers it from the
//     same event loop, on a socket of its own, so the longest of these is
//     the call's loop time (plus one scrape, about half a millisecond);
//   - over the bus (org.freedesktop.DBus.Peer.Ping on a second connection,
//     which sd-bus answers from the same loop). This one also waits for
//     whatever dbus-daemon queued to the master before it: a 30 MB call
//     delays it by the time dbus-daemon takes to relay 30 MB, even while the
//     master's loop is idle. It is the delay another bus client sees.
//
//   loop-client ROUNDS MIDDLE METRICS-PORT   runs every call ROUNDS times;
//       prints one line per call: its round trip, the longest HTTP ping and
//       the longest bus ping, each the worst of the rounds, in ms. MIDDLE is
//       a build id in the middle of the history, for the calls about an old
//       build.
// The history (200,000 builds, build 1 with a 45-byte log, build 2 with an
// 8 MiB one) is made by bench/history before the master starts.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <curl/curl.h>

#include "common/bus.hpp"
#include "common/raii.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

by::BusPtr open_bus() {
    by::BusPtr bus;
    int r = by::bus::open_system(bus);
    if (r < 0) {
        std::fprintf(stderr, "loop-client: cannot open the bus: %s\n", std::strerror(-r));
        std::exit(1);
    }
    return bus;
}

struct Figures {
    double call_ms = 0;
    double longest_ping_ms = 0;
    double longest_http_ms = 0;
    unsigned pings = 0;
    std::string error;
};

struct Pending {
    bool done = false;
    std::string error;
};

int on_reply(sd_bus_message* m, void* userdata, sd_bus_error*) {
    auto* p = static_cast<Pending*>(userdata);
    p->done = true;
    if (const sd_bus_error* e = sd_bus_message_get_error(m)) {
        p->error = e->name ? e->name : "error";
    }
    return 0;
}

size_t discard(char*, size_t size, size_t n, void*) { return size * n; }

// GETs /metrics from the master, one request after another, from its own
// thread, from construction until stop(); longest() is the slowest answer.
class HttpPinger {
public:
    explicit HttpPinger(const std::string& url) : url_(url), thread_([this] { run(); }) {}
    ~HttpPinger() { stop(); }
    double stop() {
        running_ = false;
        if (thread_.joinable()) thread_.join();
        return longest_ms_;
    }
    const std::string& error() const { return error_; }  // after stop()

private:
    void run() {
        CURL* curl = curl_easy_init();
        if (!curl) {
            error_ = "curl_easy_init failed";
            return;
        }
        curl_easy_setopt(curl, CURLOPT_URL, url_.c_str());
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 120'000L);
        curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
        curl_easy_setopt(curl, CURLOPT_FORBID_REUSE, 1L);  // a new connection each time
        do {  // at least once, however quick the call
            const auto start = Clock::now();
            CURLcode rc = curl_easy_perform(curl);
            long status = 0;
            curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
            if (rc != CURLE_OK || status != 200) {
                error_ = rc != CURLE_OK ? curl_easy_strerror(rc) : "HTTP " + std::to_string(status);
                break;
            }
            longest_ms_ = std::max(longest_ms_, ms_since(start));
        } while (running_);
        curl_easy_cleanup(curl);
    }

    std::string url_;
    std::atomic<bool> running_{true};
    double longest_ms_ = 0;  // written by the thread, read after join
    std::string error_;
    std::thread thread_;
};

// Sends the call that `build` makes on `a`, pinging over `b` and over HTTP
// (`url`) until its reply.
Figures measure(sd_bus* a, sd_bus* b, const std::string& url, const std::function<int(sd_bus_message*)>& build,
                const char* path, const char* iface, const char* member) {
    Figures f;
    HttpPinger http(url);
    sd_bus_message* raw = nullptr;
    int r = sd_bus_message_new_method_call(a, &raw, by::bus::master_name, path, iface, member);
    by::MessagePtr call(raw);
    if (r >= 0) r = build(raw);
    Pending pending;
    sd_bus_slot* slot = nullptr;
    const auto start = Clock::now();
    if (r >= 0) r = sd_bus_call_async(a, &slot, raw, on_reply, &pending, 120'000'000);
    by::SlotPtr owned(slot);
    if (r < 0) {
        f.error = std::strerror(-r);
        return f;
    }
    while (!pending.done) {
        // Drive our side of `a` (writes a large call out, reads the reply).
        while ((r = sd_bus_process(a, nullptr)) > 0) {
        }
        if (r < 0 || pending.done) {
            break;
        }
        const auto ping_start = Clock::now();
        by::BusError error;
        sd_bus_message* reply = nullptr;
        r = sd_bus_call_method(b, by::bus::master_name, by::bus::master_path, "org.freedesktop.DBus.Peer", "Ping",
                               error.get(), &reply, "");
        by::MessagePtr owned_reply(reply);
        f.longest_ping_ms = std::max(f.longest_ping_ms, ms_since(ping_start));
        ++f.pings;
        while ((r = sd_bus_process(a, nullptr)) > 0) {
        }
    }
    f.call_ms = ms_since(start);
    f.longest_http_ms = http.stop();
    if (!http.error().empty()) {
        std::fprintf(stderr, "loop-client: GET %s: %s\n", url.c_str(), http.error().c_str());
        std::exit(1);
    }
    f.error = pending.error;
    return f;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: loop-client ROUNDS MIDDLE METRICS-PORT\n");
        return 2;
    }
    const int rounds = std::atoi(argv[1]);
    const uint64_t middle = std::strtoull(argv[2], nullptr, 10);
    const std::string url = std::string("http://127.0.0.1:") + argv[3] + "/metrics";
    curl_global_init(CURL_GLOBAL_DEFAULT);
    auto a = open_bus();
    auto b = open_bus();
    const std::string big(30u << 20, 'x');  // the 30 MB property of the report
    const std::string build1 = by::bus::path_encode(by::bus::build_prefix, "1");
    const std::string build2 = by::bus::path_encode(by::bus::build_prefix, "2");
    const std::string build_old = by::bus::path_encode(by::bus::build_prefix, std::to_string(middle));
    struct Call {
        const char* label;
        std::string path;
        const char* iface;
        const char* member;
        std::function<int(sd_bus_message*)> args;
    };
    const uint64_t huge = UINT64_MAX;
    const std::vector<Call> calls = {
        {"ListBuilds 0", by::bus::master_path, by::bus::master_iface, "ListBuilds",
         [](sd_bus_message* m) { return sd_bus_message_append(m, "t", uint64_t{0}); }},
        {"ListBuilds 2^64-1", by::bus::master_path, by::bus::master_iface, "ListBuilds",
         [&](sd_bus_message* m) { return sd_bus_message_append(m, "t", huge); }},
        {"ListBuildsBefore MIDDLE 1000", by::bus::master_path, by::bus::master_iface, "ListBuildsBefore",
         [&](sd_bus_message* m) { return sd_bus_message_append(m, "tt", middle, uint64_t{1000}); }},
        {"GetBuild MIDDLE", by::bus::master_path, by::bus::master_iface, "GetBuild",
         [&](sd_bus_message* m) { return sd_bus_message_append(m, "t", middle); }},
        {"Build1 GetAll (build MIDDLE)", build_old, "org.freedesktop.DBus.Properties", "GetAll",
         [](sd_bus_message* m) { return sd_bus_message_append(m, "s", by::bus::build_iface); }},
        {"ReadLog 0 2^64-1 (45-byte log)", build1, by::bus::build_iface, "ReadLog",
         [&](sd_bus_message* m) { return sd_bus_message_append(m, "tt", uint64_t{0}, huge); }},
        {"ReadLog 0 2^64-1 (8 MiB log)", build2, by::bus::build_iface, "ReadLog",
         [&](sd_bus_message* m) { return sd_bus_message_append(m, "tt", uint64_t{0}, huge); }},
        {"ReadLog 2^63 1 (offset past the end)", build1, by::bus::build_iface, "ReadLog",
         [](sd_bus_message* m) { return sd_bus_message_append(m, "tt", uint64_t{1} << 63, uint64_t{1}); }},
        {"Describe", by::bus::master_path, by::bus::master_iface, "Describe", [](sd_bus_message*) { return 0; }},
        {"Introspect build/ (enumerates builds)", by::bus::build_prefix, "org.freedesktop.DBus.Introspectable",
         "Introspect", [](sd_bus_message*) { return 0; }},
        {"SubmitBuild with a 30 MB property", by::bus::master_path, by::bus::master_iface, "SubmitBuild",
         [&](sd_bus_message* m) {
             int r = sd_bus_message_append(m, "s", "history");
             return r < 0 ? r : sd_bus_message_append(m, "a{ss}", 1, "big", big.c_str());
         }},
    };
    std::printf("%-40s %12s %14s %14s  %s\n", "call", "round trip", "loop (HTTP)", "bus ping", "answer");
    double worst = 0;
    double worst_bus = 0;
    for (const Call& c : calls) {
        Figures worst_of{};
        for (int i = 0; i < rounds; ++i) {
            Figures f = measure(a.get(), b.get(), url, c.args, c.path.c_str(), c.iface, c.member);
            worst_of.call_ms = std::max(worst_of.call_ms, f.call_ms);
            worst_of.longest_ping_ms = std::max(worst_of.longest_ping_ms, f.longest_ping_ms);
            worst_of.longest_http_ms = std::max(worst_of.longest_http_ms, f.longest_http_ms);
            worst_of.pings += f.pings;
            worst_of.error = f.error;
        }
        worst = std::max(worst, worst_of.longest_http_ms);
        worst_bus = std::max(worst_bus, worst_of.longest_ping_ms);
        std::printf("%-40s %9.2f ms %11.2f ms %11.2f ms  %s\n", c.label, worst_of.call_ms, worst_of.longest_http_ms,
                    worst_of.longest_ping_ms, worst_of.error.empty() ? "ok" : worst_of.error.c_str());
    }
    std::printf("longest loop time of any call (HTTP ping): %.2f ms (target: under 50 ms)\n", worst);
    std::printf("longest bus ping behind any call: %.2f ms (includes dbus-daemon relaying the call)\n", worst_bus);
    return 0;
}
