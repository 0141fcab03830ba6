// The master's config loader, files and syntax: real files in a fresh
// temporary directory per test, every error path asserted with its
// FILE:LINE and message.
#include "config_test_support.hpp"

namespace {

TEST(ConfigErrorTest, StrFormats) {
    EXPECT_EQ((Error{"f.ini", 3, "worker a", "max_builds", "bad"}).str(), "f.ini:3: [worker a] max_builds: bad");
    EXPECT_EQ((Error{"f.ini", 3, "worker a", "", "bad"}).str(), "f.ini:3: [worker a]: bad");
    EXPECT_EQ((Error{"f.ini", 3, "", "key", "bad"}).str(), "f.ini:3: key: bad");
    EXPECT_EQ((Error{"f.ini", 3, "", "", "bad"}).str(), "f.ini:3: bad");
    EXPECT_EQ((Error{"f.ini", 0, "mail", "port", "bad"}).str(), "f.ini: bad");
}

TEST(EscapeTest, MatchesSystemdEscape) {
    // Expectations taken from /usr/bin/systemd-escape by hand.
    EXPECT_EQ(escape_unit_instance("vm1"), "vm1");
    EXPECT_EQ(escape_unit_instance("bot-linux"), "bot\\x2dlinux");
    EXPECT_EQ(escape_unit_instance(".hidden"), "\\x2ehidden");
    EXPECT_EQ(escape_unit_instance("a..b"), "a..b");
    EXPECT_EQ(escape_unit_instance("a/b"), "a-b");
    EXPECT_EQ(escape_unit_instance("/abs"), "-abs");
    EXPECT_EQ(escape_unit_instance("a b"), "a\\x20b");
    EXPECT_EQ(escape_unit_instance("x\\y"), "x\\x5cy");
    EXPECT_EQ(escape_unit_instance("a.b_c:d"), "a.b_c:d");
    EXPECT_EQ(escape_unit_instance("\xc3\xbc"), "\\xc3\\xbc");
    EXPECT_EQ(escape_unit_instance("A~"), "A\\x7e");
}

TEST(NameTest, ValidWorkerName) {
    EXPECT_TRUE(valid_worker_name("a"));
    EXPECT_TRUE(valid_worker_name("bot-linux_2.x"));
    EXPECT_TRUE(valid_worker_name(std::string(64, 'a')));
    EXPECT_FALSE(valid_worker_name(std::string(65, 'a')));
    EXPECT_FALSE(valid_worker_name(""));
    EXPECT_FALSE(valid_worker_name(".a"));
    EXPECT_FALSE(valid_worker_name("-a"));
    EXPECT_FALSE(valid_worker_name("a b"));
    EXPECT_FALSE(valid_worker_name("a/b"));
    EXPECT_FALSE(valid_worker_name("\xc3\xbc"));
}

TEST(HostPortTest, Parse) {
    auto v4 = parse_host_port("0.0.0.0:9989");
    ASSERT_TRUE(v4);
    EXPECT_EQ(v4->host, "0.0.0.0");
    EXPECT_EQ(v4->port, 9989);
    auto v6 = parse_host_port("[::1]:1");
    ASSERT_TRUE(v6);
    EXPECT_EQ(v6->host, "::1");
    EXPECT_EQ(v6->port, 1);
    auto name = parse_host_port("ci.example.org:65535");
    ASSERT_TRUE(name);
    EXPECT_EQ(name->host, "ci.example.org");
    for (const char* bad : {"", "host", "host:", ":9989", "host:0", "host:65536", "host:-1", "host:99x", "::1:9989",
                            "[::1]9989", "[nonsense]:1", "999.1.1.1:1", "bad_host:1", "-a.org:1", "a b:1"}) {
        EXPECT_FALSE(parse_host_port(bad)) << bad;
    }
}

TEST_F(ConfigTest, MainFileMissing) {
    auto r = load(dir.path("nope.ini"), env);
    EXPECT_FALSE(r.config);
    ASSERT_EQ(r.errors.size(), 1u);
    EXPECT_EQ(r.errors[0].str(), dir.path("nope.ini") + ": No such file or directory");
}

TEST_F(ConfigTest, MainFileIsDirectory) {
    fs::create_directories(dir.path("master.ini"));
    auto r = load(dir.path("master.ini"), env);
    EXPECT_FALSE(r.config);
    EXPECT_TRUE(has_error(r.errors, dir.path("master.ini") + ": Is a directory"));
}

TEST_F(ConfigTest, Defaults) {
    const auto c = load_ok(local_worker + "[builder b]\nworkers = w\nstep.1 = true\n");
    EXPECT_EQ(c.master.name, "testhost");
    EXPECT_EQ(c.master.listen, "0.0.0.0:9989");
    EXPECT_TRUE(c.master.trusted_uids.empty());
    EXPECT_FALSE(c.mail.configured);
    EXPECT_EQ(c.mail.fromaddr, "buildyard@testhost");
    EXPECT_EQ(c.mail.relayhost, "localhost");
    EXPECT_EQ(c.mail.port, 25u);
    EXPECT_EQ(c.mail.starttls, StartTls::if_available);
    EXPECT_FALSE(c.mail.builders_set);
    ASSERT_EQ(c.workers.count("w"), 1u);
    const Worker& w = c.workers.at("w");
    EXPECT_EQ(w.type, WorkerType::local);
    EXPECT_EQ(w.password, "");
    EXPECT_EQ(w.max_builds, 0u);
    EXPECT_EQ(w.keepalive_interval, 3600u);
    EXPECT_EQ(w.keepalive_timeout, 30u);
    EXPECT_EQ(w.missing_timeout, 3600u);
    EXPECT_TRUE(w.notify_on_missing.empty());
    EXPECT_EQ(w.origin.file, main);
    EXPECT_EQ(w.origin.line, 1);
    const Builder& b = c.builders.at("b");
    EXPECT_EQ(b.workers, std::vector<std::string>{"w"});
    EXPECT_EQ(b.steps, std::vector<std::string>{"true"});
    EXPECT_EQ(b.origin.line, 3);
    EXPECT_EQ(c.files, std::vector<std::string>{main});
}

TEST_F(ConfigTest, EmptyFileIsValid) {
    const auto c = load_ok("");
    EXPECT_TRUE(c.workers.empty());
    EXPECT_EQ(c.master.name, "testhost");
}

// A whole master.ini of every section kind (no latent worker), plus the
// builder "nightly" that its [mail] section names.
TEST_F(ConfigTest, ArchitectureExample) {
    const auto c = load_ok(R"([master]
name = ci-main                 ; owner tag on latent instances
listen = 0.0.0.0:9989          ; empty: no TCP listener
trusted_uids = 0               ; besides the master's own uid; see below

[mail]                          ; absent: localhost:25, from buildyard@<hostname>
fromaddr = buildyard@example.org
relayhost = smtp.example.org
port = 25
starttls = if-available        ; no | if-available | required
builders = nightly             ; whose results are mailed; empty: worker-missing mail only
recipients = team@example.org

[worker bot-linux]
type = standard                ; standard (default) | local | latent
password = linuxpassword       ; or password_file = PATH, or password_credential = NAME
max_builds = 2                 ; 0 or absent: no limit
keepalive_interval = 3600      ; seconds, or none
notify_on_missing = bob@example.com, alice@example.org
missing_timeout = 300          ; seconds; 0 disables
property.os = linux            ; any number of properties

[builder hello]
workers = bot-linux
step.1 = echo hello from $BUILDYARD_WORKER
step.2 = make -j2

[builder nightly]
workers = bot-linux
step.1 = make distcheck
)");
    EXPECT_EQ(c.master.name, "ci-main");
    EXPECT_EQ(c.master.listen, "0.0.0.0:9989");
    EXPECT_EQ(c.master.trusted_uids, std::vector<uid_t>{0});
    EXPECT_TRUE(c.mail.configured);
    EXPECT_EQ(c.mail.fromaddr, "buildyard@example.org");
    EXPECT_EQ(c.mail.relayhost, "smtp.example.org");
    EXPECT_EQ(c.mail.port, 25u);
    EXPECT_EQ(c.mail.starttls, StartTls::if_available);
    EXPECT_TRUE(c.mail.builders_set);
    EXPECT_EQ(c.mail.builders, std::vector<std::string>{"nightly"});
    EXPECT_EQ(c.mail.recipients, std::vector<std::string>{"team@example.org"});
    const Worker& w = c.workers.at("bot-linux");
    EXPECT_EQ(w.type, WorkerType::standard);
    EXPECT_EQ(w.password, "linuxpassword");
    EXPECT_EQ(w.max_builds, 2u);
    EXPECT_EQ(w.keepalive_interval, 3600u);
    EXPECT_EQ(w.notify_on_missing, (std::vector<std::string>{"bob@example.com", "alice@example.org"}));
    EXPECT_EQ(w.missing_timeout, 300u);
    EXPECT_EQ(w.properties, (std::map<std::string, std::string>{{"os", "linux"}}));
    EXPECT_EQ(w.origin.line, 14);
    const Builder& b = c.builders.at("hello");
    EXPECT_EQ(b.steps, (std::vector<std::string>{"echo hello from $BUILDYARD_WORKER", "make -j2"}));
    EXPECT_EQ(b.workers, std::vector<std::string>{"bot-linux"});
}

// inih strips "; comment" only after whitespace, never "#" after a value.
TEST_F(ConfigTest, InlineCommentRules) {
    const auto c = load_ok("[worker w]\r\n"
                           "type = local\r\n"
                           "property.a = x;y\r\n"
                           "property.b = x # y\r\n"
                           "property.c = x ;y\r\n"
                           "  # an indented comment line\n"
                           "; a comment\n");
    const auto& p = c.workers.at("w").properties;
    EXPECT_EQ(p.at("a"), "x;y");
    EXPECT_EQ(p.at("b"), "x # y");
    EXPECT_EQ(p.at("c"), "x");
}

TEST_F(ConfigTest, LineLength) {
    const std::string prefix = "property.p = ";
    const std::string fits(198 - prefix.size(), 'x');
    const auto c = load_ok(local_worker + prefix + fits + "\n");
    EXPECT_EQ(c.workers.at("w").properties.at("p"), fits);

    // One character more is an error, and the lines after it still count.
    auto r = load_text(local_worker + prefix + fits + "y\n" + "bogus = 1\n");
    EXPECT_FALSE(r.config);
    EXPECT_TRUE(has_error(r.errors, main + ":3: [worker w]: line is longer than 198 characters"));
    EXPECT_TRUE(has_error(r.errors, main + ":4: [worker w] bogus: unknown key"));
    EXPECT_EQ(r.errors.size(), 2u) << joined(r.errors);   // the rest of line 3 is not a line of its own
}

TEST_F(ConfigTest, LongHeaderDropsItsSettings) {
    auto r = load_text(local_worker + "[worker " + std::string(200, 'n') + "]\nmax_builds = x\n");
    EXPECT_FALSE(r.config);
    ASSERT_EQ(r.errors.size(), 1u) << joined(r.errors);
    EXPECT_EQ(r.errors[0].str(), main + ":3: line is longer than 198 characters");
}

TEST_F(ConfigTest, ByteOrderMarkAndNoFinalNewline) {
    const auto c = load_ok("\xEF\xBB\xBF[worker w]\ntype = local\nmax_builds = 3");
    EXPECT_EQ(c.workers.at("w").max_builds, 3u);
}

TEST_F(ConfigTest, NulByte) {
    expect_error(local_worker + std::string("property.a = x\0y\n", 17), "3: [worker w]: line contains a NUL byte");
}

TEST_F(ConfigTest, ContinuationLineIsAnError) {
    expect_error(local_worker + "  max_builds = 2\n",
                 "3: [worker w] type: indented line continues the previous value; continuation lines are not supported");
}

TEST_F(ConfigTest, IndentedFirstKeyIsFine) {
    const auto c = load_ok("[worker w]\n  type = local\n");
    EXPECT_EQ(c.workers.at("w").type, WorkerType::local);
}

TEST_F(ConfigTest, SyntaxErrors) {
    auto r = load_text("name = x\n"           // 1
                       "[master\n"            // 2
                       "listen = 1\n"         // 3: dropped with the bad header
                       "[master] junk\n"      // 4
                       "just words\n"         // 5
                       "= nokey\n"            // 6
                       "[]\n");               // 7
    EXPECT_FALSE(r.config);
    EXPECT_TRUE(has_error(r.errors, main + ":1: name: not in any section"));
    EXPECT_TRUE(has_error(r.errors, main + ":2: section header is missing ']'"));
    EXPECT_TRUE(has_error(r.errors, main + ":4: [master]: unexpected text after the section header: 'junk'"));
    EXPECT_TRUE(has_error(r.errors, main + ":5: [master]: expected KEY = VALUE, found 'just words'"));
    EXPECT_TRUE(has_error(r.errors, main + ":6: [master]: missing key name before '='"));
    EXPECT_TRUE(has_error(r.errors, main + ":7: unknown section"));
    EXPECT_FALSE(has_error(r.errors, ":3:"));
    EXPECT_EQ(r.errors.size(), 6u) << joined(r.errors);
}

TEST_F(ConfigTest, UnknownSectionsAndKeys) {
    expect_error("[workers w]\n", "1: [workers w]: unknown section");
    expect_error("[master x]\n", "1: [master x]: unknown section");
    expect_error("[master]\nfoo = 1\n", "2: [master] foo: unknown key");
    expect_error("[mail]\nfoo = 1\n", "2: [mail] foo: unknown key");
    expect_error("[mail]\npassword = x\n", "2: [mail] password: unknown key (use password_file or password_credential)");
    expect_error(local_worker + "foo = 1\n", "3: [worker w] foo: unknown key");
    expect_error(local_worker + "[builder b]\nworkers = w\nstep.1 = x\nsteps = y\n", "6: [builder b] steps: unknown key");
}

TEST_F(ConfigTest, DuplicatesInOneFile) {
    auto r = load_text(local_worker +                     // 1-2
                       "[worker w]\n"                     // 3
                       "type = local\n"                   // 4
                       "[builder b]\nworkers = w\n"       // 5-6
                       "step.1 = a\nstep.1 = b\n"         // 7-8
                       "[builder b]\n"                    // 9
                       "[master]\n[master]\n"             // 10-11
                       "[mail]\n[mail]\n");               // 12-13
    EXPECT_FALSE(r.config);
    EXPECT_TRUE(has_error(r.errors, main + ":3: [worker w]: duplicate worker name 'w' (first declared at line 1)"));
    EXPECT_TRUE(has_error(r.errors, main + ":4: [worker w] type: set twice (first at line 2)"));
    EXPECT_TRUE(has_error(r.errors, main + ":8: [builder b] step.1: set twice (first at line 7)"));
    EXPECT_TRUE(has_error(r.errors, main + ":9: [builder b]: duplicate builder name 'b' (first declared at line 5)"));
    EXPECT_TRUE(has_error(r.errors, main + ":11: [master]: duplicate [master] section (first declared at line 10)"));
    EXPECT_TRUE(has_error(r.errors, main + ":13: [mail]: duplicate [mail] section (first declared at line 12)"));
    EXPECT_EQ(r.errors.size(), 6u) << joined(r.errors);
}

TEST_F(ConfigTest, DropInsOverrideAndExtend) {
    dir.write("master.d/20-late.ini", "[worker w]\nmax_builds = 5\n");
    dir.write("master.d/10-early.ini", "[worker w]\nmax_builds = 3\nkeepalive_timeout = 7\n[master]\nname = early\n");
    dir.write("master.d/notes.txt", "this is not ini\n");
    dir.write("master.d/.hidden.ini", "garbage\n");
    fs::create_directories(dir.path("master.d/dir.ini"));
    fs::create_symlink(dir.path("nowhere"), dir.path("master.d/dangling.ini"));
    fs::create_symlink(dir.path("linked.conf"), dir.path("master.d/30-linked.ini"));
    dir.write("linked.conf", "[worker w]\nmissing_timeout = 12\n");
    const auto c = load_ok("[master]\nname = main\n[worker w]\npassword = pw\nmax_builds = 1\n");
    const Worker& w = c.workers.at("w");
    EXPECT_EQ(w.max_builds, 5u);
    EXPECT_EQ(w.keepalive_timeout, 7u);
    EXPECT_EQ(w.password, "pw");
    EXPECT_EQ(w.origin.file, main);
    EXPECT_EQ(w.origin.line, 3);
    EXPECT_EQ(w.missing_timeout, 12u);
    EXPECT_EQ(c.master.name, "early");
    EXPECT_EQ(c.files, (std::vector<std::string>{main, dir.path("master.d/10-early.ini"),
                                                 dir.path("master.d/20-late.ini"), dir.path("master.d/30-linked.ini")}));
}

TEST_F(ConfigTest, DropInFixesAndBreaksValues) {
    // A bad value overridden later is fine; a bad value in a drop-in is
    // reported there.
    const auto late = dir.write("master.d/50.ini", "[worker w]\nmax_builds = 2x\nmissing_timeout = 9\n");
    auto r = load_text(local_worker + "max_builds = 1\nmissing_timeout = never\n");
    EXPECT_FALSE(r.config);
    EXPECT_TRUE(has_error(r.errors, late + ":2: [worker w] max_builds: invalid value '2x'"));
    EXPECT_EQ(r.errors.size(), 1u) << joined(r.errors);
}

TEST_F(ConfigTest, SameSectionInTwoFilesIsNotADuplicate) {
    // master.ini alone would be wrong (a standard worker without password);
    // the drop-in makes it local.
    dir.write("master.d/a.ini", "[worker w]\ntype = local\n[mail]\nport = 26\n");
    const auto c = load_ok("[worker w]\ntype = standard\n[mail]\n");
    EXPECT_EQ(c.workers.at("w").type, WorkerType::local);
    EXPECT_EQ(c.mail.port, 26u);
    EXPECT_TRUE(c.mail.configured);
}

TEST_F(ConfigTest, ErrorsAreCollectedInFileOrder) {
    const auto d = dir.write("master.d/a.ini", "[worker x]\ntype = local\nmax_builds = -1\n");
    auto r = load_text("[worker w]\ntype = bogus\n[builder b]\nworkers = nobody\n");
    EXPECT_FALSE(r.config);
    // A bad type is reported as itself, not as "standard workers need a password".
    ASSERT_EQ(r.errors.size(), 4u) << joined(r.errors);
    EXPECT_EQ(r.errors[0].str(), main + ":2: [worker w] type: invalid type 'bogus': expected standard, local or latent");
    EXPECT_EQ(r.errors[1].str(), main + ":3: [builder b]: builder has no steps (add step.1 = COMMAND)");
    EXPECT_EQ(r.errors[2].str(), main + ":4: [builder b] workers: unknown worker 'nobody'");
    EXPECT_EQ(r.errors[3].str(), d + ":3: [worker x] max_builds: invalid value '-1': expected a number from 0 to "
                                     "100000 (0: no limit)");
}

TEST_F(ConfigTest, DropInDirectoryNotADirectory) {
    dir.write("master.d", "a file\n");
    auto r = load_text("");
    EXPECT_TRUE(has_error(r.errors, dir.path("master.d") + ": Not a directory"));
}


TEST(EnvironmentTest, Current) {
    ASSERT_EQ(setenv("CREDENTIALS_DIRECTORY", "/run/credentials/x", 1), 0);
    ASSERT_EQ(setenv("STATE_DIRECTORY", "/var/lib/a:/var/lib/b", 1), 0);
    const auto env = current_environment();
    EXPECT_FALSE(env.hostname.empty());
    EXPECT_EQ(env.credentials_directory, "/run/credentials/x");
    EXPECT_EQ(env.state_directory, "/var/lib/a");
    unsetenv("CREDENTIALS_DIRECTORY");
    unsetenv("STATE_DIRECTORY");
    EXPECT_EQ(current_environment().state_directory, "");
}

}  // namespace

