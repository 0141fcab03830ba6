// The docker.* keys of a latent worker (backend = docker): defaults, every
// key's checks with FILE:LINE errors, and their conversion for the backend.
#include "common/config_docker.hpp"
#include "config_test_support.hpp"

namespace {

// Lines 1-6; a key appended is on line 7.
const std::string docker = "[master]\nlisten = 127.0.0.1:9000\n[worker c1]\ntype = latent\nbackend = docker\n"
                           "docker.image = localhost/buildyard-worker:test\n";

DockerOptions options_of(const Config& c, const std::string& worker) {
    return backend_options_of(docker_options, c, worker);
}

}  // namespace

TEST_F(ConfigTest, DockerDefaults) {
    const auto c = load_ok(docker);
    const auto& w = c.workers.at("c1");
    EXPECT_EQ(w.type, WorkerType::latent);
    EXPECT_EQ(w.backend, "docker");
    // One fresh container per build unless told otherwise.
    EXPECT_EQ(w.build_wait_timeout, 0);
    EXPECT_EQ(w.master_address, "testhost:9000");
    const auto o = options_of(c, "c1");
    EXPECT_EQ(o.socket_path, "/var/run/docker.sock");
    EXPECT_EQ(std::string("unix://") + o.socket_path, default_docker_host);
    EXPECT_EQ(o.image, "localhost/buildyard-worker:test");
    EXPECT_EQ(o.pull, DockerPull::missing);
    EXPECT_EQ(o.network, "host");
    EXPECT_TRUE(o.binds.empty());
    EXPECT_TRUE(o.env.empty());
    EXPECT_EQ(o.memory_bytes, 0u);
    EXPECT_EQ(o.nano_cpus, 0u);
    EXPECT_EQ(o.shutdown_timeout, 60u);
}

TEST_F(ConfigTest, DockerEveryKey) {
    const auto c = load_ok(docker +
                           "docker.host = unix:///run/podman/podman.sock\n"
                           "docker.pull = always\n"
                           "docker.network = bridge\n"
                           "docker.volumes = /srv/cache:/cache, /etc/ssl:/etc/ssl:ro, ccache:/ccache:rw\n"
                           "docker.env = CC=gcc-12, MAKEFLAGS=-j4 -l4, EMPTY=\n"
                           "docker.memory = 2048\n"
                           "docker.cpus = 1.5\n"
                           "docker.shutdown_timeout = 5\n"
                           "build_wait_timeout = 300\n");
    EXPECT_EQ(c.workers.at("c1").build_wait_timeout, 300);
    const auto o = options_of(c, "c1");
    EXPECT_EQ(o.socket_path, "/run/podman/podman.sock");
    EXPECT_EQ(o.pull, DockerPull::always);
    EXPECT_EQ(o.network, "bridge");
    EXPECT_EQ(o.binds, (std::vector<std::string>{"/srv/cache:/cache", "/etc/ssl:/etc/ssl:ro", "ccache:/ccache:rw"}));
    EXPECT_EQ(o.env, (std::vector<std::string>{"CC=gcc-12", "MAKEFLAGS=-j4 -l4", "EMPTY="}));
    EXPECT_EQ(o.memory_bytes, 2048ULL * 1024 * 1024);
    EXPECT_EQ(o.nano_cpus, 1500000000ULL);
    EXPECT_EQ(o.shutdown_timeout, 5u);
    EXPECT_EQ(c.workers.at("c1").backend_options.at("docker.shutdown_timeout"), "5");

    EXPECT_EQ(options_of(load_ok(docker + "docker.pull = never\n"), "c1").pull, DockerPull::never);
    EXPECT_EQ(options_of(load_ok(docker + "docker.cpus = 2\n"), "c1").nano_cpus, 2000000000ULL);
    EXPECT_EQ(options_of(load_ok(docker + "docker.cpus = 0.000000001\n"), "c1").nano_cpus, 1ULL);
    EXPECT_EQ(options_of(load_ok(docker + "docker.cpus = 1024\n"), "c1").nano_cpus, 1024000000000ULL);
    EXPECT_EQ(load_ok(docker + "build_wait_timeout = -1\n").workers.at("c1").build_wait_timeout, -1);
}

