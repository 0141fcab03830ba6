// The openstack.* keys of a latent worker (backend = openstack): defaults,
// every key's checks with FILE:LINE errors, and their conversion for the
// backend.
#include "common/config_openstack.hpp"
#include "common/config_values.hpp"
#include "config_test_support.hpp"

namespace {

// Lines 1-8; a key appended is on line 9.
const std::string os = "[master]\nlisten = 127.0.0.1:9000\n[worker o1]\ntype = latent\nbackend = openstack\n"
                       "openstack.cloud = ci\nopenstack.flavor = m1.small\nopenstack.image = debian-12\n";

OpenStackOptions options_of(const Config& c) { return backend_options_of(openstack_options, c, "o1"); }

}  // namespace

TEST_F(ConfigTest, OpenStackDefaults) {
    const auto c = load_ok(os);
    const auto& w = c.workers.at("o1");
    EXPECT_EQ(w.backend, "openstack");
    EXPECT_EQ(w.build_wait_timeout, 600);
    const auto o = options_of(c);
    EXPECT_EQ(o.cloud, "ci");
    EXPECT_EQ(o.flavor, "m1.small");
    EXPECT_EQ(o.image, "debian-12");
    EXPECT_TRUE(o.clouds_file.empty());
    EXPECT_TRUE(o.credential.empty());
    EXPECT_TRUE(o.network.empty());
    EXPECT_TRUE(o.availability_zone.empty());
    EXPECT_TRUE(o.key_name.empty());
    EXPECT_TRUE(o.security_groups.empty());
    EXPECT_EQ(o.volume_size_gib, 0u);
    EXPECT_TRUE(o.metadata.empty());
    EXPECT_FALSE(o.config_drive);
}

TEST_F(ConfigTest, OpenStackEveryKey) {
    const auto o = options_of(load_ok(os +
                                      "openstack.clouds_file = /etc/buildyard/clouds.yaml\n"
                                      "openstack.credential = os-password\n"
                                      "openstack.network = none\n"
                                      "openstack.availability_zone = nova\n"
                                      "openstack.key_name = ci key\n"
                                      "openstack.security_groups = default, ci-ssh\n"
                                      "openstack.volume_size = 40\n"
                                      "openstack.metadata = team=ci, cost-centre=42, empty=\n"
                                      "openstack.config_drive = yes\n"));
    EXPECT_EQ(o.clouds_file, "/etc/buildyard/clouds.yaml");
    EXPECT_EQ(o.credential, "os-password");
    EXPECT_EQ(o.network, "none");
    EXPECT_EQ(o.availability_zone, "nova");
    EXPECT_EQ(o.key_name, "ci key");
    EXPECT_EQ(o.security_groups, (std::vector<std::string>{"default", "ci-ssh"}));
    EXPECT_EQ(o.volume_size_gib, 40u);
    EXPECT_EQ(o.metadata, (std::vector<std::pair<std::string, std::string>>{
                              {"team", "ci"}, {"cost-centre", "42"}, {"empty", ""}}));
    EXPECT_TRUE(o.config_drive);
    EXPECT_FALSE(options_of(load_ok(os + "openstack.config_drive = no\n")).config_drive);
}

