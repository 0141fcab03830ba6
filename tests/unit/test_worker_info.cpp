// The worker's Attach info, and the os-release parsing behind its "os".

#include <filesystem>
#include <optional>
#include <string>

#include <climits>
#include <gtest/gtest.h>
#include <unistd.h>

#include "temp_dir.hpp"
#include "version.hpp"
#include "worker/info.hpp"

namespace fs = std::filesystem;
using by::worker::read_pretty_name;

namespace {

class OsReleaseTest : public ::testing::Test {
protected:
    // PRETTY_NAME as read from an os-release file holding `text`.
    std::optional<std::string> pretty_name_of(const std::string& text) {
        return read_pretty_name(tmp_.write("os-release", text));
    }
    TempDir tmp_{"buildyard-info"};
    const fs::path dir_{tmp_.path()};
};

TEST_F(OsReleaseTest, DoubleQuoted) {
    EXPECT_EQ(pretty_name_of("NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n"),
              "Debian GNU/Linux 12 (bookworm)");
}

TEST_F(OsReleaseTest, SingleQuotedKeepsBackslashes) {
    EXPECT_EQ(pretty_name_of("PRETTY_NAME='Fedora Linux 40 \\o/'\n"), "Fedora Linux 40 \\o/");
}

TEST_F(OsReleaseTest, Unquoted) {
    EXPECT_EQ(pretty_name_of("PRETTY_NAME=Alpine\n"), "Alpine");
}

TEST_F(OsReleaseTest, EscapesInDoubleQuotes) {
    EXPECT_EQ(pretty_name_of("PRETTY_NAME=\"My \\\"Distro\\\" costs \\$0 \\\\ \\`x\\`\"\n"),
              "My \"Distro\" costs $0 \\ `x`");
}

TEST_F(OsReleaseTest, CommentsBlankLinesAndSimilarKeysAreSkipped) {
    EXPECT_EQ(pretty_name_of("# PRETTY_NAME=\"commented out\"\n\nPRETTY_NAME_EXTRA=\"no\"\nXPRETTY_NAME=no\n"
                             "  PRETTY_NAME=\"Indented\"  \r\n"),
              "Indented");
}

TEST_F(OsReleaseTest, LaterAssignmentWins) {
    EXPECT_EQ(pretty_name_of("PRETTY_NAME=\"first\"\nPRETTY_NAME=\"second\"\n"), "second");
}

TEST_F(OsReleaseTest, EmptyValue) {
    EXPECT_EQ(pretty_name_of("PRETTY_NAME=\"\"\n"), "");
}

TEST_F(OsReleaseTest, MissingKeyOrFile) {
    EXPECT_EQ(pretty_name_of("NAME=\"Something\"\nID=something\n"), std::nullopt);
    EXPECT_EQ(read_pretty_name(dir_ / "absent"), std::nullopt);
}

TEST(OsPrettyName, IsNeverEmpty) {
    EXPECT_FALSE(by::worker::os_pretty_name().empty());
}

TEST(CpuCount, IsPositive) {
    EXPECT_GE(by::worker::cpu_count(), 1u);
}

TEST(HostInfo, CarriesTheContractKeys) {
    by::config::WorkerSelf self;
    self.name = "bot1";
    self.admin = "Jane Doe <jane@example.org>";
    self.basedir = "/var/lib/buildyard-worker/bot1";
    auto info = by::worker::host_info(self);

    std::vector<std::string> keys;
    for (const auto& [k, v] : info) {
        keys.push_back(k);
    }
    EXPECT_EQ(keys, (std::vector<std::string>{"admin", "basedir", "cpus", "host", "os", "version"}));

    char host[HOST_NAME_MAX + 1] = {};
    ASSERT_EQ(gethostname(host, sizeof host - 1), 0);
    EXPECT_EQ(info["host"], host);
    EXPECT_EQ(info["admin"], "Jane Doe <jane@example.org>");
    EXPECT_EQ(info["basedir"], "/var/lib/buildyard-worker/bot1");
    EXPECT_EQ(info["version"], BUILDYARD_VERSION);
    EXPECT_EQ(info["cpus"], std::to_string(by::worker::cpu_count()));
    EXPECT_EQ(info["os"], by::worker::os_pretty_name());
}

}  // namespace
