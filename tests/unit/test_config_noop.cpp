// Keys that would do nothing are errors, at FILE:LINE with section and key,
// and a bad type is reported as itself, not as a rule of the default type.
#include "config_test_support.hpp"

namespace {

const std::string builder = "[builder b]\nworkers = w\nstep.1 = true\n";

TEST_F(ConfigTest, KeepalivesOnALocalWorkerAreErrors) {
    expect_error("[worker w]\ntype = local\nkeepalive_interval = 60\n" + builder,
                 "3: [worker w] keepalive_interval: does nothing for a local worker");
    expect_error("[worker w]\ntype = local\nkeepalive_timeout = 5\n" + builder,
                 "3: [worker w] keepalive_timeout: does nothing for a local worker");
    // Standard workers attach over TCP: there they matter.
    const auto c = load_ok("[worker w]\npassword = s3cret\nkeepalive_interval = 60\nkeepalive_timeout = 5\n" +
                           builder);
    EXPECT_EQ(c.workers.at("w").keepalive_interval, 60u);
    EXPECT_EQ(c.workers.at("w").keepalive_timeout, 5u);
}

TEST_F(ConfigTest, MailRecipientsWithoutBuildersIsAnError) {
    expect_error("[mail]\nrecipients = team@example.org\n[worker w]\ntype = local\n" + builder,
                 "2: [mail] recipients: does nothing without builders");
    const auto c = load_ok("[mail]\nbuilders = b\nrecipients = team@example.org\n[worker w]\ntype = local\n" +
                           builder);
    EXPECT_EQ(c.mail.recipients, std::vector<std::string>{"team@example.org"});
}

TEST_F(ConfigTest, MailUsernameWithoutPasswordIsAnError) {
    expect_error("[mail]\nusername = buildyard\n" + local_worker + builder,
                 "2: [mail] username: does nothing without a password");
}

TEST_F(ConfigTest, PropertiesThatWouldShareAVariableAreErrors) {
    auto r = load_text("[worker w]\ntype = local\nproperty.a.b = 1\nproperty.a_b = 2\n" + builder);
    EXPECT_FALSE(r.config.has_value());
    // Whichever is reported, it names the variable and where the other is.
    EXPECT_TRUE(has_error(r.errors, "$BUILDYARD_PROP_a_b, like property.a")) << joined(r.errors);
    EXPECT_TRUE(has_error(r.errors, main + ":3)") || has_error(r.errors, main + ":4)")) << joined(r.errors);
    expect_error("[worker w]\ntype = local\nproperty.x-y = 1\nproperty.x.y = 2\n" + builder, "");
    expect_error("[worker w]\ntype = local\nproperty.workername = me\n" + builder,
                 "3: [worker w] property.workername: the master sets property workername");
    // Distinct variables are fine.
    const auto c = load_ok("[worker w]\ntype = local\nproperty.a.b = 1\nproperty.ab = 2\n" + builder);
    EXPECT_EQ(c.workers.at("w").properties.size(), 2u);
}

TEST_F(ConfigTest, ABadTypeIsReportedAsItselfOnly) {
    auto r = load_text("[worker w]\ntype = locall\nkeepalive_interval = 60\n" + builder);
    EXPECT_FALSE(r.config.has_value());
    EXPECT_TRUE(has_error(r.errors, main + ":2: [worker w] type: invalid type 'locall'")) << joined(r.errors);
    EXPECT_EQ(r.errors.size(), 1u) << "not also 'standard workers need a password':\n" << joined(r.errors);
}

TEST_F(ConfigTest, DefaultProperties) {
    const auto c = load_ok("[worker w]\ntype = local\ndefault_property.branch = main\nproperty.os = debian\n" +
                           builder);
    EXPECT_EQ(c.workers.at("w").default_properties, (std::map<std::string, std::string>{{"branch", "main"}}));
    EXPECT_EQ(c.workers.at("w").properties, (std::map<std::string, std::string>{{"os", "debian"}}));
    expect_error("[worker w]\ntype = local\ndefault_property.workername = x\n" + builder,
                 "3: [worker w] default_property.workername: the master sets property workername");
    expect_error("[worker w]\ntype = local\ndefault_property.a/b = x\n" + builder,
                 "3: [worker w] default_property.a/b: invalid property name");
    // Secrets come from credentials or files, never from the config itself.
    expect_error("[worker w]\ntype = local\ndefault_property.secret.token = x\n" + builder,
                 "3: [worker w] default_property.secret.token: a property named secret.KEY is a secret");
    expect_error("[worker w]\ntype = local\nproperty.secret.token = x\n" + builder,
                 "3: [worker w] property.secret.token: a property named secret.KEY is a secret");
}

}  // namespace

// A latent worker without master_address dials this host's name, which a
// guest resolves only if its DNS knows it: a warning at the worker's header,
// not an error (it may work), and none where it does (host network).
TEST_F(ConfigTest, ADefaultMasterAddressAGuestCannotReachIsWarned) {
    auto warnings_of = [&](const std::string& text) {
        auto r = load_text(text);
        EXPECT_TRUE(r.errors.empty()) << joined(r.errors);
        return r.config ? r.config->warnings : std::vector<Error>{};
    };
    const std::string listen = "[master]\nlisten = 0.0.0.0:9000\n";
    const std::string vm = "[worker vm1]\ntype = latent\nbackend = libvirt\nlibvirt.uri = test:///default\n"
                           "libvirt.xml = /etc/buildyard/vm1.xml\n";
    auto w = warnings_of(listen + vm);
    ASSERT_EQ(w.size(), 1u) << joined(w);
    EXPECT_EQ(w[0].str(), main + ":3: [worker vm1] master_address: not set, so the libvirt machine dials "
                                 "testhost:9000 (this host's name), which works only if the machine resolves that "
                                 "name to this host: set master_address = HOST:PORT (a guest on libvirt's user "
                                 "networking reaches this host at 10.0.2.2:9000)");
    EXPECT_TRUE(warnings_of(listen + vm + "master_address = 10.0.2.2:9000\n").empty());

    const std::string docker = "[worker c1]\ntype = latent\nbackend = docker\ndocker.image = localhost/w:1\n";
    EXPECT_TRUE(warnings_of(listen + docker).empty()) << "the host's network shares the host's names";
    w = warnings_of("[master]\nlisten = 127.0.0.1:9000\n" + docker);
    ASSERT_EQ(w.size(), 1u) << joined(w);
    EXPECT_TRUE(has_error(w, main + ":3: [worker c1] master_address: not set, so the docker machine dials "
                                    "testhost:9000"));
    EXPECT_TRUE(has_error(w, "a container on the host's network reaches it at 127.0.0.1:9000)"));
    w = warnings_of(listen + docker + "docker.network = bridge\n");
    ASSERT_EQ(w.size(), 1u) << joined(w);
    EXPECT_TRUE(has_error(w, "(an address that the container's network reaches)"));

    w = warnings_of(listen + "[worker e1]\ntype = latent\nbackend = ec2\nec2.region = eu-west-1\n"
                             "ec2.ami = ami-0123456789abcdef0\nec2.instance_type = t3.micro\n");
    ASSERT_EQ(w.size(), 1u) << joined(w);
    EXPECT_TRUE(has_error(w, main + ":3: [worker e1] master_address: not set, so the ec2 machine dials"));
}
