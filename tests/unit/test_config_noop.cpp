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
