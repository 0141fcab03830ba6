// Bytes that are not UTF-8: the config loader refuses them with FILE:LINE,
// and no JSON producer throws on them (an uncaught nlohmann type_error
// used to abort the master). Fuzzed with a fixed seed, so a failure repeats.
#include <random>

#include "common/text.hpp"
#include "config_test_support.hpp"
#include "store_test_support.hpp"

namespace {

// Ill-formed sequences: stray continuation bytes, bytes never used, overlong
// forms, a surrogate, past U+10FFFF, and sequences cut short.
const std::vector<std::string> ill_formed = {"\x80", "\xbf", "\xff", "\xfe", "\xc0\xaf", "\xc1\xbf",
                                             "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xf5\x80",
                                             "\xc3", "\xe2\x82", "\xf0\x9f\x98"};

std::string random_bytes(std::mt19937& rng, size_t max_len) {
    std::uniform_int_distribution<size_t> len(0, max_len);
    std::uniform_int_distribution<int> byte(1, 255);
    std::string s(len(rng), '\0');
    for (auto& c : s) {
        c = static_cast<char>(byte(rng));
    }
    return s;
}

}  // namespace

TEST(Utf8Test, ValidAndInvalid) {
    for (const char* ok : {"", "plain", "caf\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xef\xbb\xbf",
                           "\xf4\x8f\xbf\xbf", "\xed\x9f\xbf"}) {
        EXPECT_TRUE(by::text::valid_utf8(ok)) << ok;
    }
    for (const auto& bad : ill_formed) {
        EXPECT_FALSE(by::text::valid_utf8(bad)) << by::text::for_log(bad);
        EXPECT_FALSE(by::text::valid_utf8("ok" + bad + "ok")) << by::text::for_log(bad);
    }
    EXPECT_EQ(by::text::first_invalid_utf8("ab\xc3\xa9\xff"), 4u);
}

TEST(Utf8Test, ToUtf8ReplacesEachBadByte) {
    EXPECT_EQ(by::text::to_utf8("a\xff" "b"), "a\xef\xbf\xbd" "b");
    EXPECT_EQ(by::text::to_utf8("caf\xc3\xa9"), "caf\xc3\xa9");
    EXPECT_EQ(by::text::to_utf8("\xc3"), "\xef\xbf\xbd");
    std::mt19937 rng(14);
    for (int i = 0; i < 2000; ++i) {
        EXPECT_TRUE(by::text::valid_utf8(by::text::to_utf8(random_bytes(rng, 40))));
    }
}

TEST(Utf8Test, ForLogIsOneBoundedLine) {
    EXPECT_EQ(by::text::for_log("bot1"), "bot1");
    EXPECT_EQ(by::text::for_log("a\nforged: line"), "a\\nforged: line");
    EXPECT_EQ(by::text::for_log("x\xff\x1b[31m\\"), "x\\xff\\x1b[31m\\\\");
    EXPECT_EQ(by::text::for_log("caf\xc3\xa9"), "caf\xc3\xa9");
    const std::string huge(1 << 20, 'n');
    const std::string shown = by::text::for_log(huge, 64);
    EXPECT_EQ(shown, std::string(64, 'n') + "... (1048512 more bytes)");
    std::mt19937 rng(4);
    for (int i = 0; i < 2000; ++i) {
        const std::string s = by::text::for_log(random_bytes(rng, 300), 100);
        EXPECT_EQ(s.find('\n'), std::string::npos);
        EXPECT_TRUE(by::text::valid_utf8(s));
        EXPECT_LE(s.size(), 100u * 4 + 40);
    }
}

// A config with every kind of value a crash was seen with: a property, a
// step, a password, a mail user, a pause-free worker and a latent one; and
// the keys added since whose values reach D-Bus, JSON or mail (default
// properties, the metrics address, keepalives, build limits, a secret).
// [mail] needs builders for its recipients and a password for its user;
// that file and the secret's are written into the test's directory.
std::string fuzz_text(const std::string& password_file, const std::string& secret_file) {
    return R"([master]
name = m1
listen = 127.0.0.1:9989
metrics = 127.0.0.1:9990

[mail]
builders = hello
recipients = ops@example.org
username = mailer
password_file = )" + password_file + R"(

[worker bot1]
password = secret
keepalive_interval = 30
lost_build_grace = 60
property.os = linux
property.note = free text here
default_property.branch = main

[worker loc]
type = local

[builder hello]
workers = bot1, loc
step.1 = echo hello world
step.2 = make -j2 check
timeout = 600
memory_max = 1G
secret.deploy = file:)" + secret_file + R"(
)";
}

