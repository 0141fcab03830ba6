// The ec2.* keys of a latent worker (backend = ec2): defaults, every key's
// checks with FILE:LINE errors, and their conversion for the backend.
#include "common/config_ec2.hpp"
#include "common/config_values.hpp"
#include "config_test_support.hpp"

namespace {

// Lines 1-8; a key appended is on line 9.
const std::string ec2 = "[master]\nlisten = 127.0.0.1:9000\n[worker e1]\ntype = latent\nbackend = ec2\n"
                        "ec2.region = eu-west-1\nec2.ami = ami-0123456789abcdef0\nec2.instance_type = t3.micro\n";

Ec2Options options_of(const Config& c) {
    return backend_options_of(ec2_options, c, "e1");
}

}  // namespace

TEST_F(ConfigTest, Ec2Defaults) {
    const auto c = load_ok(ec2);
    const auto& w = c.workers.at("e1");
    EXPECT_EQ(w.backend, "ec2");
    EXPECT_EQ(w.build_wait_timeout, 600);
    const auto o = options_of(c);
    EXPECT_EQ(o.region, "eu-west-1");
    EXPECT_EQ(o.endpoint, "https://ec2.eu-west-1.amazonaws.com/");
    EXPECT_EQ(o.ami, "ami-0123456789abcdef0");
    EXPECT_EQ(o.instance_type, "t3.micro");
    EXPECT_TRUE(o.subnet.empty());
    EXPECT_TRUE(o.security_groups.empty());
    EXPECT_TRUE(o.key_name.empty());
    EXPECT_EQ(o.volume_size_gib, 0u);
    EXPECT_TRUE(o.tags.empty());
    EXPECT_EQ(o.spot, Ec2Spot::no);
    EXPECT_TRUE(o.max_price.empty());
    EXPECT_TRUE(o.credential.empty());
}

TEST_F(ConfigTest, Ec2EveryKey) {
    const auto o = options_of(load_ok(ec2 +
                                      "ec2.endpoint = http://127.0.0.1:8773/services/Cloud\n"
                                      "ec2.subnet = subnet-0abc1234\n"
                                      "ec2.security_groups = sg-0123456789abcdef0, sg-01234567\n"
                                      "ec2.key_name = ci key\n"
                                      "ec2.volume_size = 40\n"
                                      "ec2.tags = team=ci, cost-centre=42, empty=\n"
                                      "ec2.spot = fallback\n"
                                      "ec2.max_price = 0.05\n"
                                      "ec2.credential = ec2-keys\n"));
    EXPECT_EQ(o.endpoint, "http://127.0.0.1:8773/services/Cloud");
    EXPECT_EQ(o.subnet, "subnet-0abc1234");
    EXPECT_EQ(o.security_groups, (std::vector<std::string>{"sg-0123456789abcdef0", "sg-01234567"}));
    EXPECT_EQ(o.key_name, "ci key");
    EXPECT_EQ(o.volume_size_gib, 40u);
    EXPECT_EQ(o.tags, (std::vector<std::pair<std::string, std::string>>{
                          {"team", "ci"}, {"cost-centre", "42"}, {"empty", ""}}));
    EXPECT_EQ(o.spot, Ec2Spot::fallback);
    EXPECT_EQ(o.max_price, "0.05");
    EXPECT_EQ(o.credential, "ec2-keys");
    EXPECT_EQ(options_of(load_ok(ec2 + "ec2.spot = yes\n")).spot, Ec2Spot::yes);
    EXPECT_EQ(options_of(load_ok(ec2 + "ec2.spot = no\n")).spot, Ec2Spot::no);
}

