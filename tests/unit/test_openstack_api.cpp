// The OpenStack backend's decisions, free of I/O: Keystone's answer, when a
// token is renewed (with an injected clock), which endpoint of the catalog,
// which Nova microversion, names to IDs, which answers are retried, and
// Nova's server bodies.
#include <gtest/gtest.h>

#include "common/config.hpp"
#include "latent/backend.hpp"
#include "latent/http_call.hpp"
#include "latent/openstack/openstack_api.hpp"

using namespace by::latent;
using namespace by::latent::openstack;
using nlohmann::json;

namespace {

const std::string token_body = R"({"token": {
  "issued_at": "2026-12-07T01:00:00.000000Z", "expires_at": "2026-12-07T02:00:00.000000Z",
  "project": {"id": "p-1", "name": "buildyard"},
  "catalog": [
    {"type": "compute", "name": "nova", "endpoints": [
      {"interface": "public", "region": "RegionOne", "region_id": "RegionOne", "url": "http://nova:8774/v2.1/"},
      {"interface": "internal", "region": "RegionOne", "region_id": "RegionOne", "url": "http://nova-int:8774/v2.1"},
      {"interface": "public", "region": "RegionTwo", "region_id": "RegionTwo", "url": "http://nova2:8774/v2.1"}]},
    {"type": "image", "name": "glance", "endpoints": [
      {"interface": "public", "region": "RegionOne", "region_id": "RegionOne", "url": "http://glance:9292"}]}]}})";

Token token() {
    std::string error;
    auto t = parse_token(token_body, "gAAAA-token", error);
    EXPECT_TRUE(t) << error;
    return t.value_or(Token{});
}

const std::string start = "0123456789abcdef0123456789abcdef";

StartSpec spec() {
    StartSpec s;
    s.tag = {"ci", "o1", start};
    s.master_address = "10.0.0.1:9989";
    s.token = "tok3n";
    return s;
}

by::config::OpenStackOptions options() {
    by::config::OpenStackOptions o;
    o.cloud = "ci";
    o.flavor = "by.small";
    o.image = "by-image";
    return o;
}

}  // namespace

TEST(OpenStackApi, TokenAnswerGivesTimesProjectAndCatalog) {
    const Token t = token();
    EXPECT_EQ(t.id, "gAAAA-token");
    EXPECT_EQ(t.expires_at - t.issued_at, 3600);
    EXPECT_EQ(t.project_id, "p-1");
    ASSERT_EQ(t.catalog.size(), 2u);
    EXPECT_EQ(t.catalog[0].endpoints.size(), 3u);
    std::string error;
    EXPECT_FALSE(parse_token(token_body, "", error));
    EXPECT_EQ(error, "Keystone's answer lacks the X-Subject-Token header or token.expires_at");
    EXPECT_FALSE(parse_token("<html>", "x", error));
    EXPECT_EQ(error, "Keystone's answer has no token object");
    EXPECT_FALSE(parse_token(R"({"token": {"expires_at": "2026-12-07T02:00:00Z"}})", "x", error));
    EXPECT_EQ(error, "Keystone's token has no service catalog (is it scoped to a project?)");
}

TEST(OpenStackApi, ATokenIsRenewedHalfItsLifeBeforeItEndsAtMostFiveMinutes) {
    Token t = token();  // one hour: renewed 5 minutes before
    EXPECT_TRUE(token_fresh(t, t.issued_at));
    EXPECT_TRUE(token_fresh(t, t.expires_at - 301));
    EXPECT_FALSE(token_fresh(t, t.expires_at - 300));
    EXPECT_FALSE(token_fresh(t, t.expires_at + 10));
    t.expires_at = t.issued_at + 60;  // Keystone's [token] expiration = 60: renewed 30 s before
    EXPECT_TRUE(token_fresh(t, t.issued_at + 29));
    EXPECT_FALSE(token_fresh(t, t.issued_at + 30));
    t.issued_at = t.expires_at;  // no issued_at in the answer: used to its end
    EXPECT_TRUE(token_fresh(t, t.expires_at - 1));
    EXPECT_FALSE(token_fresh(t, t.expires_at));
}