TEST_F(ConfigTest, OpenStackBadValues) {
    const std::string at = "9: [worker o1] ";
    expect_error(os + "openstack.clouds_file = clouds.yaml\n",
                 at + "openstack.clouds_file: invalid path 'clouds.yaml': expected an absolute path");
    expect_error(os + "openstack.credential = ../x\n", at + "openstack.credential: invalid credential name '../x'");
    expect_error(os + "openstack.security_groups = a, a\n",
                 at + "openstack.security_groups: security group 'a' is named twice");
    expect_error(os + "openstack.security_groups =\n", at + "openstack.security_groups: empty list");
    expect_error(os + "openstack.security_groups = a, ,b\n", at + "openstack.security_groups: invalid security group ''");
    expect_error(os + "openstack.volume_size = 0\n",
                 at + "openstack.volume_size: invalid value '0': expected GiB from 1 to 65536");
    expect_error(os + "openstack.volume_size = 65537\n", at + "openstack.volume_size: invalid value '65537'");
    expect_error(os + "openstack.volume_size = big\n", at + "openstack.volume_size: invalid value 'big'");
    expect_error(os + "openstack.metadata = novalue\n",
                 at + "openstack.metadata: invalid item 'novalue': expected KEY=VALUE (a key of 1-255, a value of 0-255");
    expect_error(os + "openstack.metadata = =x\n", at + "openstack.metadata: invalid item '=x'");
    expect_error(os + "openstack.metadata = buildyard:owner=me\n",
                 at + "openstack.metadata: item 'buildyard:owner': keys starting with buildyard: are the backend's own");
    expect_error(os + "openstack.metadata = a=1, a=2\n", at + "openstack.metadata: item 'a' is set twice");
    expect_error(os + "openstack.config_drive = maybe\n",
                 at + "openstack.config_drive: invalid value 'maybe': expected yes or no");
    expect_error(os + "openstack.network = a\tb\n", at + "openstack.network: invalid network");
}

TEST_F(ConfigTest, OpenStackRequiredAndUnknownKeys) {
    const std::string head = "[master]\nlisten = 127.0.0.1:9000\n[worker o1]\ntype = latent\nbackend = openstack\n";
    expect_error(head, "3: [worker o1]: openstack workers need openstack.cloud");
    expect_error(head, "3: [worker o1]: openstack workers need openstack.flavor");
    expect_error(head, "3: [worker o1]: openstack workers need openstack.image");
    expect_error(os + "openstack.region = RegionOne\n",
                 "9: [worker o1] openstack.region: unknown key (openstack keys: cloud, clouds_file, credential, "
                 "flavor, image, network, availability_zone, key_name, security_groups, volume_size, metadata, "
                 "config_drive)");
    expect_error(os + "ec2.region = x\n",
                 "9: [worker o1] ec2.region: belongs to backend ec2, but this worker's backend is openstack");
    expect_error(local_worker + "backend = openstack\nopenstack.cloud = x\n",
                 "4: [worker w] openstack.cloud: only valid for latent");
}

TEST_F(ConfigTest, OpenStackOptionsReportMissingAndLongValues) {
    std::string error;
    EXPECT_FALSE(openstack_options({{"openstack.cloud", "ci"}, {"openstack.image", "x"}}, error));
    EXPECT_EQ(error, "openstack.flavor is not set");
    // Longer than a config line can be, so checked here.
    EXPECT_FALSE(openstack_options({{"openstack.flavor", std::string(256, 'f')}}, error));
    EXPECT_EQ(error.substr(0, 36), "openstack.flavor: invalid flavor 'ff");
    std::string many;
    for (int i = 0; i < 126; ++i) {
        many += (i ? ", k" : "k") + std::to_string(i) + "=";
    }
    EXPECT_FALSE(openstack_options({{"openstack.metadata", many}}, error));
    EXPECT_EQ(error.substr(0, 50), "openstack.metadata: too many items: at most 125 (N");
}

TEST_F(ConfigTest, OpenStackInstalledExampleLoads) {
    std::string error;
    auto text = by::config::detail::read_file(
        std::string(TEST_DATA_DIR) + "/../../../etc/master.d/50-openstack-1.ini.example", 1 << 20, error);
    ASSERT_TRUE(text) << error;
    const auto c = load_ok("[master]\nlisten = 127.0.0.1:9989\n[builder b]\nworkers = os-1\nstep.1 = true\n" + *text);
    auto o = openstack_options(c.workers.at("os-1").backend_options, error);
    ASSERT_TRUE(o) << error;
    EXPECT_EQ(o->cloud, "ci");
    EXPECT_EQ(o->credential, "openstack-password");
    EXPECT_EQ(c.workers.at("os-1").build_wait_timeout, 300);
}
