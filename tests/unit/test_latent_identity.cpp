// buildyard-workerd --latent: where a latent worker's name, master and token
// come from (credentials, kernel command line, environment) and how the
// kernel command line is split.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "worker/latent_identity.hpp"

using by::worker::KernelParameter;
using by::worker::LatentIdentity;
using by::worker::LatentSources;
using by::worker::parse_user_data;
using by::worker::resolve_latent_identity;
using by::worker::split_kernel_cmdline;

namespace {

const std::string token_a(64, 'a');
const std::string token_b(64, 'b');
const std::string token_c(64, 'c');

KernelParameter kv(std::string name, std::string value) {
    return {std::move(name), std::move(value)};
}
KernelParameter bare(std::string name) {
    return {std::move(name), std::nullopt};
}

LatentSources credentials(std::string worker, std::string master, std::string token) {
    LatentSources s;
    s.credentials_directory = "/run/credentials/buildyard-worker-latent.service";
    s.credentials = {{"buildyard.worker", worker}, {"buildyard.master", master}, {"buildyard.token", token}};
    return s;
}

std::string cmdline(const std::string& worker, const std::string& master, const std::string& token) {
    return "console=ttyS0 quiet buildyard.worker=" + worker + " buildyard.master=" + master +
           " buildyard.token=" + token + "\n";
}

void set_environment(LatentSources& s, std::string worker, std::string master, std::string token) {
    s.environment = {{"BUILDYARD_WORKER_NAME", worker}, {"BUILDYARD_MASTER", master}, {"BUILDYARD_TOKEN", token}};
}

// Whether s resolves to this worker name, master and token (and, if given,
// exactly this source).
::testing::AssertionResult resolves_to(const LatentSources& s, const std::string& name, const std::string& master,
                                       const std::string& token, const std::string& source = "") {
    const auto r = resolve_latent_identity(s);
    if (!r.identity) {
        return ::testing::AssertionFailure() << "no identity: " << r.error;
    }
    const auto& i = *r.identity;
    if (i.name != name || i.master != master || i.token != token || (!source.empty() && i.source != source)) {
        return ::testing::AssertionFailure() << "resolved to name '" << i.name << "', master '" << i.master
                                             << "', token '" << i.token << "' from " << i.source;
    }
    return ::testing::AssertionSuccess();
}

void expect_error_contains(const LatentSources& s, const std::vector<std::string>& parts) {
    auto r = resolve_latent_identity(s);
    EXPECT_FALSE(r.identity.has_value()) << "resolved to " << r.identity->name << " from " << r.identity->source;
    for (const auto& p : parts) {
        EXPECT_NE(r.error.find(p), std::string::npos) << "error lacks '" << p << "':\n" << r.error;
    }
}

}  // namespace

TEST(KernelCmdline, SplitsOnBlanksAndTheFirstEquals) {
    EXPECT_EQ(split_kernel_cmdline("  a=1\tb  c=x=y \n"),
              (std::vector<KernelParameter>{kv("a", "1"), bare("b"), kv("c", "x=y")}));
    EXPECT_TRUE(split_kernel_cmdline("").empty());
    EXPECT_TRUE(split_kernel_cmdline(" \n").empty());
    EXPECT_EQ(split_kernel_cmdline("key="), (std::vector<KernelParameter>{kv("key", "")}));
}

TEST(KernelCmdline, QuotedValueKeepsBlanksAndLosesItsQuotes) {
    EXPECT_EQ(split_kernel_cmdline("a=\"x y\" b=2"), (std::vector<KernelParameter>{kv("a", "x y"), kv("b", "2")}));
    EXPECT_EQ(split_kernel_cmdline("a=\"\""), (std::vector<KernelParameter>{kv("a", "")}));
}

TEST(KernelCmdline, QuotedWholeWord) {
    EXPECT_EQ(split_kernel_cmdline("\"a=x y\" b"), (std::vector<KernelParameter>{kv("a", "x y"), bare("b")}));
    EXPECT_EQ(split_kernel_cmdline("\"bare word\""), (std::vector<KernelParameter>{bare("bare word")}));
}

TEST(KernelCmdline, QuotesInsideAValueStayAsTheKernelLeavesThem) {
    // Only a value that starts with a quote loses its quotes (lib/cmdline.c).
    EXPECT_EQ(split_kernel_cmdline("a=b\"c d\" e"), (std::vector<KernelParameter>{kv("a", "b\"c d\""), bare("e")}));
}

TEST(KernelCmdline, UnterminatedQuoteRunsToTheEnd) {
    EXPECT_EQ(split_kernel_cmdline("a=\"x y"), (std::vector<KernelParameter>{kv("a", "x y")}));
}