// An empty or half-written master.ini passes load() (nothing in it is
// wrong), but the master refuses it: taken as "no workers", a reload would
// stop every worker.
TEST_F(ConfigTest, TheMasterRefusesAConfigWithoutMasterOrWorkers) {
    auto for_master = [&](const std::string& text) {
        main = dir.write("master.ini", text);
        return load_for_master(main, env);
    };
    for (const std::string text : {"", "; just a comment\n", "[worker w]\ntype = local\n"}) {
        auto r = for_master(text);
        EXPECT_FALSE(r.config) << text;
        EXPECT_TRUE(has_error(r.errors, main + ": no [master] section")) << text;
        EXPECT_TRUE(load(main, env).config) << "load() itself takes it: " << text;
    }
    for (const std::string text : {"", "[master]\n", "[master]\nname = m\n"}) {
        auto r = for_master(text);
        EXPECT_FALSE(r.config) << text;
        EXPECT_TRUE(has_error(r.errors, main + ": no [worker NAME] section")) << text;
    }
    auto ok = for_master("[master]\n[worker w]\ntype = local\n");
    EXPECT_TRUE(ok.config) << joined(ok.errors);
    // A worker or [master] from a drop-in counts.
    dir.write("master.d/50-w.ini", "[master]\nname = from-dropin\n[worker w]\ntype = local\n");
    auto split = for_master("");
    ASSERT_TRUE(split.config) << joined(split.errors);
    EXPECT_EQ(split.config->master.name, "from-dropin");
}