TEST(OpenStackApi, TheCatalogsEndpointByInterfaceAndRegion) {
    const auto catalog = token().catalog;
    std::string error;
    EXPECT_EQ(endpoint_url(catalog, "compute", "public", "RegionOne", error), "http://nova:8774/v2.1");
    EXPECT_EQ(endpoint_url(catalog, "compute", "internal", "", error), "http://nova-int:8774/v2.1");
    EXPECT_EQ(endpoint_url(catalog, "image", "public", "", error), "http://glance:9292");
    EXPECT_FALSE(endpoint_url(catalog, "compute", "public", "", error));
    EXPECT_EQ(error, "the service catalog has a compute endpoint with interface public in several regions "
                     "(RegionOne, RegionTwo): set region_name in clouds.yaml");
    EXPECT_FALSE(endpoint_url(catalog, "compute", "admin", "RegionOne", error));
    EXPECT_EQ(error, "the service catalog has no compute endpoint with interface admin in region RegionOne (it has: "
                     "internal in RegionOne, public in RegionOne, public in RegionTwo)");
    EXPECT_FALSE(endpoint_url(catalog, "network", "public", "", error));
    EXPECT_EQ(error, "the service catalog has no network endpoint with interface public (no network service at all)");
}

TEST(OpenStackApi, TheMicroversionIsTheHighestBothKnow) {
    std::string error;
    const std::string zed = R"({"version": {"id": "v2.1", "status": "CURRENT", "version": "2.93",
                                 "min_version": "2.1"}})";
    EXPECT_EQ(choose_microversion(zed, error), "2.79");
    const std::string root = R"({"versions": [{"id": "v2.0", "version": "", "min_version": ""},
                                  {"id": "v2.1", "version": "2.60", "min_version": "2.1"}]})";
    EXPECT_EQ(choose_microversion(root, error), "2.60");
    EXPECT_FALSE(choose_microversion(R"({"version": {"id": "v2.1", "version": "2.36", "min_version": "2.1"}})", error));
    EXPECT_EQ(error, "Nova offers microversions up to 2.36; the backend needs 2.37 or later");
    EXPECT_FALSE(choose_microversion(R"({"version": {"id": "v2.1", "version": "2.99", "min_version": "2.80"}})", error));
    EXPECT_EQ(error, "Nova's lowest microversion 2.80 is past the backend's highest, 2.79");
    EXPECT_FALSE(choose_microversion(R"({"version": {"id": "v2.0", "version": ""}})", error));
    EXPECT_EQ(error, "Nova's v2.1 API offers no microversions");
    EXPECT_FALSE(choose_microversion("not json", error));
    EXPECT_EQ(error, "Nova's version document names no v2.1 API");
    EXPECT_EQ(parse_microversion("2.10"), (std::pair<unsigned, unsigned>{2, 10}));
    EXPECT_GT(*parse_microversion("2.10"), *parse_microversion("2.9"));
    EXPECT_FALSE(parse_microversion("2"));
    EXPECT_FALSE(parse_microversion("2.x"));
    EXPECT_EQ(version_url("http://nova:8774/v2.1/p-1", "p-1"), "http://nova:8774/v2.1");
    EXPECT_EQ(version_url("http://nova:8774/v2.1/", "p-1"), "http://nova:8774/v2.1");
    EXPECT_EQ(with_version("http://glance:9292/", "v2"), "http://glance:9292/v2");
    EXPECT_EQ(with_version("http://h/network/v2.0", "v2.0"), "http://h/network/v2.0");
}

