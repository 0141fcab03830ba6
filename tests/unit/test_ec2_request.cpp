// The EC2 backend's pure parts: the Query API parameters it sends, the
// ClientToken, the user data, which answers are retried or fall back, the
// back-off, the XML answers it reads and its credential files.
#include <gtest/gtest.h>

#include <map>

#include "latent/ec2/ec2_credentials.hpp"
#include "latent/http_call.hpp"
#include "latent/ec2/ec2_request.hpp"
#include "latent/ec2/ec2_response.hpp"

using namespace by::latent;
using namespace by::latent::ec2;

namespace {

const std::string start = "0123456789abcdef0123456789abcdef";

by::config::Ec2Options options() {
    by::config::Ec2Options o;
    o.region = "eu-west-1";
    o.endpoint = "https://ec2.eu-west-1.amazonaws.com/";
    o.ami = "ami-0123456789abcdef0";
    o.instance_type = "t3.micro";
    return o;
}

StartSpec spec() { return StartSpec{Tag{"m1", "e1", start}, "10.0.0.1:9989", "tok3n", "", nullptr}; }

std::map<std::string, std::string> as_map(const Params& p) {
    std::map<std::string, std::string> m;
    for (const auto& [k, v] : p) {
        EXPECT_TRUE(m.emplace(k, v).second) << k << " twice";
    }
    return m;
}

}  // namespace

TEST(Ec2Request, ClientTokenIsTheStartsAndFitsEc2) {
    EXPECT_EQ(client_token(start, Market::on_demand), client_token(start, Market::on_demand));
    EXPECT_NE(client_token(start, Market::spot), client_token(start, Market::on_demand));
    EXPECT_NE(client_token(start, Market::spot), client_token("f" + start.substr(1), Market::spot));
    EXPECT_LE(client_token(start, Market::on_demand).size(), 64u);
}

TEST(Ec2Request, UserDataCarriesTheIdentity) {
    EXPECT_EQ(user_data(spec()), "buildyard.worker=e1\nbuildyard.master=10.0.0.1:9989\nbuildyard.token=tok3n\n");
    EXPECT_EQ(base64("buildyard"), "YnVpbGR5YXJk");
    EXPECT_EQ(base64(""), "");
}

TEST(Ec2Request, RunInstancesOnDemandTagsInstanceAndVolumes) {
    auto o = options();
    o.tags = {{"team", "ci"}};
    auto p = as_map(run_instances(spec(), o, Market::on_demand, "dXNlcg==", ""));
    EXPECT_EQ(p["ImageId"], "ami-0123456789abcdef0");
    EXPECT_EQ(p["InstanceType"], "t3.micro");
    EXPECT_EQ(p["MinCount"], "1");
    EXPECT_EQ(p["MaxCount"], "1");
    EXPECT_EQ(p["ClientToken"], client_token(start, Market::on_demand));
    EXPECT_EQ(p["UserData"], "dXNlcg==");
    EXPECT_EQ(p["InstanceInitiatedShutdownBehavior"], "terminate");
    EXPECT_EQ(p["TagSpecification.1.ResourceType"], "instance");
    EXPECT_EQ(p["TagSpecification.2.ResourceType"], "volume");
    for (const char* ts : {"TagSpecification.1", "TagSpecification.2"}) {
        const std::string t = ts;
        EXPECT_EQ(p[t + ".Tag.1.Key"], "buildyard:owner");
        EXPECT_EQ(p[t + ".Tag.1.Value"], "m1");
        EXPECT_EQ(p[t + ".Tag.2.Key"], "buildyard:worker");
        EXPECT_EQ(p[t + ".Tag.2.Value"], "e1");
        EXPECT_EQ(p[t + ".Tag.3.Key"], "buildyard:start");
        EXPECT_EQ(p[t + ".Tag.3.Value"], start);
        EXPECT_EQ(p[t + ".Tag.4.Key"], "team");
        EXPECT_EQ(p[t + ".Tag.5.Key"], "Name");
        EXPECT_EQ(p[t + ".Tag.5.Value"], "buildyard-m1-e1");
    }
    EXPECT_FALSE(p.contains("InstanceMarketOptions.MarketType"));
    EXPECT_FALSE(p.contains("SubnetId"));
    EXPECT_FALSE(p.contains("BlockDeviceMapping.1.DeviceName"));
}

