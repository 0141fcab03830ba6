// The Engine API client against the real engine (the fixture's Podman):
// create, start, inspect, wait, logs, list by label, remove, images, and
// the errors a caller sees (the engine's message, a missing socket, a
// deadline, a cancelled call).
#include <chrono>
#include <filesystem>

#include <sys/socket.h>
#include <sys/un.h>

#include "docker_test_support.hpp"

using namespace by::latent;
using namespace by::latent::docker;
using namespace by::latent::test;

namespace {

class DockerEngine : public ::testing::Test {
protected:
    void SetUp() override { REQUIRE_ENGINE(); }

    Cancelled never{false};
};

}  // namespace

TEST_F(DockerEngine, Version) {
    Client client(engine_socket());
    auto v = client.version(never);
    ASSERT_TRUE(v.ok()) << v.error;
    EXPECT_FALSE(v.value.empty());
}

TEST_F(DockerEngine, CreateStartInspectWaitLogsRemove) {
    Containers made(engine_socket());
    Client& client = made.client();
    const auto name = unique("c");
    const Json labels = {{"org.buildyard.test", name}};
    const auto id = made.make(name, labels, "echo to stdout; echo to stderr >&2; exit 3");
    ASSERT_FALSE(id.empty());

    auto created = client.inspect(name, never);
    ASSERT_TRUE(created.ok()) << created.error;
    EXPECT_TRUE(created.value.exists);
    EXPECT_EQ(created.value.id, id);
    EXPECT_EQ(created.value.name, name);
    EXPECT_FALSE(created.value.running);
    EXPECT_EQ(created.value.labels.at("org.buildyard.test"), name);

    auto started = client.start(id, never);
    ASSERT_TRUE(started.ok()) << started.error;
    auto status = client.wait(id, never, std::chrono::seconds(60));
    ASSERT_TRUE(status.ok()) << status.error;
    EXPECT_EQ(status.value, 3);

    auto exited = client.inspect(id, never);
    ASSERT_TRUE(exited.ok()) << exited.error;
    EXPECT_EQ(exited.value.status, "exited");
    EXPECT_FALSE(exited.value.running);
    EXPECT_EQ(exited.value.exit_code, 3);

    // Both streams, demultiplexed; their relative order is the engine's.
    auto logs = client.logs(id, 0, never);
    ASSERT_TRUE(logs.ok()) << logs.error;
    EXPECT_TRUE(logs.value == "to stdout\nto stderr\n" || logs.value == "to stderr\nto stdout\n") << logs.value;

    auto removed = client.remove(id, never);
    ASSERT_TRUE(removed.ok()) << removed.error;
    EXPECT_TRUE(removed.value);
    auto gone = client.inspect(id, never);
    ASSERT_TRUE(gone.ok()) << gone.error;
    EXPECT_FALSE(gone.value.exists);
    auto again = client.remove(id, never);
    ASSERT_TRUE(again.ok()) << again.error;
    EXPECT_FALSE(again.value);
}

TEST_F(DockerEngine, StopAndRemoveARunningContainer) {
    Containers made(engine_socket());
    Client& client = made.client();
    const auto id = made.make(unique("c"), nullptr, "sleep 600");
    ASSERT_TRUE(client.start(id, never).ok());
    auto running = client.inspect(id, never);
    ASSERT_TRUE(running.ok()) << running.error;
    EXPECT_TRUE(running.value.running);

    auto stopped = client.stop(id, 1, never);
    ASSERT_TRUE(stopped.ok()) << stopped.error;
    auto after = client.inspect(id, never);
    EXPECT_FALSE(after.value.running);
    // Stopping or killing what does not run is no error.
    auto twice = client.stop(id, 1, never);
    EXPECT_TRUE(twice.ok()) << twice.error;

    ASSERT_TRUE(client.start(id, never).ok());
    auto removed = client.remove(id, never);  // force: kills it first
    ASSERT_TRUE(removed.ok()) << removed.error;
    EXPECT_TRUE(removed.value);
}

TEST_F(DockerEngine, LogTail) {
    Containers made(engine_socket());
    Client& client = made.client();
    const auto id = made.make(unique("c"), nullptr, "for i in 1 2 3 4 5; do echo line $i; done");
    ASSERT_TRUE(client.start(id, never).ok());
    ASSERT_TRUE(client.wait(id, never, std::chrono::seconds(60)).ok());
    auto tail = client.logs(id, 2, never);
    ASSERT_TRUE(tail.ok()) << tail.error;
    EXPECT_EQ(tail.value, "line 4\nline 5\n");
    auto all = client.logs(id, 0, never);
    ASSERT_TRUE(all.ok()) << all.error;
    EXPECT_EQ(all.value, "line 1\nline 2\nline 3\nline 4\nline 5\n");
}

