// The client half of bench/dispatch: submits builds over D-Bus and measures.
//
//   dispatch-client latency BUILDER COUNT     one build at a time; the step
//       runs bench `stamp`, which prints the realtime clock when the step
//       really started; latency = stamp - time just before SubmitBuild.
//   dispatch-client throughput BUILDER COUNT  submit COUNT builds at once,
//       wait for all BuildFinished signals; builds per second to completion.
//       BUILDER may be a comma-separated list: the builds go to each in turn.
//   dispatch-client log BUILDER              one build; seconds from just
//       before SubmitBuild to its BuildFinished (its log is then stored).
//   dispatch-client pickup BUILDER COUNT ADDRESS  as latency, COUNT builds
//       submitted to the master on the system bus and COUNT, in turn with
//       them, to another master of the same cluster on the bus at ADDRESS,
//       which has no free worker of BUILDER: the first master pulls them
//       and runs them (it is watched, and its logs read, on the system bus).
//   dispatch-client attached COUNT           waits until ConnectedWorkers
//       reaches COUNT; prints the realtime clock (s) when it did.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/bus.hpp"
#include "common/raii.hpp"

namespace {

struct Finished {
    std::set<std::string> paths;
    unsigned non_success = 0;
};

int on_finished(sd_bus_message* m, void* userdata, sd_bus_error*) {
    const char* path = nullptr;
    const char* result = nullptr;
    if (sd_bus_message_read(m, "os", &path, &result) < 0) {
        return 0;
    }
    auto* f = static_cast<Finished*>(userdata);
    f->paths.insert(path);
    if (std::strcmp(result, "success") != 0) {
        f->non_success++;
    }
    return 0;
}

bool wait_for(sd_bus* bus, const std::function<bool()>& done, double timeout_s) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    while (!done()) {
        int r = sd_bus_process(bus, nullptr);
        if (r < 0) {
            std::fprintf(stderr, "bus error: %s\n", std::strerror(-r));
            return false;
        }
        if (r > 0) {
            continue;
        }
        if (std::chrono::steady_clock::now() > deadline) {
            return false;
        }
        sd_bus_wait(bus, 100000);
    }
    return true;
}

std::string submit(sd_bus* bus, const char* builder) {
    by::BusError error;
    sd_bus_message* reply = nullptr;
    int r = sd_bus_call_method(bus, by::bus::master_name, by::bus::master_path, by::bus::master_iface, "SubmitBuild",
                               error.get(), &reply, "sa{ss}", builder, 0);
    by::MessagePtr owned(reply);
    if (r < 0) {
        std::fprintf(stderr, "SubmitBuild: %s\n", error.message());
        std::exit(1);
    }
    const char* path = nullptr;
    sd_bus_message_read(reply, "o", &path);
    return path;
}

std::string read_log(sd_bus* bus, const std::string& path) {
    by::BusError error;
    sd_bus_message* reply = nullptr;
    int r = sd_bus_call_method(bus, by::bus::master_name, path.c_str(), by::bus::build_iface, "ReadLog", error.get(),
                               &reply, "tt", uint64_t{0}, uint64_t{65536});
    by::MessagePtr owned(reply);
    if (r < 0) {
        return {};
    }
    const void* data = nullptr;
    size_t size = 0;
    sd_bus_message_read_array(reply, 'y', &data, &size);
    return std::string(static_cast<const char*>(data), size);
}

double percentile(std::vector<double> v, double p) {
    std::sort(v.begin(), v.end());
    size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
    return v[std::min(i, v.size() - 1)];
}

// One build of BUILDER submitted to the master on `to`; it is watched
// finishing on `runs` (f's bus), whose master ran it and has its log.
// Returns submit->step start in ms, or nothing after saying why.
std::optional<double> one_latency(sd_bus* to, sd_bus* runs, Finished& f, const char* builder) {
    uint64_t t0 = by::bus::now_realtime_usec();
    std::string path = submit(to, builder);
    if (!wait_for(runs, [&] { return f.paths.count(path) > 0; }, 30)) {
        std::fprintf(stderr, "build %s did not finish within 30 s\n", path.c_str());
        return std::nullopt;
    }
    std::string log = read_log(runs, path);
    auto pos = log.find("STAMP ");
    if (pos == std::string::npos) {
        std::fprintf(stderr, "no STAMP in the log of %s\n", path.c_str());
        return std::nullopt;
    }
    uint64_t stamp = std::strtoull(log.c_str() + pos + 6, nullptr, 10);
    return static_cast<double>(static_cast<int64_t>(stamp - t0)) / 1000.0;
}

void print_latency(const char* label, const std::vector<double>& ms) {
    std::printf("%slatency submit->step start over %zu builds: median %.3f ms, p99 %.3f ms, min %.3f ms, max %.3f ms\n",
                label, ms.size(), percentile(ms, 0.5), percentile(ms, 0.99), *std::min_element(ms.begin(), ms.end()),
                *std::max_element(ms.begin(), ms.end()));
}