TEST(Ec2Request, RunInstancesSpotWithEverything) {
    auto o = options();
    o.subnet = "subnet-01234567";
    o.security_groups = {"sg-01234567", "sg-89abcdef"};
    o.key_name = "ci";
    o.volume_size_gib = 40;
    o.max_price = "0.05";
    o.tags = {{"Name", "mine"}};
    auto p = as_map(run_instances(spec(), o, Market::spot, "x", "/dev/xvda"));
    EXPECT_EQ(p["ClientToken"], client_token(start, Market::spot));
    EXPECT_EQ(p["SubnetId"], "subnet-01234567");
    EXPECT_EQ(p["SecurityGroupId.1"], "sg-01234567");
    EXPECT_EQ(p["SecurityGroupId.2"], "sg-89abcdef");
    EXPECT_EQ(p["KeyName"], "ci");
    EXPECT_EQ(p["BlockDeviceMapping.1.DeviceName"], "/dev/xvda");
    EXPECT_EQ(p["BlockDeviceMapping.1.Ebs.VolumeSize"], "40");
    EXPECT_EQ(p["BlockDeviceMapping.1.Ebs.DeleteOnTermination"], "true");
    EXPECT_EQ(p["InstanceMarketOptions.MarketType"], "spot");
    EXPECT_EQ(p["InstanceMarketOptions.SpotOptions.MaxPrice"], "0.05");
    EXPECT_EQ(p["InstanceMarketOptions.SpotOptions.SpotInstanceType"], "one-time");
    // The admin's Name wins over ours.
    EXPECT_EQ(p["TagSpecification.1.Tag.4.Value"], "mine");
    EXPECT_FALSE(p.contains("TagSpecification.1.Tag.5.Key"));
}

TEST(Ec2Request, DescribeTaggedFiltersByTheTagsGiven) {
    auto p = as_map(describe_tagged(Tag{"m1", "", ""}));
    EXPECT_EQ(p["Filter.1.Name"], "tag:buildyard:owner");
    EXPECT_EQ(p["Filter.1.Value.1"], "m1");
    EXPECT_EQ(p["Filter.2.Name"], "instance-state-name");
    EXPECT_FALSE(p.contains("Filter.2.Value.6"));
    EXPECT_EQ(p["Filter.2.Value.1"], "pending");
    auto all = as_map(describe_tagged(Tag{"m1", "e1", start}, false));
    EXPECT_EQ(all["Filter.3.Name"], "tag:buildyard:start");
    EXPECT_FALSE(all.contains("Filter.4.Name"));
}

TEST(Ec2Request, FormBodyIsSortedAndEscaped) {
    EXPECT_EQ(form_body("DescribeInstances", {{"Filter.1.Value.1", "a b/c"}, {"Filter.1.Name", "tag:x"}}),
              "Action=DescribeInstances&Filter.1.Name=tag%3Ax&Filter.1.Value.1=a%20b%2Fc&Version=2016-11-15");
}

TEST(Ec2Request, Classify) {
    EXPECT_EQ(classify(200, ""), Next::done);
    EXPECT_EQ(classify(503, "RequestLimitExceeded"), Next::retry);
    EXPECT_EQ(classify(500, "InternalError"), Next::retry);
    EXPECT_EQ(classify(502, ""), Next::retry);
    EXPECT_EQ(classify(0, ""), Next::retry);
    EXPECT_EQ(classify(400, "InsufficientInstanceCapacity"), Next::spot_refused);
    EXPECT_EQ(classify(400, "SpotMaxPriceTooLow"), Next::spot_refused);
    EXPECT_EQ(classify(400, "MaxSpotInstanceCountExceeded"), Next::spot_refused);
    EXPECT_EQ(classify(400, "InvalidAMIID.NotFound"), Next::fail);
    EXPECT_EQ(classify(401, "AuthFailure"), Next::fail);
    EXPECT_EQ(classify(400, "InvalidInstanceID.NotFound"), Next::fail);
}