TEST_F(DockerEngine, ListByLabel) {
    Containers made(engine_socket());
    Client& client = made.client();
    const auto mark = unique("mark");
    const auto a = made.make(unique("c"), {{"org.buildyard.test", mark}, {"other", "x"}});
    const auto b = made.make(unique("c"), {{"org.buildyard.test", mark}});
    const auto other = made.make(unique("c"), {{"org.buildyard.test", mark + "-not"}});
    const auto unlabelled = made.make(unique("c"), nullptr);
    ASSERT_TRUE(client.start(a, never).ok());

    auto listed = client.list({"org.buildyard.test=" + mark}, true, never);
    ASSERT_TRUE(listed.ok()) << listed.error;
    std::set<std::string> ids;
    for (const auto& c : listed.value) {
        ids.insert(c.id);
        EXPECT_EQ(c.labels.at("org.buildyard.test"), mark);
        EXPECT_EQ(c.state, c.id == a ? "running" : "created");
    }
    EXPECT_EQ(ids, (std::set<std::string>{a, b}));

    // Two labels: both must match.
    auto both = client.list({"org.buildyard.test=" + mark, "other=x"}, true, never);
    ASSERT_TRUE(both.ok()) << both.error;
    ASSERT_EQ(both.value.size(), 1u);
    EXPECT_EQ(both.value[0].id, a);

    // Without all: only running ones.
    auto running = client.list({"org.buildyard.test=" + mark}, false, never);
    ASSERT_TRUE(running.ok()) << running.error;
    ASSERT_EQ(running.value.size(), 1u);
    EXPECT_EQ(running.value[0].id, a);
}

TEST_F(DockerEngine, EngineErrorsCarryItsMessage) {
    Client client(engine_socket());
    auto id = client.create(unique("c"), {{"Image", "localhost/no-such-image:1"}}, never);
    ASSERT_FALSE(id.ok());
    EXPECT_NE(id.error.find("create container"), std::string::npos) << id.error;
    EXPECT_NE(id.error.find("no-such-image"), std::string::npos) << id.error;
    EXPECT_NE(id.error.find("HTTP 404"), std::string::npos) << id.error;
    EXPECT_NE(id.error.find(engine_socket()), std::string::npos) << id.error;

    auto start = client.start("no-such-container", never);
    ASSERT_FALSE(start.ok());
    EXPECT_NE(start.error.find("no-such-container"), std::string::npos) << start.error;

    // A command that is not in the image: the runtime's own words.
    Containers made(engine_socket());
    auto body = Json{{"Image", test_image}, {"Cmd", {"/no/such/program"}}};
    const auto name = unique("c");
    made.add(name);
    auto created = made.client().create(name, body, never);
    ASSERT_TRUE(created.ok()) << created.error;
    auto started = made.client().start(created.value, never);
    ASSERT_FALSE(started.ok());
    EXPECT_NE(started.error.find("/no/such/program"), std::string::npos) << started.error;
}

TEST_F(DockerEngine, Images) {
    Client client(engine_socket());
    auto plain = client.inspect_image(test_image, never);
    ASSERT_TRUE(plain.ok()) << plain.error;
    EXPECT_TRUE(plain.value.exists);
    EXPECT_TRUE(plain.value.entrypoint.empty());
    auto entry = client.inspect_image(entry_image, never);
    ASSERT_TRUE(entry.ok()) << entry.error;
    EXPECT_EQ(entry.value.entrypoint, std::vector<std::string>{"/usr/local/bin/start-worker"});
    auto missing = client.inspect_image("localhost/no-such-image:1", never);
    ASSERT_TRUE(missing.ok()) << missing.error;
    EXPECT_FALSE(missing.value.exists);

    // No registry here: the pull fails, and says about what.
    auto pulled = client.pull_image("localhost/no-such-image:1", never, std::chrono::seconds(60));
    ASSERT_FALSE(pulled.ok());
    EXPECT_NE(pulled.error.find("pull image localhost/no-such-image:1"), std::string::npos) << pulled.error;
}

TEST_F(DockerEngine, MissingSocketNamesItsPath) {
    const std::string path = "/tmp/buildyard-no-such-dir/docker.sock";
    Client client(path);
    auto v = client.version(never);
    ASSERT_FALSE(v.ok());
    EXPECT_NE(v.error.find("cannot reach the Docker engine at unix://" + path), std::string::npos) << v.error;
    EXPECT_NE(v.error.find("No such file or directory"), std::string::npos) << v.error;

    // A socket file nobody listens on.
    const std::string stale = podman_dir() + "/" + unique("stale") + ".sock";
    {
        Client listener_gone(stale);
        int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        stale.copy(addr.sun_path, sizeof addr.sun_path - 1);
        ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
        ::close(fd);
        auto r = listener_gone.version(never);
        ASSERT_FALSE(r.ok());
        EXPECT_NE(r.error.find("nobody accepts connections on it"), std::string::npos) << r.error;
        std::filesystem::remove(stale);
    }
}

TEST_F(DockerEngine, DeadlineAndCancel) {
    Containers made(engine_socket());
    Client& client = made.client();
    const auto id = made.make(unique("c"), nullptr, "sleep 600");
    ASSERT_TRUE(client.start(id, never).ok());

    auto late = client.wait(id, never, std::chrono::milliseconds(300));
    ASSERT_FALSE(late.ok());
    EXPECT_NE(late.error.find("no answer from the Docker engine"), std::string::npos) << late.error;

    Cancelled cancelled{true};
    auto given_up = client.wait(id, cancelled, std::chrono::seconds(120));
    ASSERT_FALSE(given_up.ok());
    EXPECT_NE(given_up.error.find("cancelled"), std::string::npos) << given_up.error;
}