TEST_F(ConfigTest, Ec2BadValues) {
    const std::string at = "9: [worker e1] ";
    expect_error(ec2 + "ec2.endpoint = ftp://x\n", at + "ec2.endpoint: invalid endpoint 'ftp://x': expected an http");
    expect_error(ec2 + "ec2.endpoint = https://\n", at + "ec2.endpoint: invalid endpoint 'https://': the URL has no host");
    expect_error(ec2 + "ec2.endpoint = https://h/?a=b\n", at + "ec2.endpoint: invalid endpoint");
    expect_error(ec2 + "ec2.subnet = subnet-xyz\n", at + "ec2.subnet: invalid subnet 'subnet-xyz'");
    expect_error(ec2 + "ec2.security_groups = sg-01234567, default\n",
                 at + "ec2.security_groups: invalid security group 'default'");
    expect_error(ec2 + "ec2.security_groups = sg-01234567, sg-01234567\n",
                 at + "ec2.security_groups: security group 'sg-01234567' is named twice");
    expect_error(ec2 + "ec2.volume_size = 0\n", at + "ec2.volume_size: invalid value '0': expected GiB from 1 to 16384");
    expect_error(ec2 + "ec2.volume_size = 16385\n", at + "ec2.volume_size: invalid value '16385'");
    expect_error(ec2 + "ec2.tags = novalue\n", at + "ec2.tags: invalid tag 'novalue': expected KEY=VALUE");
    expect_error(ec2 + "ec2.tags = buildyard:owner=me\n", at + "ec2.tags: tag 'buildyard:owner': keys starting with");
    expect_error(ec2 + "ec2.tags = aws:x=1\n", at + "ec2.tags: tag 'aws:x'");
    expect_error(ec2 + "ec2.tags = a=1, a=2\n", at + "ec2.tags: tag 'a' is set twice");
    // 47 one-letter keys: a config line holds at most 198 characters.
    std::string many;
    for (int i = 0; i < 47; ++i) {
        many += std::string(i ? ", " : "") + static_cast<char>(i < 26 ? 'a' + i : 'A' + i - 26) + "=";
    }
    expect_error(ec2 + "ec2.tags = " + many + "\n", at + "ec2.tags: too many tags: at most 46");
    expect_error(ec2 + "ec2.spot = maybe\n", at + "ec2.spot: invalid value 'maybe': expected no, yes or fallback");
    for (const char* bad : {"0", "0.0", "-1", "1.", ".5", "cheap", "1e3", "1234567"}) {
        expect_error(ec2 + "ec2.spot = yes\nec2.max_price = " + bad + "\n",
                     "10: [worker e1] ec2.max_price: invalid price '" + std::string(bad) + "'");
    }
    expect_error(ec2 + "ec2.credential = ../x\n", at + "ec2.credential: invalid credential name '../x'");
    const std::string head = "[master]\nlisten = 127.0.0.1:9000\n[worker e1]\ntype = latent\nbackend = ec2\n";
    expect_error(head + "ec2.region = EU West\n", "6: [worker e1] ec2.region: invalid region 'EU West'");
    expect_error(head + "ec2.ami = ubuntu\n", "6: [worker e1] ec2.ami: invalid AMI 'ubuntu'");
    expect_error(head + "ec2.ami = ami-0123\n", "6: [worker e1] ec2.ami: invalid AMI 'ami-0123'");
    expect_error(head + "ec2.instance_type = large\n", "6: [worker e1] ec2.instance_type: invalid instance type 'large'");
}

TEST_F(ConfigTest, Ec2RequiredUnknownAndContradictoryKeys) {
    const std::string head = "[master]\nlisten = 127.0.0.1:9000\n[worker e1]\ntype = latent\nbackend = ec2\n";
    expect_error(head, "3: [worker e1]: ec2 workers need ec2.region");
    expect_error(head, "3: [worker e1]: ec2 workers need ec2.ami");
    expect_error(head, "3: [worker e1]: ec2 workers need ec2.instance_type");
    expect_error(ec2 + "ec2.zone = a\n",
                 "9: [worker e1] ec2.zone: unknown key (ec2 keys: region, endpoint, ami, instance_type, subnet, "
                 "security_groups, key_name, volume_size, tags, spot, max_price, credential)");
    expect_error(ec2 + "ec2.max_price = 0.1\n",
                 "9: [worker e1] ec2.max_price: is a spot price: it needs ec2.spot = yes or fallback");
    expect_error(ec2 + "ec2.spot = no\nec2.max_price = 0.1\n", "10: [worker e1] ec2.max_price: is a spot price");
    expect_error(ec2 + "docker.image = x\n",
                 "9: [worker e1] docker.image: belongs to backend docker, but this worker's backend is ec2");
    expect_error(local_worker + "backend = ec2\nec2.region = x\n", "4: [worker w] ec2.region: only valid for latent");
}

TEST_F(ConfigTest, Ec2OptionsReportMissingKeys) {
    std::string error;
    EXPECT_FALSE(ec2_options({{"ec2.region", "eu-west-1"}}, error));
    EXPECT_EQ(error, "ec2.ami is not set");
    EXPECT_FALSE(ec2_options({{"ec2.region", "eu-west-1"}, {"ec2.ami", "bad"}}, error));
    EXPECT_EQ(error.substr(0, 24), "ec2.ami: invalid AMI 'ba");
    // Longer than a config line can be, so checked here.
    EXPECT_FALSE(ec2_options({{"ec2.key_name", std::string(256, 'k')}}, error));
    EXPECT_EQ(error.substr(0, 42), "ec2.key_name: invalid key pair name 'kkkkk");
}

TEST_F(ConfigTest, Ec2InstalledExampleLoads) {
    std::string error;
    auto text = by::config::detail::read_file(std::string(TEST_DATA_DIR) + "/../../../etc/master.d/50-ec2-1.ini.example",
                                              1 << 20, error);
    ASSERT_TRUE(text) << error;
    const auto c = load_ok("[master]\nlisten = 127.0.0.1:9989\n[builder b]\nworkers = ec2-1\nstep.1 = true\n" + *text);
    const auto o = [&] {
        auto r = ec2_options(c.workers.at("ec2-1").backend_options, error);
        EXPECT_TRUE(r) << error;
        return r.value_or(Ec2Options{});
    }();
    EXPECT_EQ(o.spot, Ec2Spot::fallback);
    EXPECT_EQ(o.credential, "ec2-keys");
    EXPECT_EQ(c.workers.at("ec2-1").build_wait_timeout, 300);
}
