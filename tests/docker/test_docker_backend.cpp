// DockerBackend against the real engine (the fixture's Podman): the
// container of a start (name, labels, environment, limits, command), its
// health, its removal, the listing by owner labels that the reaper relies on,
// and an engine whose socket is missing and then comes back.
#include <cstdio>
#include <filesystem>

#include "common/config.hpp"
#include "docker_test_support.hpp"
#include "latent/docker/docker_backend.hpp"

using namespace by::latent;
using namespace by::latent::docker;
using namespace by::latent::test;
namespace config = by::config;

namespace {

std::string start_id() {
    static int n = 0;
    char buf[33];
    std::snprintf(buf, sizeof buf, "%08x%08x%016x", static_cast<unsigned>(::getpid()), 0xb5u, ++n);
    return buf;
}

class DockerBackendTest : public ::testing::Test {
protected:
    void SetUp() override {
        REQUIRE_ENGINE();
        master = unique("m");
    }

    config::Worker worker(const std::string& name, const std::map<std::string, std::string>& extra = {}) {
        config::Worker w;
        w.name = name;
        w.type = config::WorkerType::latent;
        w.backend = "docker";
        w.backend_options = {{"docker.host", "unix://" + engine_socket()}, {"docker.image", test_image}};
        for (const auto& [k, v] : extra) {
            w.backend_options[k] = v;
        }
        return w;
    }

    StartSpec spec(const config::Worker& w, const std::string& start, const std::string& address = "127.0.0.1:1") {
        StartSpec s;
        s.tag = {master, w.name, start};
        s.master_address = address;
        s.token = std::string(64, 'e');
        s.worker = &w;
        made.add(DockerBackend::container_name(s.tag));
        return s;
    }

    // The engine's own view of a container, all of it.
    Json inspect_raw(const std::string& name) {
        auto r = made.client().request("GET", "/containers/" + name + "/json", std::nullopt, never, default_timeout);
        EXPECT_TRUE(r.ok()) << r.error;
        return Json::parse(r.value.body, nullptr, false);
    }

    bool exists(const std::string& id) {
        auto s = made.client().inspect(id, never);
        EXPECT_TRUE(s.ok()) << s.error;
        return s.value.exists;
    }

    Cancelled never{false};
    Containers made{engine_socket()};
    DockerBackend backend;
    std::string master;
};

bool has(const Json& list, const std::string& entry) {
    for (const auto& e : list) {
        if (e == entry) {
            return true;
        }
    }
    return false;
}

}  // namespace

TEST_F(DockerBackendTest, CreateMakesALabelledContainerNamedForTheWorker) {
    const auto w = worker("c1", {{"docker.env", "CC=gcc-12, EMPTY="},
                                 {"docker.memory", "64"},
                                 {"docker.cpus", "0.5"},
                                 {"docker.volumes", "/etc/apt:/mnt/apt:ro"}});
    const auto start = start_id();
    const auto s = spec(w, start, "127.0.0.1:9989");
    auto created = backend.create(s, never);
    ASSERT_TRUE(created.ok()) << created.error;
    EXPECT_EQ(created.value, "buildyard-" + master + "-c1");

    const auto j = inspect_raw(created.value);
    EXPECT_EQ(j["Name"].get<std::string>().substr(j["Name"].get<std::string>().front() == '/' ? 1 : 0),
              created.value);
    const auto& labels = j["Config"]["Labels"];
    EXPECT_EQ(labels["org.buildyard.master"], master);
    EXPECT_EQ(labels["org.buildyard.worker"], "c1");
    EXPECT_EQ(labels["org.buildyard.start"], start);
    const auto& env = j["Config"]["Env"];
    EXPECT_TRUE(has(env, "BUILDYARD_WORKER_NAME=c1")) << env;
    EXPECT_TRUE(has(env, "BUILDYARD_MASTER=127.0.0.1:9989")) << env;
    EXPECT_TRUE(has(env, "BUILDYARD_TOKEN=" + std::string(64, 'e'))) << env;
    EXPECT_TRUE(has(env, "CC=gcc-12")) << env;
    EXPECT_TRUE(has(env, "EMPTY=")) << env;
    EXPECT_EQ(j["Config"]["Cmd"], Json::array({"buildyard-workerd", "--latent"}));
    EXPECT_EQ(j["HostConfig"]["NetworkMode"], "host");
    EXPECT_EQ(j["HostConfig"]["Memory"], 64 << 20);
    EXPECT_EQ(j["HostConfig"]["NanoCpus"], 500000000);
    bool mounted = false;
    for (const auto& m : j["Mounts"]) {
        mounted = mounted || (m["Source"] == "/etc/apt" && m["Destination"] == "/mnt/apt" && m["RW"] == false);
    }
    EXPECT_TRUE(mounted) << j["Mounts"];
    EXPECT_TRUE(j["State"]["Running"].get<bool>()) << j["State"];

    // The worker inside read its identity from the environment.
    auto logs = made.client().logs(created.value, 0, never);
    for (int i = 0; i < 100 && logs.ok() && logs.value.find("latent worker c1") == std::string::npos; ++i) {
        ::usleep(100000);
        logs = made.client().logs(created.value, 0, never);
    }
    ASSERT_TRUE(logs.ok()) << logs.error;
    EXPECT_NE(logs.value.find("latent worker c1 of the master at 127.0.0.1:9989 (identity from the environment)"),
              std::string::npos)
        << logs.value;

    auto health = backend.check(s.tag, &w, never);
    ASSERT_TRUE(health.ok()) << health.error;
    EXPECT_EQ(health.value.health, Health::running) << health.value.reason;

    auto destroyed = backend.destroy(s.tag, &w, 2'000'000, never);
    ASSERT_TRUE(destroyed.ok()) << destroyed.error;
    EXPECT_TRUE(destroyed.value);
    EXPECT_FALSE(exists(created.value));
}