std::string fuzz_base_in(const TempDir& dir) {
    return fuzz_text(dir.write("mail.secret", "s3cret\n"), dir.write("deploy", "d3ploy\n"));
}

TEST_F(ConfigTest, FuzzedBytesAreRefusedAtTheirLine) {
    const std::string fuzz_base = fuzz_base_in(dir);
    ASSERT_TRUE(load_text(fuzz_base).config) << joined(load_text(fuzz_base).errors);
    std::mt19937 rng(20261206);
    for (int i = 0; i < 400; ++i) {
        std::string text = fuzz_base;
        const size_t pos = std::uniform_int_distribution<size_t>(0, text.size())(rng);
        const std::string& bad = ill_formed[std::uniform_int_distribution<size_t>(0, ill_formed.size() - 1)(rng)];
        text.insert(pos, bad);
        const int line = 1 + static_cast<int>(std::count(text.begin(), text.begin() + static_cast<long>(pos), '\n'));
        auto r = load_text(text);
        ASSERT_FALSE(r.config.has_value()) << "accepted a byte inserted at " << pos << ":\n" << text;
        const bool at_line = std::any_of(r.errors.begin(), r.errors.end(), [&](const Error& e) {
            return e.file == main && e.line == line && e.message.starts_with("line is not valid UTF-8");
        });
        ASSERT_TRUE(at_line) << "inserted at " << pos << "\n" << joined(r.errors);
        for (const auto& e : r.errors) {
            // Errors go out in Reload's D-Bus error reply.
            EXPECT_TRUE(by::text::valid_utf8(e.str())) << by::text::for_log(e.str());
        }
    }
}

TEST_F(ConfigTest, ADropInWhoseNameIsNotUtf8IsRefused) {
    const std::string fuzz_base = fuzz_base_in(dir);
    load_ok(fuzz_base);
    dir.write("master.d/good.ini", "[worker extra]\ntype = local\n");
    dir.write("master.d/bad-\xff\xfe.ini", "[worker other]\ntype = local\n");
    auto r = load_text(fuzz_base);
    EXPECT_FALSE(r.config.has_value());
    EXPECT_TRUE(has_error(r.errors, "file name is not valid UTF-8")) << joined(r.errors);
    EXPECT_TRUE(has_error(r.errors, "bad-\\xff\\xfe.ini")) << joined(r.errors);
    for (const auto& e : r.errors) {
        EXPECT_TRUE(by::text::valid_utf8(e.str()));
    }
}

TEST(JsonProducers, DumpNeverThrows) {
    std::mt19937 rng(7);
    for (int i = 0; i < 2000; ++i) {
        nlohmann::json j = {{random_bytes(rng, 20), random_bytes(rng, 40)},
                            {"list", {random_bytes(rng, 10), random_bytes(rng, 10)}}};
        std::string out;
        EXPECT_NO_THROW(out = by::text::json_dump(j));
        EXPECT_TRUE(by::text::valid_utf8(out));
        EXPECT_TRUE(nlohmann::json::parse(out, nullptr, false).is_object());
    }
}

// The store writes properties, worker info and mail recipients as JSON:
// ill-formed bytes there threw out of the master's event loop.
TEST(JsonProducers, StoreWritesIllFormedBytes) {
    TempDir tmp{"buildyard-utf8"};
    auto store = open_test_store(tmp.path());
    ASSERT_TRUE(store);
    std::mt19937 rng(99);
    for (int i = 0; i < 200; ++i) {
        by::master::Build b;
        b.builder = "hello";
        b.requested = {{"k", random_bytes(rng, 30)}, {random_bytes(rng, 8) + "\xff", "v"}};
        b.properties = b.requested;
        ASSERT_NO_THROW(ASSERT_TRUE(store->record_submitted(b)) << store->error());
        by::master::start_build(b, "bot1", {{"os", random_bytes(rng, 16) + "\xc3"}}, 10);
        ASSERT_NO_THROW(ASSERT_TRUE(store->claim_builds({b})) << store->error());
        by::master::WorkerRecord w{"bot1", true, "r", 1, 2, {{"host", random_bytes(rng, 20) + "\xed\xa0\x80"}}, ""};
        ASSERT_NO_THROW(ASSERT_TRUE(store->save_worker(w)) << store->error());
    }
}