TEST(Ec2Request, BackoffGrowsAndIsCapped) {
    EXPECT_EQ(backoff(1, 1.0).count(), 250);
    EXPECT_EQ(backoff(2, 1.0).count(), 500);
    EXPECT_EQ(backoff(3, 0.5).count(), 500);
    EXPECT_EQ(backoff(6, 1.0).count(), 8000);
    EXPECT_EQ(backoff(60, 1.0).count(), 8000);
    EXPECT_EQ(backoff(60, 7.0).count(), 8000);
    EXPECT_EQ(poll_interval(0).count(), 250);
    EXPECT_EQ(poll_interval(9).count(), 2000);
}

TEST(Ec2Response, ReadsDescribeInstances) {
    const auto r = parse_response(R"(<?xml version="1.0" encoding="UTF-8"?>
<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>req-1</requestId>
  <reservationSet><item><reservationId>r-1</reservationId><instancesSet>
    <item><instanceId>i-0123456789abcdef0</instanceId><instanceState><code>16</code><name>running</name></instanceState>
      <instanceLifecycle>spot</instanceLifecycle>
      <tagSet><item><key>buildyard:owner</key><value>m1</value></item><item><key>buildyard:worker</key><value>e1</value></item></tagSet>
    </item>
    <item><instanceId>i-1</instanceId><instanceState><name>terminated</name></instanceState>
      <stateReason><code>Server.SpotInstanceTermination</code><message>Server.SpotInstanceTermination: gone</message></stateReason></item>
  </instancesSet></item></reservationSet>
  <nextToken>page2</nextToken>
</DescribeInstancesResponse>)");
    ASSERT_TRUE(r.parsed) << r.parse_error;
    EXPECT_EQ(r.request_id, "req-1");
    ASSERT_EQ(r.instances.size(), 2u);
    EXPECT_EQ(r.instances[0].id, "i-0123456789abcdef0");
    EXPECT_EQ(r.instances[0].state, "running");
    EXPECT_EQ(r.instances[0].lifecycle, "spot");
    EXPECT_EQ(r.instances[0].tags.at("buildyard:worker"), "e1");
    EXPECT_EQ(r.instances[1].state, "terminated");
    EXPECT_EQ(r.instances[1].state_reason, "Server.SpotInstanceTermination: gone");
    EXPECT_EQ(r.next_token, "page2");
}

TEST(Ec2Response, ReadsRunTerminateImagesAndErrors) {
    auto run = parse_response("<RunInstancesResponse><instancesSet><item><instanceId>i-9</instanceId><instanceState>"
                              "<name>pending</name></instanceState></item></instancesSet></RunInstancesResponse>");
    ASSERT_EQ(run.instances.size(), 1u);
    EXPECT_EQ(run.instances[0].state, "pending");
    auto term = parse_response("<TerminateInstancesResponse><instancesSet><item><instanceId>i-9</instanceId>"
                               "<currentState><name>shutting-down</name></currentState></item></instancesSet>"
                               "</TerminateInstancesResponse>");
    EXPECT_EQ(term.instances.at(0).state, "shutting-down");
    auto images = parse_response("<DescribeImagesResponse><imagesSet><item><rootDeviceName>/dev/sda1</rootDeviceName>"
                                 "</item></imagesSet></DescribeImagesResponse>");
    EXPECT_EQ(images.root_device_name, "/dev/sda1");
    auto error = parse_response("<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>slow down"
                                "</Message></Error></Errors><RequestID>x</RequestID></Response>");
    ASSERT_TRUE(error.parsed);
    ASSERT_EQ(error.errors.size(), 1u);
    EXPECT_EQ(error.errors[0].code, "RequestLimitExceeded");
    EXPECT_EQ(error.errors[0].message, "slow down");
}