TEST(KernelCmdline, InitArgumentsAfterDoubleDashAreKept) {
    EXPECT_EQ(split_kernel_cmdline("ro -- single x=1"),
              (std::vector<KernelParameter>{bare("ro"), bare("--"), bare("single"), kv("x", "1")}));
}

TEST(LatentIdentity, FromCredentialsTrimmingTheNewline) {
    auto s = credentials("vm1\n", "10.0.2.2:9989\n", token_a + "\n");
    EXPECT_TRUE(resolves_to(s, "vm1", "10.0.2.2:9989", token_a));
    EXPECT_NE(resolve_latent_identity(s).identity.value_or(LatentIdentity{}).source.find(
                  "/run/credentials/buildyard-worker-latent.service"),
              std::string::npos);
}

TEST(LatentIdentity, FromTheKernelCommandLine) {
    LatentSources s;
    s.cmdline = cmdline("vm2", "host.example.org:1234", token_b);
    EXPECT_TRUE(resolves_to(s, "vm2", "host.example.org:1234", token_b, "the kernel command line"));
}

TEST(LatentIdentity, FromTheKernelCommandLineQuotedAndAfterDoubleDash) {
    LatentSources s;
    s.cmdline = "console=ttyS0 \"buildyard.worker=vm3\" buildyard.master=\"[::1]:9989\" -- buildyard.token=" +
                token_c;
    EXPECT_TRUE(resolves_to(s, "vm3", "[::1]:9989", token_c));
}

TEST(LatentIdentity, TheLastOfARepeatedParameterWins) {
    LatentSources s;
    s.cmdline = cmdline("old", "10.0.2.2:1", token_a) + " buildyard.worker=new buildyard.token=" + token_b;
    EXPECT_TRUE(resolves_to(s, "new", "10.0.2.2:1", token_b));
}

TEST(LatentIdentity, FromTheEnvironment) {
    LatentSources s;
    s.cmdline = "BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro\n";  // a host's command line, as in a container
    set_environment(s, "box1", "127.0.0.1:9989", token_c);
    EXPECT_TRUE(resolves_to(s, "box1", "127.0.0.1:9989", token_c, "the environment"));
}

TEST(LatentIdentity, CredentialsWinOverCommandLineAndEnvironment) {
    auto s = credentials("cred", "10.0.0.1:1", token_a);
    s.cmdline = cmdline("line", "10.0.0.2:2", token_b);
    set_environment(s, "envw", "10.0.0.3:3", token_c);
    EXPECT_TRUE(resolves_to(s, "cred", "10.0.0.1:1", token_a));
}

// In a container /proc/cmdline is the host's: a host booted with
// buildyard.* parameters must not lend its identity to the container,
// whose backend passes the real one in the environment.
TEST(LatentIdentity, EnvironmentWinsOverCommandLine) {
    LatentSources s;
    s.cmdline = cmdline("line", "10.0.0.2:2", token_b);
    set_environment(s, "envw", "10.0.0.3:3", token_c);
    EXPECT_TRUE(resolves_to(s, "envw", "10.0.0.3:3", token_c));
}

TEST(LatentIdentity, EmptyCredentialsDirectoryFallsThrough) {
    LatentSources s;
    s.credentials_directory = "/run/credentials/x.service";  // set, but no buildyard.* in it
    s.cmdline = cmdline("line", "10.0.0.2:2", token_b);
    EXPECT_TRUE(resolves_to(s, "line", "10.0.0.2:2", token_b));
}

TEST(LatentIdentity, PartialCredentialsAreAnErrorNotToppedUpFromLaterSources) {
    auto s = credentials("vm1", "10.0.2.2:9989", token_a);
    s.credentials.erase("buildyard.token");
    s.cmdline = cmdline("line", "10.0.0.2:2", token_b);
    set_environment(s, "envw", "10.0.0.3:3", token_c);
    expect_error_contains(s, {"credentials in /run/credentials/buildyard-worker-latent.service",
                              "buildyard.worker and buildyard.master are set but buildyard.token is missing"});
}

TEST(LatentIdentity, PartialCommandLineNamesWhatIsMissing) {
    LatentSources s;
    s.cmdline = "console=ttyS0 buildyard.master=10.0.2.2:9989";
    expect_error_contains(s, {"the kernel command line: buildyard.master= is set but buildyard.worker= and "
                              "buildyard.token= are missing"});
}

