// libFuzzer harness: the messages of org.buildyard.Handshake1 as each side
// reads them (common/handshake_messages.hpp), then the master's checks of a
// Hello and an Authenticate (master/handshake.hpp). The input picks the
// message (Hello or Authenticate as the master receives them, or their
// replies as the worker does) and its arguments: any D-Bus types and
// values, in any number. No transport: the messages are built and sealed
// in memory on a bus that never connects.
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <fuzzer/FuzzedDataProvider.h>
#include <systemd/sd-bus.h>

#include "common/config_values.hpp"
#include "common/handshake_messages.hpp"
#include "common/raii.hpp"
#include "fuzz_check.hpp"
#include "master/handshake.hpp"

namespace {

// sd-bus makes messages only for a bus that has started; this one starts
// on a socket pair and is never read from.
sd_bus* message_bus() {
    static sd_bus* bus = [] {
        int fds[2];
        sd_bus* b = nullptr;
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0 || sd_bus_new(&b) < 0 ||
            sd_bus_set_fd(b, fds[0], fds[0]) < 0 || sd_bus_start(b) < 0) {
            std::abort();
        }
        return b;
    }();
    return bus;
}

// Appends one argument of a type the input picks. A value sd-bus refuses
// (a string that is not UTF-8, an invalid object path) fails the append.
int append_argument(sd_bus_message* m, FuzzedDataProvider& in) {
    switch (in.ConsumeIntegralInRange(0, 7)) {
    case 0: return sd_bus_message_append(m, "s", in.ConsumeRandomLengthString(300).c_str());
    case 1: {
        const auto bytes = in.ConsumeBytes<uint8_t>(in.ConsumeIntegralInRange<size_t>(0, 80));
        return sd_bus_message_append_array(m, 'y', bytes.data(), bytes.size());
    }
    case 2: {
        int r = sd_bus_message_open_container(m, 'a', "{ss}");
        for (int n = in.ConsumeIntegralInRange(0, 8); r >= 0 && n > 0; --n) {
            const std::string k = in.ConsumeRandomLengthString(40);
            const std::string v = in.ConsumeRandomLengthString(100);
            r = sd_bus_message_append(m, "{ss}", k.c_str(), v.c_str());
        }
        return r < 0 ? r : sd_bus_message_close_container(m);
    }
    case 3: return sd_bus_message_append(m, "o", in.ConsumeRandomLengthString(100).c_str());
    case 4: return sd_bus_message_append(m, "u", in.ConsumeIntegral<uint32_t>());
    case 5: return sd_bus_message_append(m, "v", "s", in.ConsumeRandomLengthString(50).c_str());
    case 6: return sd_bus_message_append(m, "as", 1, in.ConsumeRandomLengthString(50).c_str());
    default: return sd_bus_message_append(m, "a{sv}", 1, "keepalive_interval", "t", in.ConsumeIntegral<uint64_t>());
    }
}

// Worker "w1", whose password the seeds' proofs use.
const by::config::Worker& known_worker() {
    static const by::config::Worker w = [] {
        by::config::Worker c;
        c.name = "w1";
        c.password = "fuzz-password";
        return c;
    }();
    return w;
}

void check_hello(sd_bus_message* m) {
    by::handshake::Hello hello;
    std::string error;
    const int r = by::handshake::read_hello(m, hello, error);
    if (r == 0) {
        FUZZ_CHECK(!error.empty());
        return;
    }
    if (r < 0) {
        return;
    }
    FUZZ_CHECK(hello.worker_nonce.size() == by::crypto::nonce_size);
    // What the master does next with the name: look for the worker, check a
    // proof keyed on it, log a failure.
    const by::config::Worker* cfg = hello.name == "w1" ? &known_worker() : nullptr;
    const std::vector<uint8_t> master_nonce(by::crypto::nonce_size, 7);
    const auto verdict = by::master::verify_worker_proof(
        cfg, hello.name, {master_nonce, hello.worker_nonce, hello.channel_binding}, hello.worker_nonce, "dummy");
    FUZZ_CHECK(verdict != by::master::AuthVerdict::ok);  // a nonce is no proof
    FUZZ_CHECK(!by::master::auth_failure_line(verdict, hello.name, "127.0.0.1:1").empty());
}