TEST_F(DockerBackendTest, AnImageWithItsOwnEntrypointGetsNoCommand) {
    const auto w = worker("c1", {{"docker.image", entry_image}, {"docker.pull", "never"}});
    const auto s = spec(w, start_id());
    auto created = backend.create(s, never);
    ASSERT_TRUE(created.ok()) << created.error;
    const auto j = inspect_raw(created.value);
    EXPECT_EQ(j["Config"]["Entrypoint"], Json::array({"/usr/local/bin/start-worker"}));
    EXPECT_TRUE(j["Config"]["Cmd"].is_null() || j["Config"]["Cmd"].empty()) << j["Config"]["Cmd"];
    auto logs = made.client().logs(created.value, 0, never);
    for (int i = 0; i < 100 && logs.ok() && logs.value.find("latent worker c1") == std::string::npos; ++i) {
        ::usleep(100000);
        logs = made.client().logs(created.value, 0, never);
    }
    EXPECT_NE(logs.value.find("started by the image's own entrypoint"), std::string::npos) << logs.value;
    EXPECT_NE(logs.value.find("latent worker c1"), std::string::npos) << logs.value;
    EXPECT_TRUE(backend.destroy(s.tag, &w, 0, never).ok());
    EXPECT_FALSE(exists(created.value));
}

TEST_F(DockerBackendTest, CheckReportsAnExitWithItsStatusAndTheLastFiftyLines) {
    const auto w = worker("c1", {{"docker.image", entry_image}, {"docker.env", "TEST_EXIT_STATUS=3, TEST_LINES=60"}});
    const auto s = spec(w, start_id());
    auto created = backend.create(s, never);
    ASSERT_TRUE(created.ok()) << created.error;
    auto status = made.client().wait(created.value, never, std::chrono::seconds(60));
    ASSERT_TRUE(status.ok()) << status.error;

    auto health = backend.check(s.tag, &w, never);
    ASSERT_TRUE(health.ok()) << health.error;
    EXPECT_EQ(health.value.health, Health::gone);
    EXPECT_EQ(health.value.reason, "container exited with status 3");
    EXPECT_TRUE(health.value.log_tail.starts_with("line 11\n")) << health.value.log_tail;
    EXPECT_TRUE(health.value.log_tail.ends_with("line 60\n")) << health.value.log_tail;

    // The exited container stays until destroy() (latentd's, on "gone").
    EXPECT_TRUE(exists(created.value));
    auto destroyed = backend.destroy(s.tag, &w, 1'000'000, never);
    ASSERT_TRUE(destroyed.ok()) << destroyed.error;
    EXPECT_FALSE(exists(created.value));
    auto after = backend.check(s.tag, &w, never);
    ASSERT_TRUE(after.ok()) << after.error;
    EXPECT_EQ(after.value.health, Health::gone);
    EXPECT_EQ(after.value.reason, "container " + created.value + " is gone");
}