TEST(LatentIdentity, EmptyValuesCountAsMissing) {
    LatentSources s;
    s.cmdline = "buildyard.worker=vm1 buildyard.master=10.0.2.2:9989 buildyard.token= buildyard.token";
    expect_error_contains(s, {"but buildyard.token= is missing"});

    LatentSources e;
    set_environment(e, "vm1", "", token_a);
    expect_error_contains(e, {"the environment: BUILDYARD_WORKER_NAME and BUILDYARD_TOKEN are set but "
                              "BUILDYARD_MASTER is missing"});

    auto c = credentials("vm1", "10.0.2.2:9989", "\n");
    expect_error_contains(c, {"but buildyard.token is missing"});
}

TEST(LatentIdentity, AllEmptyEnvironmentIsNoSource) {
    LatentSources s;
    set_environment(s, "", "", "");
    expect_error_contains(s, {"no latent worker identity", "CREDENTIALS_DIRECTORY is not set",
                              "buildyard.worker=, buildyard.master= and buildyard.token= on the kernel command line",
                              "BUILDYARD_WORKER_NAME, BUILDYARD_MASTER and BUILDYARD_TOKEN in the environment"});
}

TEST(LatentIdentity, NothingAnywhereSaysWhereItLooked) {
    LatentSources s;
    s.credentials_directory = "/run/credentials/y.service";
    expect_error_contains(s, {"none in /run/credentials/y.service", "cannot read /proc/cmdline"});
}

TEST(LatentIdentity, InvalidPiecesAreRefused) {
    LatentSources s;
    s.cmdline = cmdline("-bad", "10.0.2.2:9989", token_a);
    expect_error_contains(s, {"buildyard.worker= '-bad' is not a valid worker name"});
    s.cmdline = cmdline("vm1", "10.0.2.2", token_a);
    expect_error_contains(s, {"buildyard.master= '10.0.2.2' is not HOST:PORT"});
    s.cmdline = cmdline("vm1", "10.0.2.2:0", token_a);
    expect_error_contains(s, {"'10.0.2.2:0' is not HOST:PORT"});
    s.cmdline = "buildyard.worker=vm1 buildyard.master=10.0.2.2:9989 \"buildyard.token=a b\"";
    expect_error_contains(s, {"buildyard.token= has blanks"});
}

TEST(LatentIdentity, UnreadableCredentialIsReported) {
    auto s = credentials("vm1", "10.0.2.2:9989", token_a);
    s.credentials_error = "cannot read /run/credentials/x/buildyard.token: Permission denied";
    set_environment(s, "envw", "10.0.0.3:3", token_c);
    expect_error_contains(s, {"cannot read /run/credentials/x/buildyard.token: Permission denied"});
}

TEST(LatentIdentity, FromCloudUserDataLast) {
    LatentSources s;
    s.user_data_source = "the EC2 metadata service at http://169.254.169.254";
    s.user_data = "#!/bin/sh\nbuildyard.worker=e1\r\nbuildyard.master=10.0.0.1:9989\nbuildyard.token=" +
                  std::string(token_a) + "\nother=x\n";
    EXPECT_TRUE(resolves_to(s, "e1", "10.0.0.1:9989", token_a,
                            "the user data from the EC2 metadata service at http://169.254.169.254"));
    // Any earlier source wins.
    set_environment(s, "envw", "10.0.0.3:3", token_c);
    EXPECT_EQ(resolve_latent_identity(s).identity->name, "envw");
}

TEST(LatentIdentity, CloudUserDataProblemsAreNamed) {
    LatentSources s;
    auto r = resolve_latent_identity(s);
    EXPECT_TRUE(r.none);
    s.user_data_source = "the EC2 metadata service at http://x";
    s.user_data_error = "session token PUT: HTTP 403";
    expect_error_contains(s, {"cannot read the user data from the EC2 metadata service at http://x: session token "
                              "PUT: HTTP 403"});
    s.user_data_error.clear();
    s.user_data = "buildyard.worker=e1\n";
    expect_error_contains(s, {"buildyard.worker is set but buildyard.master and buildyard.token are missing"});
    EXPECT_FALSE(resolve_latent_identity(s).none);
    s.user_data = "#cloud-config\n";
    expect_error_contains(s, {"nor buildyard.worker, buildyard.master and buildyard.token lines in the user data"});
    s.user_data.reset();  // launched without user data
    expect_error_contains(s, {"lines in the user data from the EC2 metadata service at http://x"});
}

TEST(LatentIdentity, UserDataLines) {
    auto lines = parse_user_data("buildyard.worker=a\n  buildyard.token = x\nbuildyard.worker=b\nnoise\n");
    EXPECT_EQ(lines.at("buildyard.worker"), "b");
    EXPECT_FALSE(lines.contains("buildyard.token"));  // "buildyard.token " is another name
    EXPECT_EQ(lines.size(), 2u);
}
