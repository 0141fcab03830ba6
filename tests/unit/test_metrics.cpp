// The master's metrics as a scrape shows them: what each event counts, that
// gauges follow the workers and builders, and the HTTP server itself.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <fstream>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>

#include "master/metrics.hpp"

namespace by::master {
namespace {

constexpr uint64_t sec = 1'000'000;
constexpr uint64_t t0 = 1'700'000'000 * sec;

// The value of the sample `series` (name and labels exactly as written in
// the text format), or nothing if there is no such line.
std::optional<double> sample(const std::string& text, const std::string& series) {
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        if (line.compare(0, series.size() + 1, series + " ") == 0) {
            return std::stod(line.substr(series.size() + 1));
        }
    }
    return std::nullopt;
}

WorkerShown shown(const std::string& type, const std::string& state, uint64_t quarantined_until = 0) {
    WorkerShown s;
    s.type = type;
    s.state = state;
    s.quarantined_until = quarantined_until;
    return s;
}

TEST(Metrics, WorkersByStateAndTypeFollowWhatTheBusShows) {
    Metrics m;
    m.worker_shown("a", shown("local", "idle"), t0);
    m.worker_shown("b", shown("standard", "offline"), t0);
    auto text = m.text();
    EXPECT_EQ(sample(text, R"(buildyard_workers{state="idle"})"), 1);
    EXPECT_EQ(sample(text, R"(buildyard_workers{state="offline"})"), 1);
    EXPECT_EQ(sample(text, R"(buildyard_workers{state="building"})"), 0);
    EXPECT_EQ(sample(text, R"(buildyard_workers_by_type{type="local"})"), 1);
    EXPECT_EQ(sample(text, R"(buildyard_workers_by_type{type="latent"})"), 0);

    m.worker_shown("a", shown("local", "building"), t0);
    m.worker_shown("a", shown("local", "building"), t0);  // no change, no double count
    m.worker_forgotten("b");
    text = m.text();
    EXPECT_EQ(sample(text, R"(buildyard_workers{state="idle"})"), 0);
    EXPECT_EQ(sample(text, R"(buildyard_workers{state="building"})"), 1);
    EXPECT_EQ(sample(text, R"(buildyard_workers{state="offline"})"), 0);
    EXPECT_EQ(sample(text, R"(buildyard_workers_by_type{type="standard"})"), 0);
}

TEST(Metrics, QuarantineCountsUntilItEnds) {
    Metrics m;
    m.worker_shown("vm1", shown("latent", "offline", t0 + 10 * sec), t0);
    m.worker_shown("vm2", shown("latent", "offline"), t0);
    EXPECT_EQ(sample(m.text(), "buildyard_latent_workers_quarantined"), 1);
    m.worker_shown("vm1", shown("latent", "offline", t0 + 10 * sec), t0 + 11 * sec);
    EXPECT_EQ(sample(m.text(), "buildyard_latent_workers_quarantined"), 0);
}

TEST(Metrics, AttachesAndDetachesByReason) {
    Metrics m;
    m.worker_attached();
    m.worker_attached();
    m.worker_detached(DetachCause::keepalive);
    m.worker_detached(DetachCause::connection_closed);
    m.worker_detached(DetachCause::connection_closed);
    const auto text = m.text();
    EXPECT_EQ(sample(text, "buildyard_worker_attaches_total"), 2);
    EXPECT_EQ(sample(text, R"(buildyard_worker_detaches_total{reason="keepalive"})"), 1);
    EXPECT_EQ(sample(text, R"(buildyard_worker_detaches_total{reason="connection_closed"})"), 2);
    EXPECT_FALSE(sample(text, R"(buildyard_worker_detaches_total{reason="shutdown"})"));
}

TEST(Metrics, QueueDepthByBuilderAndRemovedBuilders) {
    Metrics m;
    m.builder_counts("hello", 3, 1);
    m.builder_counts("docs", 0, 0);
    auto text = m.text();
    EXPECT_EQ(sample(text, R"(buildyard_builds_pending{builder="hello"})"), 3);
    EXPECT_EQ(sample(text, R"(buildyard_builds_running{builder="hello"})"), 1);
    EXPECT_EQ(sample(text, R"(buildyard_builds_pending{builder="docs"})"), 0);
    m.builder_forgotten("docs");
    text = m.text();
    EXPECT_FALSE(sample(text, R"(buildyard_builds_pending{builder="docs"})"));
    EXPECT_FALSE(sample(text, R"(buildyard_builds_running{builder="docs"})"));
    EXPECT_EQ(sample(text, R"(buildyard_builds_pending{builder="hello"})"), 3);
}

TEST(Metrics, BuildsFinishedAndTheirDurationsAndQueueWaits) {
    Metrics m;
    Build b;
    b.builder = "hello";
    b.submitted_at = t0;
    b.started_at = t0 + 2'500'000;  // waited 2.5 s
    m.build_started(b);
    b.finished_at = b.started_at + 45 * sec;
    b.result = Result::success;
    m.build_finished(b);
    Build cancelled;  // cancelled while pending: never ran
    cancelled.builder = "hello";
    cancelled.submitted_at = t0;
    cancelled.finished_at = t0 + sec;
    cancelled.result = Result::cancelled;
    m.build_finished(cancelled);

    const auto text = m.text();
    EXPECT_EQ(sample(text, R"(buildyard_builds_finished_total{builder="hello",result="success"})"), 1);
    EXPECT_EQ(sample(text, R"(buildyard_builds_finished_total{builder="hello",result="cancelled"})"), 1);
    EXPECT_EQ(sample(text, R"(buildyard_build_queue_wait_seconds_bucket{builder="hello",le="1"})"), 0);
    EXPECT_EQ(sample(text, R"(buildyard_build_queue_wait_seconds_bucket{builder="hello",le="3"})"), 1);
    EXPECT_EQ(sample(text, R"(buildyard_build_queue_wait_seconds_sum{builder="hello"})"), 2.5);
    // Only the build that ran has a duration.
    EXPECT_EQ(sample(text, R"(buildyard_build_duration_seconds_count{builder="hello"})"), 1);
    EXPECT_EQ(sample(text, R"(buildyard_build_duration_seconds_bucket{builder="hello",le="30"})"), 0);
    EXPECT_EQ(sample(text, R"(buildyard_build_duration_seconds_bucket{builder="hello",le="60"})"), 1);
    // Buckets from 10 ms to 6 h.
    EXPECT_TRUE(sample(text, R"(buildyard_build_duration_seconds_bucket{builder="hello",le="0.01"})"));
    EXPECT_TRUE(sample(text, R"(buildyard_build_duration_seconds_bucket{builder="hello",le="21600"})"));
}

TEST(Metrics, LatentStartsByOutcomeAndTheirDuration) {
    Metrics m;
    m.latent_start_begun("vm1", t0);
    EXPECT_TRUE(m.latent_start_pending("vm1"));
    m.latent_start_ended("vm1", "attached", t0 + 20 * sec);
    EXPECT_FALSE(m.latent_start_pending("vm1"));
    m.latent_start_begun("vm1", t0 + 100 * sec);
    m.latent_start_ended("vm1", "failed", t0 + 101 * sec);
    m.latent_start_ended("vm1", "failed", t0 + 102 * sec);  // no start pending: not counted
    const auto text = m.text();
    EXPECT_EQ(sample(text, R"(buildyard_latent_starts_total{outcome="attached",worker="vm1"})"), 1);
    EXPECT_EQ(sample(text, R"(buildyard_latent_starts_total{outcome="failed",worker="vm1"})"), 1);
    EXPECT_EQ(sample(text, R"(buildyard_latent_start_duration_seconds_count{worker="vm1"})"), 1);
    EXPECT_EQ(sample(text, R"(buildyard_latent_start_duration_seconds_sum{worker="vm1"})"), 20);
}

TEST(Metrics, MailRemoteRefusalsAndBusCalls) {
    Metrics m;
    m.mail_queued();
    m.mail_queued();
    m.mail_sent();
    m.mail_failed(false);
    m.mail_queue_length(1);
    m.remote_refused(RemoteRefusal::wrong_password);
    m.bus_call("org.buildyard.Master1", "SubmitBuild", "");
    m.bus_call("org.buildyard.Master1", "SubmitBuild", "");
    m.bus_call("org.buildyard.Master1", "SubmitBuild", "org.buildyard.Error.NoSuchBuilder");
    const auto text = m.text();
    EXPECT_EQ(sample(text, "buildyard_mails_queued_total"), 2);
    EXPECT_EQ(sample(text, "buildyard_mails_sent_total"), 1);
    EXPECT_EQ(sample(text, R"(buildyard_mails_failed_total{outcome="retry"})"), 1);
    EXPECT_EQ(sample(text, "buildyard_mails_queued"), 1);
    EXPECT_EQ(sample(text, R"(buildyard_remote_refused_total{reason="wrong_password"})"), 1);
    EXPECT_EQ(sample(text,
                     R"(buildyard_bus_calls_total{error="none",interface="org.buildyard.Master1",method="SubmitBuild"})"),
              2);
    EXPECT_EQ(
        sample(text,
               R"(buildyard_bus_calls_total{error="org.buildyard.Error.NoSuchBuilder",interface="org.buildyard.Master1",method="SubmitBuild"})"),
        1);
}

TEST(Metrics, EveryFamilyHasHelpAndProcessMetricsAreThere) {
    Metrics m;
    m.builder_counts("hello", 0, 0);
    const auto text = m.text();
    std::set<std::string> typed, helped;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        std::istringstream words(line);
        std::string hash, kind, name;
        words >> hash >> kind >> name;
        if (hash != "#") continue;
        (kind == "TYPE" ? typed : helped).insert(name);
        if (kind == "HELP") {
            std::string help;
            std::getline(words, help);
            EXPECT_GT(help.size(), 10u) << name;
        }
    }
    EXPECT_EQ(typed, helped);
    for (const char* name : {"process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds",
                             "process_max_fds", "process_start_time_seconds", "process_virtual_memory_bytes"}) {
        EXPECT_TRUE(typed.count(name)) << name;
    }
    EXPECT_GT(*sample(text, "process_open_fds"), 2);
    EXPECT_GT(*sample(text, "process_resident_memory_bytes"), 1e6);
    EXPECT_GT(*sample(text, "process_start_time_seconds"), 1.6e9);
}