TEST_F(DockerBackendTest, AWorkerThatCannotAttachExitsAndSaysWhy) {
    const auto w = worker("c1");
    const auto s = spec(w, start_id(), "nowhere");
    auto created = backend.create(s, never);
    ASSERT_TRUE(created.ok()) << created.error;
    ASSERT_TRUE(made.client().wait(created.value, never, std::chrono::seconds(60)).ok());
    auto health = backend.check(s.tag, &w, never);
    ASSERT_TRUE(health.ok()) << health.error;
    EXPECT_EQ(health.value.health, Health::gone);
    EXPECT_TRUE(health.value.reason.starts_with("container exited with status ")) << health.value.reason;
    EXPECT_NE(health.value.reason, "container exited with status 0");
    EXPECT_NE(health.value.log_tail.find("BUILDYARD_MASTER 'nowhere' is not HOST:PORT"), std::string::npos)
        << health.value.log_tail;
}

TEST_F(DockerBackendTest, DestroyLeavesOtherStartsAndIsIdempotent) {
    const auto w = worker("c1");
    const auto s = spec(w, start_id());
    auto created = backend.create(s, never);
    ASSERT_TRUE(created.ok()) << created.error;

    // Another start of the same worker: not this container.
    Tag other = s.tag;
    other.start = start_id();
    auto not_ours = backend.destroy(other, &w, 0, never);
    ASSERT_TRUE(not_ours.ok()) << not_ours.error;
    EXPECT_FALSE(not_ours.value);
    EXPECT_TRUE(exists(created.value));
    auto health = backend.check(other, &w, never);
    ASSERT_TRUE(health.ok()) << health.error;
    EXPECT_EQ(health.value.health, Health::gone);
    EXPECT_EQ(health.value.reason, "container " + created.value + " belongs to another start");

    ASSERT_TRUE(backend.destroy(s.tag, &w, 0, never).ok());
    EXPECT_FALSE(exists(created.value));
    auto again = backend.destroy(s.tag, &w, 0, never);
    ASSERT_TRUE(again.ok()) << again.error;
    EXPECT_FALSE(again.value);
}

TEST_F(DockerBackendTest, ListFindsOnlyThisMastersLabelledContainers) {
    const auto w = worker("c1");
    const auto s = spec(w, start_id());
    auto created = backend.create(s, never);
    ASSERT_TRUE(created.ok()) << created.error;
    // Made by the test: another master's, an unlabelled one, and one with
    // only this master's label (not made by a backend).
    const std::string other_master = master + "-other";
    const auto theirs = made.make(unique("theirs"), {{"org.buildyard.master", other_master},
                                                     {"org.buildyard.worker", "c1"},
                                                     {"org.buildyard.start", start_id()}});
    const auto unlabelled = made.make(unique("plain"), nullptr);
    const auto partial = made.make(unique("partial"), {{"org.buildyard.master", master}});

    const auto w2 = worker("c2");
    auto listed = backend.list(master, {&w, &w2}, never);
    ASSERT_TRUE(listed.ok()) << listed.error;
    ASSERT_EQ(listed.value.size(), 1u);
    const auto& found = listed.value[0];
    EXPECT_EQ(found.tag, s.tag);
    EXPECT_EQ(found.kind, "container");
    EXPECT_TRUE(found.running);
    EXPECT_EQ(made.client().inspect(created.value, never).value.id, found.id);

    // The reaper's remove(): gone, and nothing else touched.
    auto removed = backend.remove(found, nullptr, never);
    ASSERT_TRUE(removed.ok()) << removed.error;
    EXPECT_TRUE(removed.value);
    EXPECT_FALSE(exists(found.id));
    EXPECT_TRUE(exists(theirs));
    EXPECT_TRUE(exists(unlabelled));
    EXPECT_TRUE(exists(partial));
    auto empty = backend.list(master, {&w}, never);
    ASSERT_TRUE(empty.ok()) << empty.error;
    EXPECT_TRUE(empty.value.empty());

    // remove() of something whose labels no longer match leaves it.
    Found stale;
    stale.tag = {master, "c1", start_id()};
    stale.kind = "container";
    stale.id = theirs;
    auto refused = backend.remove(stale, &w, never);
    ASSERT_TRUE(refused.ok()) << refused.error;
    EXPECT_FALSE(refused.value);
    EXPECT_TRUE(exists(theirs));
}

