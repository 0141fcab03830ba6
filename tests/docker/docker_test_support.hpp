// Shared by the tests that talk to the real engine: the private Podman
// service of the CTest fixture (tests/docker/fixture.sh), names no other test
// uses, and cleanup of every container a test made, also when it fails.
#pragma once

#include <atomic>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <set>
#include <string>

#include <gtest/gtest.h>
#include <unistd.h>

#include "latent/docker/docker_client.hpp"

namespace by::latent::test {

inline const char* test_image = "localhost/buildyard-worker:test";
inline const char* entry_image = "localhost/buildyard-worker:entry";

// The fixture's directory; its socket is DIR/docker.sock.
inline std::string podman_dir() {
    const char* state = std::getenv("BUILDYARD_PODMAN_STATE");
    if (!state) {
        return "";
    }
    std::ifstream in(state);
    std::string dir;
    std::getline(in, dir);
    return dir;
}

inline std::string engine_socket() {
    const auto dir = podman_dir();
    return dir.empty() ? "" : dir + "/docker.sock";
}

// A name no other test (nor a parallel run of this one) uses: the tests run
// in parallel on one engine.
inline std::string unique(const std::string& prefix) {
    static std::atomic<int> counter{0};
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string test = info ? info->name() : "t";
    for (auto& c : test) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return prefix + "-" + test + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

// Every container a test names goes here; the destructor removes them.
class Containers {
public:
    explicit Containers(std::string socket) : client_(std::move(socket)) {}
    ~Containers() {
        for (const auto& id : ids_) {
            client_.remove(id, never_);
        }
    }
    Containers(const Containers&) = delete;
    Containers& operator=(const Containers&) = delete;

    void add(const std::string& id_or_name) { ids_.insert(id_or_name); }

    // Creates (not starts) a container running `script` with busybox's sh.
    std::string make(const std::string& name, const docker::Json& labels, const std::string& script = "sleep 600") {
        add(name);
        docker::Json body = {{"Image", test_image},
                             {"Cmd", {"/bin/sh", "-c", script}},
                             {"HostConfig", {{"NetworkMode", "host"}}}};
        if (!labels.is_null()) {
            body["Labels"] = labels;
        }
        auto id = client_.create(name, body, never_);
        EXPECT_TRUE(id.ok()) << id.error;
        return id.value;
    }

    docker::Client& client() { return client_; }

private:
    docker::Client client_;
    Cancelled never_{false};
    std::set<std::string> ids_;
};

// Skips nothing: without the fixture the test fails, saying why.
#define REQUIRE_ENGINE()                                                                        \
    do {                                                                                        \
        ASSERT_FALSE(::by::latent::test::engine_socket().empty())                               \
            << "BUILDYARD_PODMAN_STATE is not set: run through ctest -L docker (the fixture " \
               "starts Podman)";                                                                \
    } while (0)

}  // namespace by::latent::test
