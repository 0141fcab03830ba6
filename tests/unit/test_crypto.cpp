// The handshake's cryptography and decisions: HMAC-SHA256 against RFC 4231,
// the proofs of both sides, the master's verdicts, the failure throttle and
// the worker's reconnect backoff.
#include <random>
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "common/backoff.hpp"
#include "common/crypto.hpp"
#include "master/handshake.hpp"

using namespace by;

namespace {

std::string hex(const crypto::Bytes& b) {
    static const char digits[] = "0123456789abcdef";
    std::string s;
    for (uint8_t c : b) {
        s += digits[c >> 4];
        s += digits[c & 15];
    }
    return s;
}

crypto::Bytes bytes(std::string_view s) { return crypto::Bytes(s.begin(), s.end()); }

crypto::Bytes filled(size_t n, uint8_t v) { return crypto::Bytes(n, v); }

TEST(Crypto, HmacSha256Rfc4231) {
    // Test case 1
    EXPECT_EQ(hex(crypto::hmac_sha256(std::string(20, '\x0b'), bytes("Hi There"))),
              "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    // Test case 2
    EXPECT_EQ(hex(crypto::hmac_sha256("Jefe", bytes("what do ya want for nothing?"))),
              "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    // Test case 6: a key longer than the block size
    EXPECT_EQ(hex(crypto::hmac_sha256(std::string(131, '\xaa'),
                                      bytes("Test Using Larger Than Block-Size Key - Hash Key First"))),
              "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

TEST(Crypto, RandomBytes) {
    auto a = crypto::random_bytes(crypto::nonce_size);
    auto b = crypto::random_bytes(crypto::nonce_size);
    ASSERT_EQ(a.size(), 32u);
    ASSERT_EQ(b.size(), 32u);
    EXPECT_NE(a, b);
}

TEST(Crypto, RandomHex) {
    const std::string a = crypto::random_hex(8), b = crypto::random_hex(8);
    ASSERT_EQ(a.size(), 16u);
    EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos);
    EXPECT_NE(a, b);
    EXPECT_EQ(crypto::random_hex(32).size(), 64u);
}

TEST(Crypto, Equal) {
    EXPECT_TRUE(crypto::equal(bytes("abc"), bytes("abc")));
    EXPECT_FALSE(crypto::equal(bytes("abc"), bytes("abd")));
    EXPECT_FALSE(crypto::equal(bytes("abc"), bytes("abcd")));
    EXPECT_FALSE(crypto::equal(crypto::Bytes{}, crypto::Bytes{}));  // an empty proof proves nothing
}

TEST(Crypto, ProofsFollowTheDocumentedLayout) {
    const auto wn = filled(32, 1), mn = filled(32, 2);
    using namespace std::string_literals;
    const std::string w1(32, '\x01'), m2(32, '\x02');
    EXPECT_EQ(crypto::worker_proof("pw", "bot1", mn, wn, {}),
              crypto::hmac_sha256("pw", bytes("buildyard-worker-v1\0bot1\0"s + m2 + w1)));
    EXPECT_EQ(crypto::master_proof("pw", "bot1", wn, mn, {}),
              crypto::hmac_sha256("pw", bytes("buildyard-master-v1\0bot1\0"s + w1 + m2)));
    // The two directions never share a proof.
    EXPECT_NE(crypto::worker_proof("pw", "bot1", mn, wn, {}), crypto::master_proof("pw", "bot1", wn, mn, {}));
}

// The worker's check of its master: only a master that knows the password,
// answering this very challenge, passes.
TEST(Crypto, WorkerVerifiesMasterProof) {
    const auto wn = crypto::random_bytes(32), mn = crypto::random_bytes(32);
    const auto good = crypto::master_proof("pw", "bot1", wn, mn, {});
    EXPECT_TRUE(crypto::master_proof_valid("pw", "bot1", wn, mn, {}, good));
    EXPECT_FALSE(crypto::master_proof_valid("pw", "bot1", wn, mn, {}, crypto::master_proof("other", "bot1", wn, mn, {})));
    EXPECT_FALSE(crypto::master_proof_valid("pw", "bot2", wn, mn, {}, good));
    EXPECT_FALSE(crypto::master_proof_valid("pw", "bot1", crypto::random_bytes(32), mn, {}, good));  // replayed
    EXPECT_FALSE(crypto::master_proof_valid("pw", "bot1", wn, mn, {}, crypto::worker_proof("pw", "bot1", mn, wn, {})));
    EXPECT_FALSE(crypto::master_proof_valid("pw", "bot1", wn, mn, {}, crypto::Bytes{}));
    auto truncated = good;
    truncated.pop_back();
    EXPECT_FALSE(crypto::master_proof_valid("pw", "bot1", wn, mn, {}, truncated));
}

TEST(Handshake, Verdicts) {
    config::Worker w;
    w.name = "bot1";
    w.password = "pw";
    const auto wn = crypto::random_bytes(32), mn = crypto::random_bytes(32);
    const auto proof = crypto::worker_proof("pw", "bot1", mn, wn, {});
    using master::AuthVerdict;
    EXPECT_EQ(master::verify_worker_proof(&w, "bot1", {mn, wn, {}}, proof, "dummy"), AuthVerdict::ok);
    EXPECT_EQ(master::verify_worker_proof(&w, "bot1", {mn, wn, {}}, crypto::worker_proof("nope", "bot1", mn, wn, {}), "dummy"),
              AuthVerdict::wrong_password);
    EXPECT_EQ(master::verify_worker_proof(&w, "bot1", {wn, mn, {}}, proof, "dummy"), AuthVerdict::wrong_password);
    EXPECT_EQ(master::verify_worker_proof(nullptr, "bot1", {mn, wn, {}}, proof, "dummy"), AuthVerdict::unknown_worker);
    // Even a proof made with the dummy key does not let an unknown name in.
    EXPECT_EQ(master::verify_worker_proof(nullptr, "x", {mn, wn, {}}, crypto::worker_proof("dummy", "x", mn, wn, {}), "dummy"),
              AuthVerdict::unknown_worker);
    // A local worker has no password, so over TCP it does not exist.
    config::Worker local;
    local.name = "bot1";
    local.type = config::WorkerType::local;
    EXPECT_EQ(master::verify_worker_proof(&local, "bot1", {mn, wn, {}}, crypto::worker_proof("", "bot1", mn, wn, {}), "dummy"),
              AuthVerdict::unknown_worker);
}

TEST(Handshake, FailureLines) {
    EXPECT_EQ(master::auth_failure_line(master::AuthVerdict::unknown_worker, "ghost", "10.0.0.1:4242"),
              "invalid login from unknown worker 'ghost' (10.0.0.1:4242)");
    EXPECT_EQ(master::auth_failure_line(master::AuthVerdict::wrong_password, "bot1", "10.0.0.1:4242"),
              "invalid login from worker 'bot1': wrong password (10.0.0.1:4242)");
}

TEST(Handshake, ThrottleGrowsPerAddressAndForgets) {
    master::AuthThrottle t;
    uint64_t now = 1'000'000;
    EXPECT_EQ(t.failure("10.0.0.1", "bot1", now), 0u);
    EXPECT_EQ(t.failure("10.0.0.1", "bot1", now += 1000), 200'000u);
    EXPECT_EQ(t.failure("10.0.0.1", "bot1", now += 1000), 400'000u);
    EXPECT_EQ(t.failure("10.0.0.2", "bot2", now), 0u) << "another address is not slowed down";
    uint64_t last = 0;
    for (int i = 0; i < 20; ++i) {
        last = t.failure("10.0.0.1", "bot1", now += 1000);
    }
    EXPECT_EQ(last, master::AuthThrottle::max_delay);
    // A quiet minute wipes the slate.
    EXPECT_EQ(t.failure("10.0.0.1", "bot1", now + master::AuthThrottle::quiet), 0u);
}

TEST(Handshake, ThrottleHoldsEveryAttemptForANameWhateverTheAddress) {
    master::AuthThrottle t;
    uint64_t now = 1'000'000;
    EXPECT_EQ(t.wait("bot1", now), 0u);
    // Failures from ever new addresses: each is answered at once, but the
    // name's next attempt waits longer and longer.
    t.failure("127.0.0.2", "bot1", now);
    EXPECT_EQ(t.wait("bot1", now), 200'000u);
    EXPECT_EQ(t.wait("bot2", now), 0u) << "other names are not held";
    now += 200'000;
    EXPECT_EQ(t.wait("bot1", now), 0u);
    t.failure("127.0.0.3", "bot1", now);
    EXPECT_EQ(t.wait("bot1", now + 100'000), 300'000u);
    for (int i = 0; i < 20; ++i) {
        now += t.wait("bot1", now);
        t.failure("127.0.0." + std::to_string(4 + i), "bot1", now);
    }
    EXPECT_EQ(t.wait("bot1", now), master::AuthThrottle::max_delay) << "capped, never locked out for good";
    EXPECT_EQ(t.wait("bot1", now + master::AuthThrottle::quiet), 0u);
    // The right password clears the name.
    t.success("bot1");
    EXPECT_EQ(t.wait("bot1", now), 0u);
    EXPECT_EQ(t.tracked_names(), 0u);
}

TEST(Handshake, ProofsAreBoundToTheTlsSession) {
    config::Worker w;
    w.name = "bot1";
    w.password = "pw";
    const auto wn = crypto::random_bytes(32), mn = crypto::random_bytes(32);
    const auto ours = crypto::random_bytes(32), relayed = crypto::random_bytes(32);
    const auto proof = crypto::worker_proof("pw", "bot1", mn, wn, ours);
    using master::AuthVerdict;
    EXPECT_EQ(master::verify_worker_proof(&w, "bot1", {mn, wn, ours}, proof, "dummy"), AuthVerdict::ok);
    EXPECT_EQ(master::verify_worker_proof(&w, "bot1", {mn, wn, relayed}, proof, "dummy"),
              AuthVerdict::wrong_password);
    EXPECT_EQ(master::verify_worker_proof(&w, "bot1", {mn, wn, {}}, proof, "dummy"), AuthVerdict::wrong_password);
    const auto master_proof = crypto::master_proof("pw", "bot1", wn, mn, relayed);
    EXPECT_FALSE(crypto::master_proof_valid("pw", "bot1", wn, mn, ours, master_proof));
    EXPECT_TRUE(crypto::master_proof_valid("pw", "bot1", wn, mn, relayed, master_proof));
}

TEST(RemoteLink, ReconnectBackoffDoublesWithJitterUpToTheCap) {
    std::mt19937_64 random(42);
    for (int round = 0; round < 50; ++round) {
        for (unsigned attempt = 0; attempt < 10; ++attempt) {
            const uint64_t full = std::min<uint64_t>(uint64_t{1} << attempt, 20) * 1'000'000;
            const uint64_t d = reconnect_delay_usec(attempt, 20, random);
            EXPECT_GE(d, full / 2) << attempt;
            EXPECT_LE(d, full) << attempt;
        }
    }
    EXPECT_LE(reconnect_delay_usec(200, 60, random), 60'000'000u);
    // Jitter: not every worker picks the same moment.
    std::set<uint64_t> seen;
    for (int i = 0; i < 20; ++i) {
        seen.insert(reconnect_delay_usec(5, 60, random));
    }
    EXPECT_GT(seen.size(), 10u);
}

}  // namespace