TEST_F(DockerBackendTest, ALeftoverOfTheSameWorkerIsReplacedAForeignNamesakeIsNot) {
    const auto w = worker("c1");
    const auto first = spec(w, start_id());
    auto old = backend.create(first, never);
    ASSERT_TRUE(old.ok()) << old.error;
    const auto old_id = made.client().inspect(old.value, never).value.id;

    // As after a latentd that died before it could stop the first start.
    const auto second = spec(w, start_id());
    auto fresh = backend.create(second, never);
    ASSERT_TRUE(fresh.ok()) << fresh.error;
    auto state = made.client().inspect(fresh.value, never);
    ASSERT_TRUE(state.ok());
    EXPECT_NE(state.value.id, old_id);
    EXPECT_EQ(state.value.labels.at("org.buildyard.start"), second.tag.start);
    EXPECT_FALSE(exists(old_id));
    ASSERT_TRUE(backend.destroy(second.tag, &w, 0, never).ok());

    // Someone else's container by that name is left alone.
    const auto w3 = worker("c3");
    const auto s3 = spec(w3, start_id());
    const auto foreign = made.make(DockerBackend::container_name(s3.tag), nullptr);
    auto refused = backend.create(s3, never);
    ASSERT_FALSE(refused.ok());
    EXPECT_NE(refused.error.find("without the labels of this master and worker"), std::string::npos) << refused.error;
    EXPECT_TRUE(exists(foreign));
}

TEST_F(DockerBackendTest, ImagePullPolicy) {
    const auto never_pull = worker("c1", {{"docker.image", "localhost/no-such-image:1"}, {"docker.pull", "never"}});
    auto refused = backend.create(spec(never_pull, start_id()), never);
    ASSERT_FALSE(refused.ok());
    EXPECT_NE(refused.error.find("image localhost/no-such-image:1 is not on the Docker engine at unix://" +
                                 engine_socket() + " (docker.pull = never)"),
              std::string::npos)
        << refused.error;

    const auto missing = worker("c1", {{"docker.image", "localhost/no-such-image:1"}});
    auto failed = backend.create(spec(missing, start_id()), never);
    ASSERT_FALSE(failed.ok());
    EXPECT_NE(failed.error.find("pull image localhost/no-such-image:1"), std::string::npos) << failed.error;
    auto listed = backend.list(master, {&missing}, never);
    ASSERT_TRUE(listed.ok()) << listed.error;
    EXPECT_TRUE(listed.value.empty());
}

TEST_F(DockerBackendTest, ACancelledCreateMakesNothing) {
    const auto w = worker("c1");
    const auto s = spec(w, start_id());
    Cancelled cancelled{true};
    auto created = backend.create(s, cancelled);
    ASSERT_FALSE(created.ok());
    EXPECT_NE(created.error.find("cancelled"), std::string::npos) << created.error;
    EXPECT_FALSE(exists(DockerBackend::container_name(s.tag)));
}

TEST_F(DockerBackendTest, AMissingEngineSocketIsAClearErrorUntilItComesBack) {
    const std::string path = podman_dir() + "/" + unique("later") + ".sock";
    const auto w = worker("c1", {{"docker.host", "unix://" + path}});
    const auto s = spec(w, start_id());
    auto created = backend.create(s, never);
    ASSERT_FALSE(created.ok());
    EXPECT_NE(created.error.find("cannot reach the Docker engine at unix://" + path + ": No such file or directory"),
              std::string::npos)
        << created.error;
    // Not reachable is not "gone": the container may run on.
    auto health = backend.check(s.tag, &w, never);
    EXPECT_FALSE(health.ok());
    EXPECT_NE(health.error.find(path), std::string::npos) << health.error;
    auto listed = backend.list(master, {&w}, never);
    EXPECT_FALSE(listed.ok());
    EXPECT_NE(listed.error.find(path), std::string::npos) << listed.error;

    // The engine comes back at that path.
    std::filesystem::create_symlink(engine_socket(), path);
    created = backend.create(s, never);
    ASSERT_TRUE(created.ok()) << created.error;
    health = backend.check(s.tag, &w, never);
    ASSERT_TRUE(health.ok()) << health.error;
    EXPECT_EQ(health.value.health, Health::running);
    listed = backend.list(master, {&w}, never);
    ASSERT_TRUE(listed.ok()) << listed.error;
    EXPECT_EQ(listed.value.size(), 1u);
    EXPECT_TRUE(backend.destroy(s.tag, &w, 0, never).ok());
    std::filesystem::remove(path);
}
