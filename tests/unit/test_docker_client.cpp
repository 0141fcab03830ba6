// The docker backend's pure parts: the log stream's demultiplexing, the log
// tail, URL escaping, the body of a container's creation and the decoding of
// the engine's answers. The calls to a real engine are tested in tests/docker
// (ctest -L docker).
#include <gtest/gtest.h>

#include "latent/docker/docker_backend.hpp"
#include "latent/docker/docker_client.hpp"
#include "latent/docker/docker_decode.hpp"

using namespace by::latent;
using namespace by::latent::docker;

namespace {

std::string frame(unsigned char stream, const std::string& payload) {
    std::string out = {static_cast<char>(stream), 0, 0, 0};
    const auto n = payload.size();
    out += static_cast<char>((n >> 24) & 0xff);
    out += static_cast<char>((n >> 16) & 0xff);
    out += static_cast<char>((n >> 8) & 0xff);
    out += static_cast<char>(n & 0xff);
    return out + payload;
}

}  // namespace

TEST(DockerLogs, DemultiplexesStdoutAndStderrInOrder) {
    EXPECT_EQ(demultiplex_logs(frame(1, "out 1\n") + frame(2, "err\n") + frame(1, "out 2\n")), "out 1\nerr\nout 2\n");
    EXPECT_EQ(demultiplex_logs(""), "");
    // A frame longer than 255 bytes uses the higher bytes of the length.
    const std::string big(70000, 'x');
    EXPECT_EQ(demultiplex_logs(frame(1, big) + frame(2, "end")), big + "end");
}

TEST(DockerLogs, AStreamCutInsideAFrameResyncs) {
    // What is left of a long log whose head was dropped: the end of a frame,
    // then whole frames.
    const std::string whole = frame(1, "first line that is cut\n") + frame(2, "second\n") + frame(1, "third\n");
    const std::string cut = whole.substr(13);
    EXPECT_EQ(demultiplex_logs(cut, true), "second\nthird\n");
    // Without cut_head the same bytes are not taken for a stream.
    EXPECT_EQ(demultiplex_logs(cut), cut);
}

TEST(DockerLogs, RawTextOfATtyPassesThrough) {
    EXPECT_EQ(demultiplex_logs("plain text\nfrom a tty\n"), "plain text\nfrom a tty\n");
    // A header whose length runs past the end is not a stream either.
    const std::string cut = frame(1, "abc").substr(0, 9);
    EXPECT_EQ(demultiplex_logs(cut), cut);
}

TEST(DockerLogs, LastLines) {
    std::string text;
    for (int i = 1; i <= 60; ++i) {
        text += "line " + std::to_string(i) + "\n";
    }
    const auto tail = last_lines(text, 50);
    EXPECT_TRUE(tail.starts_with("line 11\n")) << tail;
    EXPECT_TRUE(tail.ends_with("line 60\n")) << tail;
    EXPECT_EQ(last_lines("a\nb\nc", 2), "b\nc");
    EXPECT_EQ(last_lines("a\nb\n", 5), "a\nb\n");
    EXPECT_EQ(last_lines("a\nb\n", 0), "");
    EXPECT_EQ(last_lines("", 3), "");
}

TEST(DockerClient, UrlEscape) {
    EXPECT_EQ(url_escape("buildyard-m.1_w~"), "buildyard-m.1_w~");
    EXPECT_EQ(url_escape("{\"label\":[\"a=b c\"]}"), "%7B%22label%22%3A%5B%22a%3Db%20c%22%5D%7D");
}

TEST(DockerBackend, ContainerBody) {
    by::config::Worker worker;
    worker.name = "c1";
    StartSpec spec;
    spec.tag = {"m1", "c1", std::string(32, 'a')};
    spec.master_address = "127.0.0.1:9989";
    spec.token = std::string(64, 'f');
    spec.worker = &worker;
    by::config::DockerOptions o;
    o.image = "localhost/buildyard-worker:test";
    o.network = "host";
    o.binds = {"/srv:/srv:ro"};
    o.env = {"CC=gcc"};
    o.memory_bytes = 64 << 20;
    o.nano_cpus = 500000000;

    const auto body = DockerBackend::container_body(spec, o, false);
    EXPECT_EQ(body["Image"], "localhost/buildyard-worker:test");
    EXPECT_EQ(body["Cmd"], Json::array({"buildyard-workerd", "--latent"}));
    EXPECT_EQ(body["Env"], Json::array({"CC=gcc", "BUILDYARD_WORKER_NAME=c1", "BUILDYARD_MASTER=127.0.0.1:9989",
                                        "BUILDYARD_TOKEN=" + std::string(64, 'f')}));
    EXPECT_EQ(body["Labels"], Json({{"org.buildyard.master", "m1"},
                                    {"org.buildyard.worker", "c1"},
                                    {"org.buildyard.start", std::string(32, 'a')}}));
    EXPECT_EQ(body["HostConfig"]["NetworkMode"], "host");
    EXPECT_EQ(body["HostConfig"]["Binds"], Json::array({"/srv:/srv:ro"}));
    EXPECT_EQ(body["HostConfig"]["Memory"], 64 << 20);
    EXPECT_EQ(body["HostConfig"]["NanoCpus"], 500000000);
    EXPECT_EQ(DockerBackend::container_name(spec.tag), "buildyard-m1-c1");

    // An image with an entrypoint of its own gets no command; no limits, no keys.
    by::config::DockerOptions bare;
    bare.image = "x";
    const auto plain = DockerBackend::container_body(spec, bare, true);
    EXPECT_FALSE(plain.contains("Cmd"));
    EXPECT_FALSE(plain["HostConfig"].contains("Memory"));
    EXPECT_FALSE(plain["HostConfig"].contains("NanoCpus"));
    EXPECT_FALSE(plain["HostConfig"].contains("Binds"));
}

