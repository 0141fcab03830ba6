// A worker's own file (/etc/buildyard/workers/NAME.ini), with real files in
// a fresh temporary directory per test.
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/worker_config.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;
using namespace by::config;

namespace {

class WorkerConfigTest : public ::testing::Test {
protected:
    WorkerConfigTest() {
        file = (dir / "w1.ini").string();
        env.hostname = "testhost";
    }

    std::string write(const std::string& name, const std::string& content) { return tmp.write(name, content); }

    WorkerSelfResult load_text(const std::string& text) {
        write("w1.ini", text);
        return load_worker("w1", file, true, env);
    }

    WorkerSelf load_ok(const std::string& text) {
        auto r = load_text(text);
        EXPECT_TRUE(r.errors.empty()) << all(r.errors);
        EXPECT_TRUE(r.config.has_value());
        return r.config.value_or(WorkerSelf{});
    }

    // `where_what` is "LINE: ..." checked against w1.ini.
    void expect_error(const std::string& text, const std::string& where_what) {
        auto r = load_text(text);
        EXPECT_FALSE(r.config.has_value());
        const std::string expected = file + ":" + where_what;
        bool found = false;
        for (const auto& e : r.errors) {
            found = found || e.str().find(expected) != std::string::npos;
        }
        EXPECT_TRUE(found) << "no error contains\n  " << expected << "\nerrors:\n" << all(r.errors);
    }

    static std::string all(const std::vector<Error>& errors) {
        std::string out;
        for (const auto& e : errors) {
            out += "  " + e.str() + "\n";
        }
        return out.empty() ? "  (no errors)\n" : out;
    }