int latency(sd_bus* bus, Finished& f, const char* builder, unsigned count) {
    std::vector<double> ms;
    for (unsigned i = 0; i < count; ++i) {
        const auto one = one_latency(bus, bus, f, builder);
        if (!one) {
            return 1;
        }
        ms.push_back(*one);
    }
    print_latency("", ms);
    return f.non_success ? 1 : 0;
}

// COUNT builds of BUILDER each to the master on `runs` (a local dispatch)
// and to the master on `queues` (which has no free worker of BUILDER, so
// `runs` pulls it), in turn, so that both see the same load over time.
int pickup(sd_bus* runs, sd_bus* queues, Finished& f, const char* builder, unsigned count) {
    std::vector<double> local;
    std::vector<double> across;
    for (unsigned i = 0; i < 2 * count; ++i) {
        const auto one = one_latency(i % 2 ? queues : runs, runs, f, builder);
        if (!one) {
            return 1;
        }
        (i % 2 ? across : local).push_back(*one);
    }
    print_latency("local dispatch (submitted to the master with the free workers): ", local);
    print_latency("cross-master pickup (submitted to the other master, run by this one): ", across);
    // The load of a shared machine drifts; a pair, a few ms apart, sees
    // about the same.
    std::vector<double> more;
    for (size_t i = 0; i < across.size(); ++i) {
        more.push_back(across[i] - local[i]);
    }
    std::printf("paired: each pickup minus the local dispatch just before it, over %zu pairs: median %+.3f ms\n",
                more.size(), percentile(more, 0.5));
    return f.non_success ? 1 : 0;
}

int throughput(sd_bus* bus, Finished& f, const char* builder, unsigned count) {
    // "At once", as far as the bus allows: dbus-daemon refuses more than
    // max_replies_per_connection (128 by default) calls in flight from one
    // connection, so keep a window of 100 outstanding submissions.
    constexpr unsigned window = 100;
    struct Ctx {
        std::set<std::string> mine;
        unsigned replies = 0;
        unsigned failures = 0;
        std::string last_error;
    } ctx;
    auto on_reply = [](sd_bus_message* m, void* userdata, sd_bus_error*) -> int {
        auto* c = static_cast<Ctx*>(userdata);
        ++c->replies;
        const char* path = nullptr;
        if (!sd_bus_message_is_method_error(m, nullptr) && sd_bus_message_read(m, "o", &path) > 0) {
            c->mine.insert(path);
        } else {
            ++c->failures;
            c->last_error = sd_bus_message_get_error(m)->message;
        }
        return 0;
    };
    std::vector<std::string> builders;
    for (const char* p = builder; *p;) {
        const char* comma = std::strchr(p, ',');
        builders.emplace_back(p, comma ? comma : p + std::strlen(p));
        p = comma ? comma + 1 : p + std::strlen(p);
    }
    auto t0 = std::chrono::steady_clock::now();
    for (unsigned sent = 0; sent < count; ++sent) {
        if (sent - ctx.replies >= window &&
            !wait_for(bus, [&] { return sent - ctx.replies < window; }, 60)) {
            std::fprintf(stderr, "SubmitBuild replies stopped coming\n");
            return 1;
        }
        int r = sd_bus_call_method_async(bus, nullptr, by::bus::master_name, by::bus::master_path,
                                         by::bus::master_iface, "SubmitBuild", on_reply, &ctx, "sa{ss}",
                                         builders[sent % builders.size()].c_str(), 0);
        if (r < 0) {
            std::fprintf(stderr, "cannot queue SubmitBuild: %s\n", std::strerror(-r));
            return 1;
        }
    }
    bool ok = wait_for(
        bus,
        [&] {
            if (ctx.replies < count) return false;
            return std::all_of(ctx.mine.begin(), ctx.mine.end(),
                               [&](const std::string& p) { return f.paths.count(p) > 0; });
        },
        600);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!ok || ctx.failures || ctx.mine.size() != count) {
        std::fprintf(stderr, "only %zu of %u builds were accepted and finished (%u refused; last error: %s)\n",
                     ctx.mine.size(), count, ctx.failures, ctx.last_error.c_str());
        return 1;
    }
    std::printf("throughput: %u builds of `true` submitted at once (<= %u in flight) finished in %.3f s: %.1f builds/s\n",
                count, window, secs, count / secs);
    return f.non_success ? 1 : 0;
}