// The engine's answers are decoded without trusting their types: a field of
// another type than the API's is as good as absent (found by
// tests/fuzz/fuzz_docker_json.cpp; these threw nlohmann::json::type_error).
TEST(DockerDecode, FieldsOfAnotherTypeAreIgnored) {
    const auto s = decode_container(
        R"({"Id":"c1","Name":"/n","State":{"Status":"running","Running":"yes","OOMKilled":1,"ExitCode":"3"},)"
        R"("Config":{"Tty":"no","Labels":{"a":"b","n":1}}})");
    ASSERT_TRUE(s.has_value());
    EXPECT_TRUE(s->exists);
    EXPECT_EQ(s->name, "n");
    EXPECT_EQ(s->status, "running");
    EXPECT_FALSE(s->running);
    EXPECT_FALSE(s->oom_killed);
    EXPECT_EQ(s->exit_code, 0);
    EXPECT_FALSE(s->tty);
    EXPECT_EQ(s->labels, (std::map<std::string, std::string>{{"a", "b"}}));

    const auto list = decode_container_list(R"([1, "x", [], {"Id":"a","Names":"/n","Labels":[]}, {"Names":["/m"]}])");
    ASSERT_TRUE(list.has_value());
    ASSERT_EQ(list->size(), 1u);
    EXPECT_EQ(list->at(0).id, "a");
    EXPECT_EQ(list->at(0).names, std::vector<std::string>{"n"});
}

TEST(DockerDecode, TheApisAnswers) {
    const auto s = decode_container(
        R"({"Id":"c1","Name":"/by-w","State":{"Status":"exited","Running":false,"OOMKilled":true,"ExitCode":137,)"
        R"("Error":"oom"},"Config":{"Tty":true,"Labels":{"org.buildyard.worker":"w"}}})");
    ASSERT_TRUE(s.has_value());
    EXPECT_EQ(s->id, "c1");
    EXPECT_EQ(s->name, "by-w");
    EXPECT_TRUE(s->oom_killed);
    EXPECT_EQ(s->exit_code, 137);
    EXPECT_EQ(s->error, "oom");
    EXPECT_TRUE(s->tty);
    EXPECT_FALSE(decode_container(R"({"Id":"c1"})").has_value());
    EXPECT_FALSE(decode_container("not json").has_value());

    EXPECT_EQ(decode_wait(R"({"StatusCode":3})"), 3);
    EXPECT_FALSE(decode_wait(R"({"StatusCode":"3"})").has_value());
    EXPECT_EQ(decode_created_id(R"({"Id":"abc","Warnings":[]})"), "abc");
    EXPECT_FALSE(decode_created_id(R"({"Id":""})").has_value());
    EXPECT_EQ(decode_version(R"({"Version":"4.3.1"})"), "4.3.1");
    EXPECT_EQ(decode_version("[]"), "unknown");
    EXPECT_EQ(decode_version(R"({"Version":""})"), "unknown");
    EXPECT_EQ(decode_image(R"({"Id":"i","Config":{"Entrypoint":"/init"}})").entrypoint,
              std::vector<std::string>{"/init"});
    EXPECT_EQ(error_message(R"({"message":"no such container"})"), "no such container");
    EXPECT_EQ(error_message("plain text\n"), "plain text");
    EXPECT_EQ(decode_pull_error("{\"status\":\"a\"}\n{\"error\":\"manifest unknown\"}\n"), "manifest unknown");
    EXPECT_EQ(decode_pull_error("{\"error\":{\"code\":1}}"), R"({"code":1})");
    EXPECT_FALSE(decode_pull_error("{\"status\":\"done\"}\n").has_value());
}