    TempDir tmp{"by-worker-config"};
    const fs::path dir{tmp.path()};
    std::string file;
    Environment env;
};

TEST_F(WorkerConfigTest, MissingOptionalFileGivesDefaults) {
    auto r = load_worker("w1", dir / "absent.ini", false, env);
    ASSERT_TRUE(r.config) << all(r.errors);
    EXPECT_TRUE(r.errors.empty());
    EXPECT_EQ(r.config->name, "w1");
    EXPECT_EQ(r.config->masters, std::vector<std::string>{"bus"});
    EXPECT_TRUE(r.config->local());
    EXPECT_EQ(r.config->password, "");
    EXPECT_EQ(r.config->basedir, "/var/lib/buildyard-worker/w1");
    EXPECT_EQ(r.config->admin, "");
    EXPECT_EQ(r.config->kill_timeout, 10u);
    EXPECT_EQ(r.config->reconnect_max, 60u);
    EXPECT_TRUE(r.config->units);

    env.state_directory = "/var/lib/buildyard-worker/w1-state";
    r = load_worker("w1", dir / "absent.ini", false, env);
    ASSERT_TRUE(r.config);
    EXPECT_EQ(r.config->basedir, "/var/lib/buildyard-worker/w1-state");
}

TEST_F(WorkerConfigTest, MissingRequiredFile) {
    const auto path = (dir / "absent.ini").string();
    auto r = load_worker("w1", path, true, env);
    EXPECT_FALSE(r.config);
    ASSERT_EQ(r.errors.size(), 1u);
    EXPECT_EQ(r.errors[0].str(), path + ": No such file or directory");
}

TEST_F(WorkerConfigTest, UnreadableFileIsAnErrorEvenWhenOptional) {
    fs::create_directories(dir / "w1.ini");
    auto r = load_worker("w1", file, false, env);
    EXPECT_FALSE(r.config);
    ASSERT_EQ(r.errors.size(), 1u);
    EXPECT_EQ(r.errors[0].str(), file + ": Is a directory");
}

TEST_F(WorkerConfigTest, InvalidName) {
    auto r = load_worker("-bad", file, false, env);
    EXPECT_FALSE(r.config);
    ASSERT_EQ(r.errors.size(), 1u);
    EXPECT_EQ(r.errors[0].str().rfind(file + ": invalid worker name '-bad'", 0), 0u) << r.errors[0].str();
}

TEST_F(WorkerConfigTest, KeysOutsideAnySection) {
    const auto c = load_ok("master = ci.example.org:9989   ; remote\n"
                           "password = pw\n"
                           "tls = no\n"
                           "basedir = /srv/build\n"
                           "admin = Jane Doe <jane@example.org>\n"
                           "kill_timeout = 3\n");
    EXPECT_EQ(c.masters, std::vector<std::string>{"ci.example.org:9989"});
    EXPECT_FALSE(c.local());
    EXPECT_EQ(c.password, "pw");
    EXPECT_EQ(c.basedir, "/srv/build");
    EXPECT_EQ(c.admin, "Jane Doe <jane@example.org>");
    EXPECT_EQ(c.kill_timeout, 3u);
}

TEST_F(WorkerConfigTest, ReconnectMax) {
    EXPECT_EQ(load_ok("master = 127.0.0.1:9989\npassword = pw\nreconnect_max = 5\ntls = no\n").reconnect_max, 5u);
    EXPECT_EQ(load_ok("reconnect_max = 86400\n").reconnect_max, 86400u);
}

TEST_F(WorkerConfigTest, Isolation) {
    EXPECT_TRUE(load_ok("admin = someone\n").units);
    EXPECT_TRUE(load_ok("isolation = auto\n").units);
    EXPECT_FALSE(load_ok("admin = someone\n[worker]\nisolation = subreaper\n").units);
    expect_error("isolation = none\n", "1: isolation: invalid value 'none': expected auto or subreaper");
    expect_error("[worker]\nadmin = x\nisolation = Subreaper\n",
                 "3: [worker] isolation: invalid value 'Subreaper': expected auto or subreaper");
}

TEST_F(WorkerConfigTest, KeysInWorkerSection) {
    const auto c = load_ok("admin = someone\n[worker]\nmaster = [::1]:9989\npassword = pw\ntls = off\n");
    EXPECT_EQ(c.masters, std::vector<std::string>{"[::1]:9989"});
    EXPECT_EQ(c.admin, "someone");
}

TEST_F(WorkerConfigTest, LocalMasterNeedsNoPassword) {
    const auto c = load_ok("master = bus\n");
    EXPECT_EQ(c.masters, std::vector<std::string>{"bus"});
    EXPECT_EQ(c.password, "");
}

TEST_F(WorkerConfigTest, PasswordSources) {
    const auto pw = write("pw", "from-file\n");
    auto c = load_ok("master = 127.0.0.1:9989\ntls = no\npassword_file = " + pw + "\n");
    EXPECT_EQ(c.password, "from-file");

    fs::create_directories(dir / "creds");
    write("creds/worker-pw", "from-cred");
    env.credentials_directory = (dir / "creds").string();
    c = load_ok("master = 127.0.0.1:9989\ntls = no\npassword_credential = worker-pw\n");
    EXPECT_EQ(c.password, "from-cred");

    env.credentials_directory.clear();
    expect_error("master = 127.0.0.1:9989\npassword_credential = worker-pw\n",
                 "2: password_credential: password_credential needs $CREDENTIALS_DIRECTORY");
    expect_error("password_file = pw\n", "1: password_file: 'pw' is not an absolute path");
    expect_error("password =\n", "1: password: the password is empty");
}

TEST_F(WorkerConfigTest, TlsTrust) {
    const std::string hex(64, 'a');
    auto c = load_ok("master = ci:9989\npassword = pw\nmaster_fingerprint = SHA256:" + std::string(64, 'A') + "\n");
    EXPECT_TRUE(c.tls);
    EXPECT_EQ(c.master_fingerprints, std::vector<std::string>{"sha256:" + hex});
    // Colons between byte pairs, as openssl x509 -fingerprint prints them.
    std::string colons;
    for (int i = 0; i < 32; ++i) colons += std::string(i ? ":" : "") + "AA";
    EXPECT_EQ(load_ok("master = ci:9989\npassword = pw\nmaster_fingerprint = sha256:" + colons + "\n").master_fingerprints,
              std::vector<std::string>{"sha256:" + hex});
    const auto ca = write("ca.pem", "not checked here\n");
    c = load_ok("master = ci:9989\npassword = pw\ntls_ca_file = " + ca + "\n");
    EXPECT_EQ(c.tls_ca_file, ca);
    EXPECT_FALSE(load_ok("master = ci:9989\npassword = pw\ntls = no\n").tls);
    EXPECT_TRUE(load_ok("master = bus\n").tls) << "a local worker needs no trust";

    expect_error("master = ci:9989\npassword = pw\n",
                 "1: master: a remote master over TLS needs master_fingerprint = sha256:HEX");
    expect_error("master = ci:9989\npassword = pw\nmaster_fingerprint = sha256:abc\n",
                 "3: master_fingerprint: invalid fingerprint 'sha256:abc'");
    expect_error("master = ci:9989\npassword = pw\nmaster_fingerprint = md5:" + hex + "\n",
                 "3: master_fingerprint: invalid fingerprint");
    expect_error("master = ci:9989\npassword = pw\nmaster_fingerprint = sha256:" + hex + "\ntls_ca_file = " + ca + "\n",
                 "4: tls_ca_file: conflicts with master_fingerprint: set one of them");
    expect_error("tls_ca_file = /nonexistent/ca.pem\n", "1: tls_ca_file: cannot read /nonexistent/ca.pem");
    expect_error("tls_certificate = " + ca + "\n", "1: tls_certificate: set both tls_certificate and tls_key");
    expect_error("tls = maybe\n", "1: tls: invalid value 'maybe': expected yes or no");
}

TEST_F(WorkerConfigTest, SeveralMasters) {
    auto c = load_ok("master = m1.example.org:9989, [::1]:9990,10.0.0.3:9989\npassword = pw\ntls = no\n");
    EXPECT_EQ(c.masters, (std::vector<std::string>{"m1.example.org:9989", "[::1]:9990", "10.0.0.3:9989"}));
    EXPECT_FALSE(c.local());
    c = load_ok("[worker]\nmaster = a:1 ,  b:2\npassword = pw\ntls = no\n");
    EXPECT_EQ(c.masters, (std::vector<std::string>{"a:1", "b:2"}));

    expect_error("master = a:1, bus\npassword = pw\ntls = no\n",
                 "1: master: bus stands alone: a local worker belongs to the master of its own host");
    expect_error("[worker]\nmaster = bus, bus\n", "2: [worker] master: bus stands alone");
    expect_error("master = a:1, b:0\npassword = pw\ntls = no\n",
                 "1: master: invalid master 'b:0' (entry 2): expected HOST:PORT with a port from 1 to 65535");
    expect_error("master = a:1, [::1]:99999\npassword = pw\ntls = no\n",
                 "1: master: invalid master '[::1]:99999' (entry 2)");
    expect_error("master = a:1,,b:2\npassword = pw\ntls = no\n", "1: master: empty entry 2 in 'a:1,,b:2'");
    expect_error("master = a:1, b:2,\npassword = pw\ntls = no\n", "1: master: empty entry 3");
    expect_error("master = a:1, b:2, a:1\npassword = pw\ntls = no\n", "1: master: 'a:1' is listed twice");
    expect_error("master = a:1 b:2\npassword = pw\ntls = no\n",
                 "1: master: invalid value 'a:1 b:2': expected bus or HOST:PORT with a port from 1 to 65535 (an "
                 "IPv6 address as [::1]:9989); separate several with commas");
    expect_error("master = a:1, b:2\ntls = no\n",
                 "1: master: a remote master needs password, password_file or password_credential");
    expect_error("master = a:1, b:2\npassword = pw\n",
                 "1: master: a remote master over TLS needs master_fingerprint = sha256:HEX");
}

TEST_F(WorkerConfigTest, SeveralFingerprints) {
    const std::string a(64, 'a');
    const std::string b(64, 'b');
    auto c = load_ok("master = m1:9989, m2:9989\npassword = pw\nmaster_fingerprint = sha256:" + a + ", SHA256:" +
                     std::string(64, 'B') + "\n");
    EXPECT_EQ(c.master_fingerprints, (std::vector<std::string>{"sha256:" + a, "sha256:" + b}));
    // One master may present either of two certificates (a rollover).
    c = load_ok("master = m1:9989\npassword = pw\nmaster_fingerprint = sha256:" + a + ",sha256:" + b + "\n");
    EXPECT_EQ(c.master_fingerprints.size(), 2u);

    expect_error("master = m1:9989\npassword = pw\nmaster_fingerprint = sha256:" + a + ", sha256:abc\n",
                 "3: master_fingerprint: invalid fingerprint 'sha256:abc' (entry 2): expected sha256: and 64 hex "
                 "digits");
    expect_error("master = m1:9989\npassword = pw\nmaster_fingerprint = sha256:" + a + ",\n",
                 "3: master_fingerprint: empty entry 2");
    expect_error("master = m1:9989\npassword = pw\nmaster_fingerprint = sha256:" + a + ", SHA256:" +
                     std::string(64, 'A') + "\n",
                 "3: master_fingerprint: 'SHA256:" + std::string(64, 'A') + "' is listed twice");
    expect_error("master = m1:9989\npassword = pw\nmaster_fingerprint = sha256:" + a + " sha256:" + b + "\n",
                 "3: master_fingerprint: invalid fingerprint 'sha256:" + a + " sha256:" + b +
                     "': expected sha256: and 64 hex digits, as buildyardctl status shows on the master; separate "
                     "several with commas");
}

TEST_F(WorkerConfigTest, Errors) {
    expect_error("master = 127.0.0.1:9989\n",
                 "1: master: a remote master needs password, password_file or password_credential");
    expect_error("[worker]\nmaster = 127.0.0.1:9989\n",
                 "2: [worker] master: a remote master needs password, password_file or password_credential");
    expect_error("master = nowhere\n", "1: master: invalid value 'nowhere': expected bus or HOST:PORT");
    expect_error("master = host:0\npassword = x\n", "1: master: invalid value 'host:0'");
    expect_error("password_file = /x\npassword = y\n",
                 "2: password: conflicts with password_file (line 1): set only one of password, password_file and "
                 "password_credential");
    expect_error("basedir = relative/dir\n", "1: basedir: 'relative/dir' is not an absolute path");
    expect_error("kill_timeout = 0\n", "1: kill_timeout: invalid value '0': expected a positive number of seconds");
    expect_error("kill_timeout = soon\n", "1: kill_timeout: invalid value 'soon'");
    expect_error("reconnect_max = 0\n",
                 "1: reconnect_max: invalid value '0': expected a number of seconds from 1 to 86400");
    expect_error("reconnect_max = 86401\n", "1: reconnect_max: invalid value '86401'");
    expect_error("reconnect_max = -5\n", "1: reconnect_max: invalid value '-5'");
    expect_error("colour = blue\n", "1: colour: unknown key");
    expect_error("[worker]\ncolour = blue\n", "2: [worker] colour: unknown key");
    expect_error("[master]\n", "1: [master]: unknown section");
    expect_error("[worker w1]\n", "1: [worker w1]: unknown section");
    expect_error("admin = a\nadmin = b\n", "2: admin: set twice (first at line 1)");
    expect_error("admin = a\n[worker]\nadmin = b\n", "3: [worker] admin: set twice (first at line 1)");
    expect_error("[worker]\n[worker]\n", "2: [worker]: duplicate [worker] section (first declared at line 1)");
    expect_error("admin\n", "1: expected KEY = VALUE, found 'admin'");
    expect_error("admin = a\n  continued\n", "2: admin: indented line continues the previous value");
}

TEST_F(WorkerConfigTest, CollectsAllErrors) {
    auto r = load_text("kill_timeout = 0\nbasedir = x\ncolour = blue\n");
    EXPECT_FALSE(r.config);
    EXPECT_EQ(r.errors.size(), 3u) << all(r.errors);
}

}  // namespace