TEST_F(ConfigTest, DockerBadValues) {
    const std::string at = "7: [worker c1] ";
    expect_error(docker + "docker.host = tcp://127.0.0.1:2375\n",
                 at + "docker.host: unsupported host 'tcp://127.0.0.1:2375': only unix:// sockets are supported");
    expect_error(docker + "docker.host = /var/run/docker.sock\n", at + "docker.host: unsupported host");
    expect_error(docker + "docker.host = unix://docker.sock\n",
                 at + "docker.host: invalid host 'unix://docker.sock': expected unix:///ABSOLUTE/PATH");
    expect_error(docker + "docker.host = unix:///" + std::string(120, 'a') + "\n",
                 at + "docker.host: invalid host");
    expect_error(docker + "docker.pull = sometimes\n",
                 at + "docker.pull: invalid value 'sometimes': expected never, missing or always");
    expect_error(docker + "docker.network = none\n",
                 at + "docker.network: network 'none' leaves the worker no way to reach the master over TCP");
    expect_error(docker + "docker.network = my net\n", at + "docker.network: invalid network 'my net'");
    expect_error(docker + "docker.volumes = /srv\n",
                 at + "docker.volumes: invalid volume '/srv': expected HOST:CONTAINER or HOST:CONTAINER:ro");
    expect_error(docker + "docker.volumes = /srv:cache\n",
                 at + "docker.volumes: invalid volume '/srv:cache': CONTAINER is an absolute path");
    expect_error(docker + "docker.volumes = ../srv:/cache\n",
                 at + "docker.volumes: invalid volume '../srv:/cache': HOST is an absolute path or the name of a volume");
    expect_error(docker + "docker.volumes = /srv:/cache:rx\n",
                 at + "docker.volumes: invalid volume '/srv:/cache:rx': the mode is ro or rw");
    expect_error(docker + "docker.volumes = /a:/cache, /b:/cache:ro\n",
                 at + "docker.volumes: container path '/cache' is mounted twice");
    expect_error(docker + "docker.volumes = /a:/x,\n", at + "docker.volumes: empty entry in list");
    expect_error(docker + "docker.env = CC\n", at + "docker.env: invalid entry 'CC': expected KEY=VALUE");
    expect_error(docker + "docker.env = 1X=y\n", at + "docker.env: invalid entry '1X=y'");
    expect_error(docker + "docker.env = A-B=y\n", at + "docker.env: invalid entry 'A-B=y'");
    expect_error(docker + "docker.env = CC=gcc, CC=clang\n", at + "docker.env: 'CC' is set twice");
    expect_error(docker + "docker.env = BUILDYARD_TOKEN=x\n",
                 at + "docker.env: 'BUILDYARD_TOKEN': names starting with BUILDYARD_ are reserved");
    for (const char* bad : {"0", "5", "lots", "-1", "1.5", "99999999999"}) {
        expect_error(docker + "docker.memory = " + bad + "\n",
                     at + "docker.memory: invalid value '" + bad + "': expected MiB");
    }
    for (const char* bad : {"0", "0.0", "-1", "1.", ".5", "1.0000000001", "1025", "1024.5", "two", "1e3", "1,5"}) {
        expect_error(docker + "docker.cpus = " + bad + "\n",
                     at + "docker.cpus: invalid value '" + bad + "': expected a number of CPUs");
    }
    const std::string no_image = "[master]\nlisten = 127.0.0.1:9000\n[worker c1]\ntype = latent\nbackend = docker\n";
    expect_error(docker + "docker.shutdown_timeout = 3601\n",
                 at + "docker.shutdown_timeout: invalid value '3601': expected seconds from 0 to 3600");
    expect_error(no_image + "docker.image = -bad\n", "6: [worker c1] docker.image: invalid image '-bad'");
    expect_error(no_image + "docker.image = a b\n", "6: [worker c1] docker.image: invalid image 'a b'");
}

TEST_F(ConfigTest, DockerUnknownAndContradictoryKeys) {
    expect_error(docker + "docker.colour = blue\n",
                 "7: [worker c1] docker.colour: unknown key (docker keys: host, image, pull, network, volumes, env, "
                 "memory, cpus, shutdown_timeout)");
    // A key of the other backend is a contradiction, not silently ignored.
    expect_error(docker + "libvirt.uri = qemu:///system\n",
                 "7: [worker c1] libvirt.uri: belongs to backend libvirt, but this worker's backend is docker");
    // Docker keys outside a latent worker.
    expect_error(local_worker + "docker.image = x\n", "3: [worker w] docker.image: unknown key");
    expect_error(local_worker + "backend = docker\ndocker.image = x\n",
                 "4: [worker w] docker.image: only valid for latent workers");
    // Required: the image.
    expect_error("[master]\nlisten = 127.0.0.1:9000\n[worker c1]\ntype = latent\nbackend = docker\n",
                 "3: [worker c1]: docker workers need docker.image");
    // Latent workers take no password, Docker ones neither.
    expect_error(docker + "password = x\n", "7: [worker c1] password: latent workers take no password");
    // An unknown backend names the ones there are.
    expect_error("[worker c1]\ntype = latent\nbackend = podman\n",
                 "3: [worker c1] backend: unknown backend 'podman': expected libvirt, docker, ec2 or openstack");
}

TEST_F(ConfigTest, DockerOptionsReportMissingImage) {
    std::string error;
    EXPECT_FALSE(docker_options({{"docker.pull", "never"}}, error).has_value());
    EXPECT_EQ(error, "docker.image is not set");
    error.clear();
    EXPECT_FALSE(docker_options({{"docker.image", "x"}, {"docker.cpus", "0"}}, error).has_value());
    EXPECT_NE(error.find("docker.cpus: invalid value '0'"), std::string::npos) << error;
}