int log_build(sd_bus* bus, Finished& f, const char* builder) {
    auto t0 = std::chrono::steady_clock::now();
    std::string path = submit(bus, builder);
    if (!wait_for(bus, [&] { return f.paths.count(path) > 0; }, 3600)) {
        std::fprintf(stderr, "build %s did not finish\n", path.c_str());
        return 1;
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    uint64_t id = 0;
    by::BusError error;
    if (sd_bus_get_property_trivial(bus, by::bus::master_name, path.c_str(), by::bus::build_iface, "Id", error.get(),
                                    't', &id) < 0) {
        std::fprintf(stderr, "Id of %s: %s\n", path.c_str(), error.message());
        return 1;
    }
    std::printf("log: build %llu finished in %.3f s\n", static_cast<unsigned long long>(id), secs);
    return f.non_success ? 1 : 0;
}

// PropertiesChanged(s iface, a{sv} changed, as invalidated) of the Master1 object.
int on_master_changed(sd_bus_message* m, void* userdata, sd_bus_error*) {
    const char* iface = nullptr;
    if (sd_bus_message_read(m, "s", &iface) < 0 || std::strcmp(iface, by::bus::master_iface) != 0 ||
        sd_bus_message_enter_container(m, 'a', "{sv}") < 0) {
        return 0;
    }
    while (sd_bus_message_enter_container(m, 'e', "sv") > 0) {
        const char* name = nullptr;
        if (sd_bus_message_read(m, "s", &name) < 0) {
            return 0;
        }
        if (std::strcmp(name, "ConnectedWorkers") == 0) {
            sd_bus_message_read(m, "v", "u", static_cast<uint32_t*>(userdata));
        } else {
            sd_bus_message_skip(m, "v");
        }
        sd_bus_message_exit_container(m);
    }
    return 0;
}

int attached(sd_bus* bus, unsigned count) {
    uint32_t connected = 0;
    sd_bus_slot* slot = nullptr;
    if (sd_bus_match_signal(bus, &slot, by::bus::master_name, by::bus::master_path,
                            "org.freedesktop.DBus.Properties", "PropertiesChanged", on_master_changed,
                            &connected) < 0) {
        std::fprintf(stderr, "cannot subscribe to PropertiesChanged\n");
        return 1;
    }
    by::SlotPtr owned(slot);
    // Subscribed first, so no change between this read and the signals is lost.
    by::BusError error;
    if (sd_bus_get_property_trivial(bus, by::bus::master_name, by::bus::master_path, by::bus::master_iface,
                                    "ConnectedWorkers", error.get(), 'u', &connected) < 0) {
        std::fprintf(stderr, "ConnectedWorkers: %s\n", error.message());
        return 1;
    }
    std::printf("watching\n");
    std::fflush(stdout);
    if (!wait_for(bus, [&] { return connected >= count; }, 600)) {
        std::fprintf(stderr, "only %u of %u workers attached\n", connected, count);
        return 1;
    }
    std::printf("attached %u at %.6f\n", count, static_cast<double>(by::bus::now_realtime_usec()) / 1e6);
    return 0;
}

// A connection to the bus at ADDRESS, as a client of it.
int open_address(by::BusPtr& out, const char* address) {
    sd_bus* b = nullptr;
    int r = sd_bus_new(&b);
    if (r < 0) {
        return r;
    }
    out.reset(b);
    if ((r = sd_bus_set_address(b, address)) < 0 || (r = sd_bus_set_bus_client(b, 1)) < 0 ||
        (r = sd_bus_start(b)) < 0) {
        return r;
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::string mode = argc > 1 ? argv[1] : "";
    bool two = mode == "log" || mode == "attached";
    if (!(two ? argc == 3 : mode == "pickup" ? argc == 5 : argc == 4 && (mode == "latency" || mode == "throughput"))) {
        std::fprintf(stderr,
                     "usage: %s latency|throughput BUILDER COUNT | pickup BUILDER COUNT ADDRESS | log BUILDER | "
                     "attached COUNT\n",
                     argv[0]);
        return 2;
    }
    by::BusPtr bus;
    if (int r = by::bus::open_system(bus); r < 0) {
        std::fprintf(stderr, "cannot connect to the system bus: %s\n", std::strerror(-r));
        return 1;
    }
    if (mode == "attached") {
        return attached(bus.get(), static_cast<unsigned>(std::strtoul(argv[2], nullptr, 10)));
    }
    Finished f;
    sd_bus_slot* slot = nullptr;
    if (sd_bus_match_signal(bus.get(), &slot, by::bus::master_name, by::bus::master_path, by::bus::master_iface,
                            "BuildFinished", on_finished, &f) < 0) {
        std::fprintf(stderr, "cannot subscribe to BuildFinished\n");
        return 1;
    }
    by::SlotPtr owned(slot);
    if (mode == "log") {
        return log_build(bus.get(), f, argv[2]);
    }
    unsigned count = static_cast<unsigned>(std::strtoul(argv[3], nullptr, 10));
    if (mode == "latency") {
        return latency(bus.get(), f, argv[2], count);
    }
    if (mode == "pickup") {
        by::BusPtr other;
        if (int r = open_address(other, argv[4]); r < 0) {
            std::fprintf(stderr, "cannot connect to the bus at %s: %s\n", argv[4], std::strerror(-r));
            return 1;
        }
        return pickup(bus.get(), other.get(), f, argv[2], count);
    }
    return throughput(bus.get(), f, argv[2], count);
}