TEST(OpenStackApi, NamesBecomeIdsOrAClearError) {
    const std::vector<Named> flavors = {{"1", "m1.tiny"}, {"2", "m1.small"}, {"3", "dup"}, {"4", "dup"}};
    std::string error;
    EXPECT_EQ(resolve("flavor", "m1.small", flavors, error), "2");
    EXPECT_EQ(resolve("flavor", "3", flavors, error), "3");  // an ID wins over names
    EXPECT_FALSE(resolve("flavor", "m1.huge", flavors, error));
    EXPECT_EQ(error, "no flavor named 'm1.huge' or with that ID (the project sees: m1.tiny, m1.small, dup, dup)");
    EXPECT_FALSE(resolve("image", "dup", flavors, error));
    EXPECT_EQ(error, "2 images are named 'dup' (3, 4): name one by its ID");
    EXPECT_FALSE(resolve("network", "x", {}, error));
    EXPECT_EQ(error, "no network named 'x' or with that ID");
    EXPECT_EQ(parse_named(R"({"flavors": [{"id": "1", "name": "a", "links": []}, {"name": "no id"}]})", "flavors").size(),
              1u);
    const auto image = parse_named(R"({"id": "i-1", "name": "by-image", "status": "active"})", "images");
    ASSERT_EQ(image.size(), 1u);
    EXPECT_EQ(image[0].id, "i-1");
    const auto network = parse_named(R"({"network": {"id": "n-1", "name": "by-net"}})", "networks");
    ASSERT_EQ(network.size(), 1u);
    EXPECT_EQ(network[0].name, "by-net");
}

TEST(OpenStackApi, ARefusedTokenIsRenewedAtOnceThenAfterTheSecondOfItsRevocation) {
    // Keystone keeps revocations to the second: a token issued in the same
    // second as the revocation is refused too, so the second renewal waits.
    ASSERT_TRUE(renewal_pause(1));
    EXPECT_EQ(renewal_pause(1)->count(), 0);
    ASSERT_TRUE(renewal_pause(2));
    EXPECT_GT(renewal_pause(2)->count(), 1000);
    EXPECT_FALSE(renewal_pause(3));  // refused three times: a real refusal, not a race
}

TEST(OpenStackApi, TransientAnswersAreRetriedAndA401RenewsTheToken) {
    EXPECT_EQ(classify(200), Next::done);
    EXPECT_EQ(classify(202), Next::done);
    EXPECT_EQ(classify(204), Next::done);
    EXPECT_EQ(classify(0), Next::retry);
    EXPECT_EQ(classify(500), Next::retry);
    EXPECT_EQ(classify(503), Next::retry);
    EXPECT_EQ(classify(409), Next::retry);
    EXPECT_EQ(classify(429), Next::retry);
    EXPECT_EQ(classify(401), Next::reauth);
    EXPECT_EQ(classify(400), Next::fail);
    EXPECT_EQ(classify(403), Next::fail);
    EXPECT_EQ(classify(404), Next::fail);
    // The back-off is the EC2 backend's, shared.
    EXPECT_EQ(backoff(1, 1.0).count(), 250);
    EXPECT_EQ(backoff(6, 0.5).count(), 4000);
    EXPECT_EQ(error_message(R"({"itemNotFound": {"code": 404, "message": "Flavor x could not be found."}})"),
              "Flavor x could not be found.");
    EXPECT_EQ(error_message(R"({"error": {"code": 401, "message": "The request you have made requires authentication.",
                                 "title": "Unauthorized"}})"),
              "The request you have made requires authentication.");
    EXPECT_EQ(error_message("<html>\n<body>503 Service Unavailable</body>"), "<html> <body>503 Service Unavailable</body>");
    EXPECT_EQ(error_message(""), "no error message");
}