void check_authenticate(sd_bus_message* m) {
    by::handshake::Authenticate auth;
    std::string error;
    const int r = by::handshake::read_authenticate(m, auth, error);
    if (r == 0) {
        FUZZ_CHECK(!error.empty());
        return;
    }
    if (r < 0) {
        return;
    }
    const std::vector<uint8_t> nonce(by::crypto::nonce_size, 1);
    const auto expected = by::crypto::worker_proof("fuzz-password", "w1", nonce, nonce, nonce);
    const auto verdict =
        by::master::verify_worker_proof(&known_worker(), "w1", {nonce, nonce, nonce}, auth.proof, "dummy");
    FUZZ_CHECK((verdict == by::master::AuthVerdict::ok) == (auth.proof == expected));
    const std::vector<std::string> earlier{"old-token"};
    const std::string current = "token";
    const auto latent =
        by::master::verify_latent_proof(&current, earlier, "w1", {nonce, nonce, nonce}, auth.proof, "dummy");
    FUZZ_CHECK(latent != by::master::AuthVerdict::unknown_worker && latent != by::master::AuthVerdict::wrong_password);
}

void check_hello_reply(sd_bus_message* m) {
    by::crypto::Bytes nonce;
    std::string error;
    const int r = by::handshake::read_hello_reply(m, nonce, error);
    FUZZ_CHECK(r != 0 || !error.empty());
    FUZZ_CHECK(r <= 0 || nonce.size() == by::crypto::nonce_size);
}

void check_accepted(sd_bus_message* m) {
    by::handshake::Accepted accepted;
    std::string error;
    const int r = by::handshake::read_accepted(m, accepted, error);
    FUZZ_CHECK(r != 0 || !error.empty());
    if (r <= 0) {
        return;
    }
    // The worker waits twice the interval for word from its master, in
    // microseconds of CLOCK_MONOTONIC: only what a master can configure.
    FUZZ_CHECK(accepted.keepalive_interval <= by::config::detail::max_seconds);
    const std::vector<uint8_t> nonce(by::crypto::nonce_size, 2);
    by::crypto::master_proof_valid("fuzz-password", "w1", nonce, nonce, {}, accepted.master_proof);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzedDataProvider in(data, size);
    sd_bus* bus = message_bus();
    const int kind = in.ConsumeIntegralInRange(0, 3);  // Hello, Authenticate, their replies
    sd_bus_message* raw = nullptr;
    if (sd_bus_message_new_method_call(bus, &raw, nullptr, "/org/buildyard/Master1", by::handshake::interface,
                                       kind % 2 == 0 ? "Hello" : "Authenticate") < 0) {
        std::abort();
    }
    by::MessagePtr call(raw);
    by::MessagePtr message;
    if (kind < 2) {
        message = std::move(call);
    } else {
        if (sd_bus_message_seal(call.get(), 1, 0) < 0 || sd_bus_message_new_method_return(call.get(), &raw) < 0) {
            std::abort();
        }
        message.reset(raw);
    }
    for (int n = in.ConsumeIntegralInRange(0, 5); n > 0; --n) {
        if (append_argument(message.get(), in) < 0) {
            return 0;  // not a message anyone can send
        }
    }
    if (sd_bus_message_seal(message.get(), 2, 0) < 0 || sd_bus_message_rewind(message.get(), 1) < 0) {
        std::abort();
    }
    switch (kind) {
    case 0: check_hello(message.get()); break;
    case 1: check_authenticate(message.get()); break;
    case 2: check_hello_reply(message.get()); break;
    default: check_accepted(message.get()); break;
    }
    return 0;
}