TEST(Ec2Response, RefusesWhatIsNotAnAnswer) {
    EXPECT_FALSE(parse_response("").parsed);
    EXPECT_FALSE(parse_response("not xml").parsed);
    EXPECT_FALSE(parse_response("<html><body>502</body></html>").parsed);
    EXPECT_FALSE(parse_response("<Response><Errors/></Response>").parsed);
    EXPECT_FALSE(parse_response("<RunInstancesResponse><instancesSet>").parsed);
    // An external entity is never fetched or expanded.
    auto r = parse_response("<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>"
                            "<DescribeInstancesResponse><nextToken>&e;</nextToken></DescribeInstancesResponse>");
    EXPECT_EQ(r.next_token.find("root"), std::string::npos);
}

TEST(Ec2Credentials, CredentialFileFormats) {
    std::string error;
    auto c = parse_credential_file("[default]\naws_access_key_id = AKIDEXAMPLE\naws_secret_access_key=s3cr3t/+x\n",
                                   error);
    ASSERT_TRUE(c) << error;
    EXPECT_EQ(c->key_id, "AKIDEXAMPLE");
    EXPECT_EQ(c->secret, "s3cr3t/+x");
    c = parse_credential_file("AWS_ACCESS_KEY_ID=A\nAWS_SECRET_ACCESS_KEY=B\nAWS_SESSION_TOKEN=C\n", error);
    ASSERT_TRUE(c) << error;
    EXPECT_EQ(c->session_token, "C");
    EXPECT_FALSE(parse_credential_file("aws_access_key_id = A\n", error));
    EXPECT_EQ(error, "it needs both aws_access_key_id and aws_secret_access_key");
    EXPECT_FALSE(parse_credential_file("aws_secret = hunter2\n", error));
    EXPECT_EQ(error.find("hunter2"), std::string::npos);  // never the value
    EXPECT_FALSE(parse_credential_file("hunter2\n", error));
    EXPECT_EQ(error.find("hunter2"), std::string::npos);
}

TEST(Ec2Credentials, RoleCredentialsAndRefresh) {
    std::string error;
    auto c = parse_role_credentials(R"({"Code":"Success","AccessKeyId":"ASIA1","SecretAccessKey":"s","Token":"t",)"
                                    R"("Expiration":"2026-12-06T06:00:00Z"})",
                                    error);
    ASSERT_TRUE(c) << error;
    EXPECT_EQ(c->expires_at, *parse_iso8601("2026-12-06T06:00:00Z"));
    EXPECT_EQ(*parse_iso8601("1970-01-01T00:01:00Z"), 60);
    EXPECT_FALSE(needs_refresh(*c, c->expires_at - 301));
    EXPECT_TRUE(needs_refresh(*c, c->expires_at - 300));
    EXPECT_FALSE(parse_role_credentials(R"({"Code":"Failure"})", error));
    EXPECT_FALSE(parse_role_credentials("[]", error));
    EXPECT_FALSE(parse_role_credentials(R"({"AccessKeyId":"A","SecretAccessKey":"s","Token":"t"})", error));
}

TEST(Ec2Credentials, OrderCredentialThenEnvironment) {
    std::map<std::string, std::string> env{{"AWS_ACCESS_KEY_ID", "ENVKEY"}, {"AWS_SECRET_ACCESS_KEY", "envsecret"},
                                           {"AWS_EC2_METADATA_DISABLED", "true"}};
    CredentialSource source({[&](const char* n) { return env.contains(n) ? env[n].c_str() : nullptr; },
                             [] { return int64_t{0}; }});
    Cancelled never{false};
    auto c = source.get("", never);
    ASSERT_TRUE(c.ok()) << c.error;
    EXPECT_EQ(c.value.key_id, "ENVKEY");
    EXPECT_EQ(c.value.source, "the environment");
    // A named credential that cannot be read is an error, not a fall-through.
    auto named = source.get("keys", never);
    EXPECT_FALSE(named.ok());
    EXPECT_NE(named.error.find("CREDENTIALS_DIRECTORY is not set"), std::string::npos);
    env.erase("AWS_SECRET_ACCESS_KEY");
    EXPECT_NE(source.get("", never).error.find("only one of"), std::string::npos);
    env.erase("AWS_ACCESS_KEY_ID");
    EXPECT_NE(source.get("", never).error.find("AWS_EC2_METADATA_DISABLED"), std::string::npos);
}