TEST(OpenStackApi, TheServerCarriesTheOwnerMetadataAndTheIdentity) {
    auto o = options();
    o.metadata = {{"team", "ci"}};
    const auto body = create_request(spec(), o, {"f-1", "i-1", "none"}, base64(user_data(spec())))["server"];
    EXPECT_EQ(body["name"], "buildyard-ci-o1");
    EXPECT_EQ(body["flavorRef"], "f-1");
    EXPECT_EQ(body["imageRef"], "i-1");
    EXPECT_EQ(body["networks"], "none");
    EXPECT_EQ(body["metadata"], (json{{"buildyard:owner", "ci"}, {"buildyard:worker", "o1"},
                                      {"buildyard:start", start}, {"team", "ci"}}));
    EXPECT_EQ(body["user_data"],
              base64("buildyard.worker=o1\nbuildyard.master=10.0.0.1:9989\nbuildyard.token=tok3n\n"));
    for (const char* absent : {"config_drive", "availability_zone", "key_name", "security_groups",
                               "block_device_mapping_v2"}) {
        EXPECT_FALSE(body.contains(absent)) << absent;
    }
}

TEST(OpenStackApi, EveryServerKeyAndBootFromVolume) {
    auto o = options();
    o.config_drive = true;
    o.availability_zone = "nova";
    o.key_name = "ci";
    o.security_groups = {"default", "ssh"};
    o.volume_size_gib = 40;
    const auto body = create_request(spec(), o, {"f-1", "i-1", "n-1"}, "dXNlcg==")["server"];
    EXPECT_EQ(body["networks"], json::parse(R"([{"uuid": "n-1"}])"));
    EXPECT_EQ(body["config_drive"], true);
    EXPECT_EQ(body["availability_zone"], "nova");
    EXPECT_EQ(body["key_name"], "ci");
    EXPECT_EQ(body["security_groups"], json::parse(R"([{"name": "default"}, {"name": "ssh"}])"));
    EXPECT_EQ(body["imageRef"], "");
    EXPECT_EQ(body["block_device_mapping_v2"],
              json::parse(R"([{"boot_index": 0, "uuid": "i-1", "source_type": "image", "destination_type": "volume",
                               "volume_size": 40, "delete_on_termination": true}])"));
    EXPECT_EQ(create_request(spec(), options(), {"f", "i", "auto"}, "")["server"]["networks"], "auto");
}

TEST(OpenStackApi, ServersAreReadWithTheirFaultAndMetadata) {
    const auto s = parse_server(R"({"server": {"id": "s-1", "name": "buildyard-ci-o1", "status": "ERROR",
        "OS-EXT-STS:task_state": null, "fault": {"code": 500, "message": "No valid host was found. "},
        "metadata": {"buildyard:owner": "ci", "buildyard:worker": "o1", "buildyard:start": "abc", "n": 1}}})");
    ASSERT_TRUE(s);
    EXPECT_EQ(s->status, "ERROR");
    EXPECT_EQ(s->fault, "No valid host was found. ");
    EXPECT_TRUE(tagged(*s, {"ci", "o1", "abc"}));
    EXPECT_FALSE(tagged(*s, {"ci", "o1", "abd"}));
    EXPECT_EQ(s->metadata.count("n"), 0u);
    EXPECT_TRUE(ending(*s));
    EXPECT_EQ(status_text(*s), "server s-1 is ERROR (No valid host was found. )");
    EXPECT_FALSE(parse_server(R"({"servers": []})"));
    std::string marker, error;
    const auto page = parse_servers(R"({"servers": [{"id": "a", "status": "ACTIVE"},
        {"id": "b", "status": "ACTIVE", "OS-EXT-STS:task_state": "deleting"}],
        "servers_links": [{"rel": "next", "href": "http://nova/v2.1/servers/detail?marker=b"}]})", marker, error);
    EXPECT_TRUE(error.empty());
    ASSERT_EQ(page.size(), 2u);
    EXPECT_FALSE(ending(page[0]));
    EXPECT_TRUE(ending(page[1]));
    EXPECT_EQ(status_text(page[1]), "server b is ACTIVE, being deleted");
    EXPECT_EQ(marker, "b");
    parse_servers(R"({"servers": []})", marker, error);
    EXPECT_EQ(marker, "");
    parse_servers("[]", marker, error);
    EXPECT_EQ(error, "Nova's server list is not {\"servers\": [...]}");
}