// A plain HTTP/1.0 GET to 127.0.0.1:port; the whole response.
std::string http_get(int port, const char* path) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(port));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::string out;
    if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) {
        std::string req = std::string("GET ") + path + " HTTP/1.0\r\n\r\n";
        if (write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
            char buf[4096];
            for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
        }
    }
    close(fd);
    return out;
}

// Claims `port` from the other test processes as tests/lib/free_port.py
// does: binds the abstract socket named after it, held until this process
// ends (or closes the descriptor returned). -1 if some other process holds it.
int claim_port(int port) {
    const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    const std::string name = "buildyard-test-port-" + std::to_string(port);
    std::memcpy(sa.sun_path + 1, name.data(), name.size());  // sun_path[0] == 0: abstract
    const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
    if (bind(fd, reinterpret_cast<sockaddr*>(&sa), len) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

// A port nothing listens on now, outside the ephemeral range, that no other
// test process has been handed: a port the kernel picked (bind to 0) may be
// handed out again as some connection's source port before Metrics::listen
// binds it (tests/lib/free_port.py does the same for the integration tests).
int free_port() {
    unsigned low = 32768;
    unsigned high = 60999;
    if (std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range"); range) {
        range >> low >> high;
    }
    const bool below = low > 10001;
    std::mt19937 random(std::random_device{}());
    std::uniform_int_distribution<int> pick(below ? 10000 : static_cast<int>(high) + 1,
                                            below ? static_cast<int>(low) - 1 : 65535);
    for (int i = 0; i < 1000; ++i) {
        const int port = pick(random);
        const int claim = claim_port(port);
        if (claim < 0) {
            continue;
        }
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sa.sin_port = htons(static_cast<uint16_t>(port));
        const bool bound = bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
        close(fd);
        if (bound) {
            return port;  // `claim` stays open: the claim lasts as long as the test
        }
        close(claim);
    }
    ADD_FAILURE() << "no free port outside the ephemeral range";
    return 0;
}

TEST(Metrics, ServesTheTextFormatAndMovesOrKeepsItsServer) {
    Metrics m;
    m.builder_counts("hello", 7, 0);
    std::string error;
    const int port = free_port();
    ASSERT_TRUE(m.listen("127.0.0.1:" + std::to_string(port), error)) << error;
    EXPECT_EQ(m.port(), port);
    auto reply = http_get(port, "/metrics");
    EXPECT_NE(reply.find("200 OK"), std::string::npos) << reply;
    EXPECT_NE(reply.find("Content-Type: text/plain"), std::string::npos) << reply.substr(0, 300);
    EXPECT_NE(reply.find("buildyard_builds_pending{builder=\"hello\"} 7"), std::string::npos);
    EXPECT_NE(reply.find("process_cpu_seconds_total"), std::string::npos);

    // A port another socket holds: an error, and the old server stays.
    int holder = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(holder, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    ASSERT_EQ(listen(holder, 1), 0);
    socklen_t len = sizeof sa;
    getsockname(holder, reinterpret_cast<sockaddr*>(&sa), &len);
    const std::string busy = "127.0.0.1:" + std::to_string(ntohs(sa.sin_port));
    EXPECT_FALSE(m.listen(busy, error));
    EXPECT_NE(error.find(busy), std::string::npos) << error;
    EXPECT_EQ(m.port(), port);
    EXPECT_NE(http_get(port, "/metrics").find("200 OK"), std::string::npos);
    close(holder);

    // Off: nothing listens.
    ASSERT_TRUE(m.listen("", error));
    EXPECT_EQ(m.port(), 0);
    EXPECT_EQ(http_get(port, "/metrics"), "");
}

}  // namespace
}  // namespace by::master
